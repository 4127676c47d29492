package koophone

import (
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

// The domains of the ErrorInfo the gateway sends (see koophone.v1.ErrorReason and docs/errors.md).
const (
	// DomainGateway: the gateway's own errors; the reason is a koophone.v1.ErrorReason name.
	DomainGateway = "koophone-gateway"
	// DomainKooPhone: KooPhone answered with an error; the reason is its code verbatim, e.g. "KOOPHONE.API.4001".
	DomainKooPhone = "koophone.myhuaweicloud.com"
)

// Error is a failed call read as the gateway's error catalogue describes it.
type Error struct {
	Code    codes.Code
	Message string
	// Reason and Domain come from the status's google.rpc.ErrorInfo ("" when there is none).
	Reason, Domain string
	// Metadata is the ErrorInfo's: "operation", "upstream_code", "upstream_message", "http_status", "request_id",
	// "principal", "action"… (absent when unknown).
	Metadata map[string]string
	// RetryDelay is google.rpc.RetryInfo's delay: wait this long before trying again (0: no RetryInfo).
	RetryDelay time.Duration
	// Violations are google.rpc.BadRequest's field violations: the request broke a rule of the contract.
	Violations []Violation
	// Status is the whole status, for anything else.
	Status *status.Status
}

// Violation is one broken rule: the field (a path such as "instance_ids[0]" or "query.page_size"), the rule's id
// (e.g. "string.pattern", in Reason) and a description.
type Violation struct {
	Field, Reason, Description string
}

// ErrorOf reads err as the gateway's error catalogue; nil when err is nil or carries no gRPC status (a local
// error, say).
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	e := &Error{Code: st.Code(), Message: st.Message(), Status: st}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			e.Reason, e.Domain, e.Metadata = d.GetReason(), d.GetDomain(), d.GetMetadata()
		case *errdetails.RetryInfo:
			e.RetryDelay = d.GetRetryDelay().AsDuration()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.Violations = append(e.Violations, Violation{Field: v.GetField(), Reason: v.GetReason(), Description: v.GetDescription()})
			}
		}
	}
	return e
}

// Error formats the code, the message and the reason.
func (e *Error) Error() string {
	s := e.Code.String() + ": " + e.Message
	if e.Reason != "" {
		s += " (reason " + e.Reason + ")"
	}
	return s
}

// GatewayReason is the reason as a koophone.v1.ErrorReason when the gateway itself refused or failed the call;
// ERROR_REASON_UNSPECIFIED for KooPhone's errors, for none, and for a reason this client does not know yet (a newer
// gateway: go by the code).
func (e *Error) GatewayReason() pb.ErrorReason {
	if e == nil || e.Domain != DomainGateway {
		return pb.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	return pb.ErrorReason(pb.ErrorReason_value[e.Reason])
}

// OutcomeUnknown reports whether a write may or may not have happened (reason OUTCOME_UNKNOWN or
// IDEMPOTENT_OUTCOME_UNKNOWN): check the state (ListInstances, GetTask) before repeating it.
func (e *Error) OutcomeUnknown() bool {
	switch e.GatewayReason() {
	case pb.ErrorReason_OUTCOME_UNKNOWN, pb.ErrorReason_IDEMPOTENT_OUTCOME_UNKNOWN:
		return true
	}
	return false
}

// Reason returns err's ErrorInfo reason, or "".
func Reason(err error) string {
	if e := ErrorOf(err); e != nil {
		return e.Reason
	}
	return ""
}

// IsOutcomeUnknown reports whether err says a write may or may not have happened.
func IsOutcomeUnknown(err error) bool {
	e := ErrorOf(err)
	return e != nil && e.OutcomeUnknown()
}

// RetryDelay returns the delay err's RetryInfo asks for, and whether it has one.
func RetryDelay(err error) (time.Duration, bool) {
	e := ErrorOf(err)
	if e == nil || e.RetryDelay <= 0 {
		return 0, false
	}
	return e.RetryDelay, true
}
