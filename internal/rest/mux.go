package rest

import (
	"net/textproto"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
)

// NewMux returns the REST/JSON mirror's grpc-gateway ServeMux: snake_case JSON, unknown fields rejected,
// X-Request-Id and Idempotency-Key forwarded, the caller's address and certificate vouched for by guard, and every
// hook of this package (Options); opts come last (middlewares given there run inside the stream framing). Register the
// services on it with a connection that reaches the gRPC chain (an InProcChannel), so every REST call goes through
// the same interceptors as a gRPC call.
func NewMux(guard *auth.Guard, opts ...runtime.ServeMuxOption) *runtime.ServeMux {
	marshaler := &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		// DiscardUnknown false: a misspelt field is an error, not a silently ignored setting.
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
	return runtime.NewServeMux(append([]runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		// No HTTP header may pose as the metadata the mirror vouches for (the caller's address and certificate).
		runtime.WithIncomingHeaderMatcher(auth.MirrorHeaderMatcher(incomingHeader)),
		// The caller's address and verified certificate, vouched for by the mirror; its Authorization header
		// travels as grpc-gateway forwards it, so the gRPC side authenticates REST and gRPC callers alike.
		runtime.WithMetadata(guard.MirrorMetadata),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		// After the options above, so its marshalers and error handlers win: NDJSON/SSE streams, {"error": status}
		// everywhere, BadRequest for unreadable bodies and unknown query parameters, 405 with Allow.
		Options(marshaler),
	}, opts...)...)
}

// incomingHeader maps the HTTP headers the gRPC side reads to their metadata keys.
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case requestIDHeader:
		return requestid.Header, true
	case "Idempotency-Key":
		return idempotency.HeaderName, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader lets only the request id out of the gRPC side's metadata: the rest stays internal.
func outgoingHeader(key string) (string, bool) {
	if key == requestid.Header {
		return requestIDHeader, true
	}
	return "", false
}
