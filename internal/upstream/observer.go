package upstream

import "time"

// Observer is told what the client does, so metrics can be kept without this package knowing the metrics
// library (internal/telemetry implements it). Every label it receives is bounded: operation names, result
// classes, HTTP statuses, breaker states. Methods are called concurrently and must not block.
type Observer interface {
	// Attempt: one request was sent to KooPhone (or refused before sending: result "breaker_open",
	// "rate_limited"). attempt counts from 1; status is the HTTP status, 0 without an answer.
	Attempt(op, result string, status, attempt int, d time.Duration)
	// Retry: a failed read may be sent again; allowed is false when the shared retry budget said no.
	Retry(op string, allowed bool)
	// LimiterWait: an attempt waited d for the rate limiter (or the in-flight bound); limited: it was refused.
	LimiterWait(write bool, d time.Duration, limited bool)
	// BreakerChange: the circuit breaker moved between BreakerClosed, BreakerHalfOpen and BreakerOpen.
	BreakerChange(from, to string)
	// TokenRefresh: the IAM token was fetched (err nil) or the fetch failed.
	TokenRefresh(err error)
	// InFlight: delta is +1 when an attempt starts and -1 when it ends.
	InFlight(delta int)
}

// NopObserver observes nothing.
type NopObserver struct{}

func (NopObserver) Attempt(string, string, int, int, time.Duration) {}
func (NopObserver) Retry(string, bool)                              {}
func (NopObserver) LimiterWait(bool, time.Duration, bool)           {}
func (NopObserver) BreakerChange(string, string)                    {}
func (NopObserver) TokenRefresh(error)                              {}
func (NopObserver) InFlight(int)                                    {}

// resultClass is an attempt's result label.
func resultClass(e *Error) string {
	if e == nil {
		return "ok"
	}
	switch e.Kind {
	case KindAPI:
		return "api_error"
	case KindHTTP:
		return "http_error"
	case KindDecode:
		return "bad_response"
	case KindTransport:
		return "transport"
	case KindAuth:
		return "auth"
	case KindRateLimited:
		return "rate_limited"
	case KindCircuitOpen:
		return "breaker_open"
	}
	return "other"
}
