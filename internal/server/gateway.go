package server

import (
	"context"
	"net/textproto"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
	"github.com/koophone-gateway/koophone-gateway/internal/rest"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
)

// newGateway returns the REST/JSON mirror: grpc-gateway handlers that call the gRPC server through conn (so every
// REST call goes through the same interceptors as a gRPC call), with snake_case JSON, unknown fields rejected,
// X-Request-Id forwarded both ways, and errors as JSON google.rpc.Status.
func newGateway(ctx context.Context, conn grpc.ClientConnInterface, services *service.Services, guard *auth.Guard, opts ...runtime.ServeMuxOption) (*runtime.ServeMux, error) {
	marshaler := &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		// DiscardUnknown false: a misspelt field is an error, not a silently ignored setting.
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
	mux := runtime.NewServeMux(append([]runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		// No HTTP header may pose as the metadata the mirror vouches for (the caller's address and certificate).
		runtime.WithIncomingHeaderMatcher(auth.MirrorHeaderMatcher(func(key string) (string, bool) {
			if textproto.CanonicalMIMEHeaderKey(key) == "X-Request-Id" {
				return requestid.Header, true
			}
			if textproto.CanonicalMIMEHeaderKey(key) == "Idempotency-Key" {
				return idempotency.HeaderName, true
			}
			return runtime.DefaultHeaderMatcher(key)
		})),
		// The caller's address and verified certificate, vouched for by the mirror; its Authorization header
		// travels as grpc-gateway forwards it, so the gRPC side authenticates REST and gRPC callers alike.
		runtime.WithMetadata(guard.MirrorMetadata),
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			if key == requestid.Header {
				return "X-Request-Id", true
			}
			return "", false // other gRPC metadata stays internal
		}),
		// Last, so its marshalers and error handlers win: NDJSON/SSE streams, {"error": status} everywhere,
		// BadRequest for unreadable bodies and unknown query parameters, 405 with Allow.
		rest.Options(marshaler),
	}, opts...)...)
	if err := services.RegisterREST(ctx, mux, conn); err != nil {
		return nil, err
	}
	return mux, nil
}
