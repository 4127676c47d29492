package service

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// ErrorDomain is the ErrorInfo domain of errors KooPhone answered (reason: KooPhone's code). The gateway's own
// errors use errcat.Domain.
const ErrorDomain = errcat.KooPhoneDomain

// Reasons for failures that carry no KooPhone error code: the gateway's own, from the contract's ErrorReason.
var (
	ReasonUnavailable = errcat.Reason(pb.ErrorReason_UPSTREAM_UNAVAILABLE)  // no answer: dial, reset, timeout
	ReasonHTTP        = errcat.Reason(pb.ErrorReason_UPSTREAM_HTTP_ERROR)   // an HTTP error status without a KooPhone envelope
	ReasonBadResponse = errcat.Reason(pb.ErrorReason_UPSTREAM_BAD_RESPONSE) // an answer that could not be decoded
	ReasonAuth        = errcat.Reason(pb.ErrorReason_UPSTREAM_AUTH_FAILED)  // the gateway's own KooPhone credential is refused or unobtainable

	// ReasonOutcomeUnknown: a write reached KooPhone (or may have) and its answer was lost. Code UNKNOWN, which
	// no retry policy retries blindly; reconcile with request_id before sending it again.
	ReasonOutcomeUnknown = errcat.Reason(pb.ErrorReason_OUTCOME_UNKNOWN)
	// ReasonRateLimited: the gateway's own rate limit toward KooPhone; RetryInfo says when to come back.
	ReasonRateLimited = errcat.Reason(pb.ErrorReason_RATE_LIMITED)
	// ReasonTooManyWatches: this replica polls as many things as it may; watch something already watched, or
	// retry later (on another replica).
	ReasonTooManyWatches = errcat.Reason(pb.ErrorReason_TOO_MANY_WATCHES)
)

// maxUpstreamText bounds what of KooPhone's own text goes into a status and its details: a 5 MB error message
// would otherwise exceed the caller's header limit and lose the status itself.
const maxUpstreamText = 512

// truncate cuts s to at most n bytes on a UTF-8 boundary (and replaces invalid bytes), marking the cut.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	const mark = "…"
	if n < len(mark) {
		return ""
	}
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// codeRule is how one KooPhone error code maps to gRPC, with an English summary of the seed's description.
type codeRule struct {
	code       codes.Code
	summary    string
	gatewayBug bool // the gateway itself sent a bad request: log loudly
}

// codeTable is the digest's error table (koophone-api.md, "Errors: upstream code → gRPC status"), keyed by the
// numeric part of the code so "KOOPHONE.API.4001", "KooPhone.API.4001" and "KPAPI.2209" all find their row.
var codeTable = map[string]codeRule{
	"0000":  {codes.NotFound, "tenant does not exist", false},
	"0001":  {codes.Internal, "the gateway did not send x-tenant-id", true},
	"0002":  {codes.Internal, "the gateway did not send x-request-id", true},
	"0003":  {codes.InvalidArgument, "invalid x-request-id", false},
	"0004":  {codes.NotFound, "project does not exist", false},
	"0005":  {codes.Internal, "the gateway did not send a required header", true},
	"1000":  {codes.InvalidArgument, "invalid request parameters", false},
	"1001":  {codes.PermissionDenied, "no permission on the instance; check the instance ids", false},
	"1002":  {codes.InvalidArgument, "the instances are not all in the same region", false},
	"1003":  {codes.PermissionDenied, "the tenant is not allowed to use the API (not whitelisted)", false},
	"1004":  {codes.FailedPrecondition, "the tenant has not subscribed to the service", false},
	"1005":  {codes.InvalidArgument, "the video settings do not cover every network and encoding combination", false},
	"1012":  {codes.PermissionDenied, "the instance does not belong to the tenant", false},
	"1323":  {codes.NotFound, "task does not exist", false},
	"2001":  {codes.NotFound, "cloud app does not exist", false},
	"2002":  {codes.PermissionDenied, "cloud app is not authorized", false},
	"2003":  {codes.ResourceExhausted, "no idle instance", false},
	"2004":  {codes.FailedPrecondition, "the instance is frozen", false},
	"2005":  {codes.FailedPrecondition, "the instance is still being restored", false},
	"2006":  {codes.FailedPrecondition, "the instance is being backed up", false},
	"2209":  {codes.ResourceExhausted, "no device can be assigned", false},
	"2210":  {codes.NotFound, "the user is not bound to the instance", false},
	"3001":  {codes.InvalidArgument, "instance_sku_id does not match band_sku_id", false},
	"3002":  {codes.InvalidArgument, "no such SKU or region", false},
	"3003":  {codes.InvalidArgument, "a general instance needs an OS image version", false},
	"3006":  {codes.InvalidArgument, "a monthly period_num must be 1 to 9", false},
	"3007":  {codes.InvalidArgument, "a yearly period_num must be 1 to 3", false},
	"3008":  {codes.InvalidArgument, "fast_install must be 0 or 1", false},
	"3009":  {codes.NotFound, "phone id could not be found", false},
	"4001":  {codes.NotFound, "instance does not exist", false},
	"4999":  {codes.Unavailable, "a third-party API failed", false},
	"40010": {codes.ResourceExhausted, "not enough instances in stock", false},
	"5001":  {codes.FailedPrecondition, "on-demand instances cannot be deleted", false},
	"5002":  {codes.InvalidArgument, "bad time format", false},
	"5004":  {codes.InvalidArgument, "query end time is before start time", false},
	"5005":  {codes.FailedPrecondition, "not every instance is running", false},
	"6000":  {codes.InvalidArgument, "invalid request parameters", false},
	"6001":  {codes.Unavailable, "KooPhone refused the gateway's credentials", false}, // never the caller's UNAUTHENTICATED
	"6002":  {codes.PermissionDenied, "no permission", false},
	"62005": {codes.AlreadyExists, "the app package already exists", false},
	"62006": {codes.InvalidArgument, "the app size must be a number", false},
	"62010": {codes.FailedPrecondition, "the cloud instance is abnormal", false},
	"62015": {codes.ResourceExhausted, "the app package exceeds 2 GB", false},
	"62016": {codes.ResourceExhausted, "the tenant's app packages exceed 1 TB in total", false},
	"62017": {codes.Unavailable, "download failed; check install_package_url", false},
	"62019": {codes.Internal, "installing the app failed", false},
	"62020": {codes.Aborted, "version conflict", false},
	"62021": {codes.ResourceExhausted, "not enough space on the instance", false},
	"9000":  {codes.Internal, "decryption failed", false},
	"9001":  {codes.Unavailable, "KooPhone's cache returned nothing", false},
	"9002":  {codes.Aborted, "KooPhone could not take a lock", false},
	"9003":  {codes.Unavailable, "a third-party API failed", false},
	"9999":  {codes.Internal, "KooPhone internal error", false},
}

// koophoneCodeNumber returns the numeric part of a KooPhone error code, or "" when the code is not KooPhone's.
func koophoneCodeNumber(code string) string { return upstream.CodeNumber(code) }

// codeForHTTPStatus is the gRPC code of an HTTP status that carries no KooPhone code of its own.
func codeForHTTPStatus(httpStatus int) codes.Code {
	switch httpStatus {
	case 400:
		return codes.InvalidArgument
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.NotFound
	case 408:
		return codes.DeadlineExceeded
	case 409:
		return codes.Aborted
	case 429:
		return codes.ResourceExhausted
	case 502, 503, 504:
		return codes.Unavailable
	}
	return codes.Internal
}

// ToStatus turns any error a service method meets into the gRPC status error the caller gets. It is the one place
// where KooPhone failures become gRPC codes. Errors that already are statuses pass through.
func ToStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	ue, ok := upstream.AsError(err)
	if !ok {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return status.Error(codes.DeadlineExceeded, "deadline exceeded")
		case errors.Is(err, context.Canceled):
			return status.Error(codes.Canceled, "canceled")
		}
		log.ErrorContext(ctx, "unexpected error", "err", err)
		return status.Error(codes.Internal, "internal error")
	}
	code, message, reason := classify(ue)
	message = truncate(message, maxUpstreamText)
	if rule, ok := codeTable[koophoneCodeNumber(ue.Code)]; ok && rule.gatewayBug {
		log.ErrorContext(ctx, "KooPhone says the gateway sent a malformed request: this is a gateway bug",
			"op", ue.Op, "code", ue.Code, "upstream_message", ue.Message, "request_id", ue.RequestID)
	}
	st := status.New(code, message)
	domain := errcat.Domain
	if reason == ue.Code && ue.Code != "" {
		domain = ErrorDomain // KooPhone's own code: KooPhone's domain
	}
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{
		Reason: reason,
		Domain: domain,
		// Only what is known: a call refused before it was sent (rate limit, open breaker) has no KooPhone code,
		// status or message, and "" or "0" would read as KooPhone's answer.
		Metadata: errcat.Metadata(map[string]string{
			errcat.KeyOperation:       ue.Op,
			errcat.KeyUpstreamCode:    truncate(ue.Code, 64),
			errcat.KeyUpstreamMessage: truncate(ue.Message, maxUpstreamText),
			errcat.KeyHTTPStatus:      httpStatusText(ue.HTTPStatus),
			errcat.KeyRequestID:       ue.RequestID,
		}),
	}}
	if ue.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(ue.RetryAfter)})
	}
	return withDetails(st, details...)
}

// httpStatusText is KooPhone's HTTP status as ErrorInfo metadata: "" (left out) when no answer came.
func httpStatusText(code int) string {
	if code == 0 {
		return ""
	}
	return strconv.Itoa(code)
}

// gatewayCredentialRefused reports an answer that refuses the gateway's credential even when the client did not
// flag it: KOOPHONE.API.6001, or a 401 from the API gateway or without a code. (KooPhone's own 401s, 1001 and
// 1003, refuse a phone or the API, and keep their rows.)
func gatewayCredentialRefused(ue *upstream.Error) bool {
	if koophoneCodeNumber(ue.Code) == "6001" {
		return true
	}
	return ue.HTTPStatus == 401 && (ue.Code == "" || strings.HasPrefix(strings.ToUpper(ue.Code), "APIG"))
}

// classify picks the gRPC code, the status message and the ErrorInfo reason of an upstream error. The gateway's
// own troubles come first: a refused credential, an unknown outcome, the refusals of the client's own limits.
func classify(ue *upstream.Error) (codes.Code, string, string) {
	switch {
	case upstream.CredentialRefused(ue) || gatewayCredentialRefused(ue):
		// Not the caller's UNAUTHENTICATED: the caller's credentials are fine, the gateway's are not.
		return codes.Unavailable, "the gateway's KooPhone credentials were refused", ReasonAuth
	case ue.OutcomeUnknown:
		switch {
		case errors.Is(ue, context.DeadlineExceeded):
			return codes.DeadlineExceeded, "deadline exceeded after KooPhone " + ue.Op + " was sent: its outcome is unknown", ReasonOutcomeUnknown
		case errors.Is(ue, context.Canceled):
			return codes.Canceled, "canceled after KooPhone " + ue.Op + " was sent: its outcome is unknown", ReasonOutcomeUnknown
		}
		if ue.Kind == upstream.KindHTTP || ue.Kind == upstream.KindAPI {
			// An answer came, but not one that proves KooPhone refused the write (a proxy's 503 page, an unknown
			// error): it may have been carried out.
			return codes.Unknown, "KooPhone " + ue.Op + " was sent and answered HTTP " + strconv.Itoa(ue.HTTPStatus) +
				" without saying whether it was carried out: the outcome is unknown; check before sending it again", ReasonOutcomeUnknown
		}
		return codes.Unknown, "KooPhone " + ue.Op + " was sent but its answer was lost or unreadable: the outcome is unknown; check before sending it again", ReasonOutcomeUnknown
	}
	switch ue.Kind {
	case upstream.KindRateLimited:
		return codes.ResourceExhausted, "the gateway's rate limit toward KooPhone is reached; retry after the delay in RetryInfo", ReasonRateLimited
	case upstream.KindCircuitOpen:
		return codes.Unavailable, "KooPhone is failing and the gateway is not calling it for now; retry after the delay in RetryInfo", ReasonUnavailable
	case upstream.KindTransport:
		switch {
		case errors.Is(ue, context.DeadlineExceeded):
			return codes.DeadlineExceeded, "deadline exceeded while calling KooPhone " + ue.Op, ReasonUnavailable
		case errors.Is(ue, context.Canceled):
			return codes.Canceled, "canceled while calling KooPhone " + ue.Op, ReasonUnavailable
		}
		return codes.Unavailable, "KooPhone " + ue.Op + " could not be reached", ReasonUnavailable
	case upstream.KindAuth:
		return codes.Unavailable, "the gateway could not obtain KooPhone credentials", ReasonAuth
	case upstream.KindDecode:
		code := codes.Internal
		if ue.HTTPStatus >= 502 && ue.HTTPStatus <= 504 {
			code = codes.Unavailable
		}
		return code, "KooPhone " + ue.Op + " answered with an unreadable response (HTTP " + strconv.Itoa(ue.HTTPStatus) + ")", ReasonBadResponse
	case upstream.KindHTTP:
		return codeForHTTPStatus(ue.HTTPStatus), "KooPhone " + ue.Op + " answered HTTP " + strconv.Itoa(ue.HTTPStatus), ReasonHTTP
	}
	// KindAPI: KooPhone's own code decides; HTTP 401 and 429 are what they say whatever the code.
	if rule, ok := codeTable[koophoneCodeNumber(ue.Code)]; ok {
		return rule.code, "KooPhone " + ue.Op + ": " + rule.summary + " (" + ue.Code + ")", ue.Code
	}
	code := codeForHTTPStatus(ue.HTTPStatus)
	if code == codes.InvalidArgument || code == codes.NotFound {
		// An unknown code with a 400/404 may not be the caller's fault: the digest says unknown codes are INTERNAL.
		code = codes.Internal
	}
	msg := "KooPhone " + ue.Op + " failed with " + ue.Code
	if ue.Message != "" {
		msg += ": " + ue.Message
	}
	return code, msg, ue.Code
}

// withDetails attaches details to st; a detail that cannot be attached never hides the status itself.
func withDetails(st *status.Status, details ...protoadapt.MessageV1) error {
	if withD, err := st.WithDetails(details...); err == nil {
		return withD.Err()
	}
	return st.Err()
}
