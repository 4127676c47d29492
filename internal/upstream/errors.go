package upstream

import (
	"errors"
	"fmt"
	"time"
)

// Kind says how far a call got before it failed; the service maps each kind (and, for KindAPI, each code) to a
// gRPC status.
type Kind int

const (
	// KindAPI: KooPhone answered with a JSON envelope whose error_code is not "0" (whatever the HTTP status).
	KindAPI Kind = iota + 1
	// KindHTTP: KooPhone (or a proxy in front of it) answered with an HTTP error status and no usable envelope.
	KindHTTP
	// KindDecode: the answer had a success status but its body was not JSON, truncated, too large, or not of the
	// documented shape.
	KindDecode
	// KindTransport: no answer at all (dial, TLS, reset, timeout, the caller's deadline).
	KindTransport
	// KindAuth: the gateway could not obtain credentials (IAM refused or unreachable).
	KindAuth
	// KindRateLimited: the client's own rate limit toward KooPhone would have made the call wait past its
	// deadline; nothing was sent. RetryAfter says when a slot frees up.
	KindRateLimited
	// KindCircuitOpen: KooPhone has been failing and the circuit breaker is open; nothing was sent. RetryAfter
	// says when the breaker next probes.
	KindCircuitOpen
)

func (k Kind) String() string {
	switch k {
	case KindAPI:
		return "api"
	case KindHTTP:
		return "http"
	case KindDecode:
		return "decode"
	case KindTransport:
		return "transport"
	case KindAuth:
		return "auth"
	case KindRateLimited:
		return "rate_limited"
	case KindCircuitOpen:
		return "circuit_open"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is every failure of a KooPhone call. It never holds a credential.
type Error struct {
	Op         string        // operation name, e.g. "SyncCommand"
	Kind       Kind          // how far the call got
	Code       string        // upstream error_code, e.g. "KOOPHONE.API.4001"; "" when there was none
	HTTPStatus int           // HTTP status of the answer; 0 when there was no answer
	Message    string        // error_msg or error_info from upstream, or a description of what went wrong
	RequestID  string        // the x-request-id the call was sent with
	RetryAfter time.Duration // from a Retry-After header, 0 when absent
	Attempts   int           // how many times the request was sent
	Err        error         // the underlying cause (transport or decode error), if any

	// OutcomeUnknown: a write reached KooPhone (or may have) and its answer was lost or unreadable, so whether
	// it took effect is unknown. Sending it again could do it twice (order phones twice).
	OutcomeUnknown bool
	// CredentialRefused: KooPhone or IAM refused the gateway's own credential, after a fresh one was tried where
	// that is possible. It is the gateway's problem, not the caller's.
	CredentialRefused bool
}

func (e *Error) Error() string {
	s := "koophone " + e.Op + ": " + e.detail()
	if e.RequestID != "" {
		s += " [request " + e.RequestID + "]"
	}
	return s
}

// detail is the failure itself, without the operation and request id.
func (e *Error) detail() string {
	var s string
	switch {
	case e.Code != "":
		s = e.Code
		if e.Message != "" {
			s += " " + e.Message
		}
		if e.HTTPStatus != 0 {
			s += fmt.Sprintf(" (HTTP %d)", e.HTTPStatus)
		}
	case e.HTTPStatus != 0:
		s = fmt.Sprintf("HTTP %d", e.HTTPStatus)
		if e.Message != "" {
			s += ": " + e.Message
		}
	default:
		s = e.Message
	}
	if e.Err != nil && e.Message == "" {
		if s != "" {
			s += ": "
		}
		s += e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// CredentialRefused reports whether err says the gateway's own KooPhone credential is refused.
func CredentialRefused(err error) bool {
	e, ok := AsError(err)
	if !ok {
		return false
	}
	if e.CredentialRefused {
		return true
	}
	return e.Kind == KindAuth && (e.HTTPStatus == 400 || e.HTTPStatus == 401 || e.HTTPStatus == 403)
}

// AsError returns the *Error inside err, if there is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
