package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
)

// requestIDHeader is the header the gRPC side returns the call's id in (see internal/server); errors the mirror
// raises itself, before any gRPC call, get one here so that every answer carries it.
const requestIDHeader = "X-Request-Id"

// fieldErrorPrefix starts the message of a request the mirror could not read. grpc-gateway's generated handlers
// turn a decoder's or query parser's error into status.Errorf(InvalidArgument, "%v", err), which keeps only the
// text: errorHandler recognises this prefix and rebuilds the BadRequest detail from it.
const fieldErrorPrefix = "invalid request: "

// fieldErrorRe parses "invalid request: <where> <quoted field>: <description> [<reason>]".
var fieldErrorRe = regexp.MustCompile(`(?s)^invalid request: (body|query parameter) ("(?:[^"\\]|\\.)*"): (.*) \[([a-z_.]+)\]$`)

func bodyError(field, reason, description string) error {
	if field == "" {
		field = "body"
	}
	return fmt.Errorf("%sbody %q: %s [%s]", fieldErrorPrefix, field, description, reason)
}

func queryError(param, reason, description string) error {
	return fmt.Errorf("%squery parameter %q: %s [%s]", fieldErrorPrefix, param, description, reason)
}

// errorHandler is grpc-gateway's DefaultHTTPErrorHandler (HTTP status from the gRPC code, headers from the call's
// metadata) with four changes: the body is {"error": status} (the marshalers wrap it), a request the mirror could
// not read gets a google.rpc.BadRequest, an answer without the call's X-Request-Id gets one, and a status with
// RetryInfo gets a Retry-After header (HTTP clients and proxies know that one).
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	err = readableError(err)
	md, _ := runtime.ServerMetadataFromContext(ctx)
	if len(md.HeaderMD.Get(requestIDHeader)) == 0 && w.Header().Get(requestIDHeader) == "" {
		w.Header().Set(requestIDHeader, requestid.Caller(r.Header.Get(requestIDHeader)))
	}
	if st := streamStateFrom(ctx); st != nil {
		// A stream refused before it began: its writer frames the body (an SSE "error" event on a 200) and adds
		// Retry-After where the status stays an HTTP error.
		recordStreamError(ctx, status.Convert(unwrapHTTPStatus(err)))
	} else if d, ok := retryDelay(err); ok {
		w.Header().Set("Retry-After", retryAfterSeconds(d))
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// unwrapHTTPStatus is the status inside grpc-gateway's HTTPStatusError (a routing error), or err itself.
func unwrapHTTPStatus(err error) error {
	var httpErr *runtime.HTTPStatusError
	if errors.As(err, &httpErr) {
		return httpErr.Err
	}
	return err
}

// retryDelay is the status's RetryInfo delay, at least a second (Retry-After counts whole seconds, and 0 would
// invite an immediate retry).
func retryDelay(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return max(ri.GetRetryDelay().AsDuration(), time.Second), true
		}
	}
	return 0, false
}

// readableError turns the mirror's own "invalid request: …" errors into INVALID_ARGUMENT with a BadRequest, and
// anything that is not a gRPC status into a plain INTERNAL (no Go error text reaches the caller).
func readableError(err error) error {
	var httpErr *runtime.HTTPStatusError
	if errors.As(err, &httpErr) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return status.Error(codes.Internal, "internal error")
	}
	if st.Code() != codes.InvalidArgument || len(st.Details()) > 0 {
		return err
	}
	m := fieldErrorRe.FindStringSubmatch(st.Message())
	if m == nil {
		if strings.HasPrefix(st.Message(), fieldErrorPrefix) {
			return err
		}
		// Some other reading failure of grpc-gateway's (a path parameter, say): keep its words, add the detail.
		m = []string{"", "request", strconv.Quote("request"), st.Message(), "request.invalid"}
	}
	where, desc, reason := m[1], m[3], m[4]
	field, uerr := strconv.Unquote(m[2])
	if uerr != nil {
		return err
	}
	if where == "query parameter" {
		field = "query." + field
	}
	withDetails, derr := status.New(codes.InvalidArgument, fieldErrorPrefix+field+": "+desc).WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
			Field: field, Description: desc, Reason: reason,
		}}})
	if derr != nil {
		return err
	}
	return withDetails.Err()
}

// streamErrorHandler is the status a REST stream ends with: the gRPC status as it came, and never Go error text.
func streamErrorHandler(ctx context.Context, err error) *status.Status {
	st, ok := status.FromError(err)
	switch {
	case ok:
	case errors.Is(err, context.Canceled):
		st = status.New(codes.Canceled, "canceled")
	default:
		st = status.New(codes.Internal, "internal error")
	}
	recordStreamError(ctx, st)
	return st
}
