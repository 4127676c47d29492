package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/calllog"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/share"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// RequestIDHeader is the metadata key (gRPC) and, canonicalised, the HTTP header of the call's trace id.
const RequestIDHeader = "x-request-id"

// interceptors returns the unary and stream chains, outermost first:
//
//  1. request id: the caller's x-request-id or a new UUID, in the context (for KooPhone and every log line) and in
//     the response headers;
//  2. logging (internal/calllog): one line per call with code and duration, never payloads (they can hold device
//     tokens), and no work at all when the level drops the line;
//  3. recovery: a panic becomes INTERNAL and a log line with the stack, never a crash;
//  4. authentication, audit, authorization (KooPhone services only; health and reflection stay open): the caller
//     is named before anything looks at the request, and validation errors never tell an unauthorised caller
//     anything. Audit wraps authorization and everything inside it and writes its one line per write when the
//     call returns, once its fate is known (denied, invalid or done); the line is bounded (auth.auditLine), so a
//     denied or invalid request of any size writes a small line;
//  5. per-caller shares (internal/share; KooPhone services only): the principal's rate, calls, streams and fleet
//     runs, and its fairness key for the upstream quota. After the guard, which names the principal (for streams
//     it is one step that also authorizes, so denied calls never spend a share either);
//  6. validation: INVALID_ARGUMENT with BadRequest before any upstream call;
//  7. deadline: unary calls without a deadline get one, so no upstream call waits forever; a caller's deadline is
//     kept back by a tenth (at most 500ms), so the gateway's status (OUTCOME_UNKNOWN for a write already sent)
//     reaches the caller before its own timer fires (deadline.go).
//
// With trace non-nil, the request-id step also joins the call to the caller's trace (when no stats handler does).
func interceptors(log *slog.Logger, v *service.Validator, defaultTimeout time.Duration, guard *auth.Guard, shares *share.Shares, trace func(context.Context) context.Context) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	// The call log names the principal and, for REST calls, the real client (read when the call ends); health
	// checks, every few seconds from each load balancer, log at debug.
	logOpts := []calllog.Option{
		calllog.WithFields(func(ctx context.Context) []any { return auth.LogFields(ctx) }),
		calllog.QuietServices(healthpb.Health_ServiceDesc.ServiceName),
	}
	recoverOpts := []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})}
	unary := []grpc.UnaryServerInterceptor{
		unaryRequestID(trace),
		guard.CallInfoUnary(),
		calllog.UnaryServerInterceptor(log, logOpts...),
		recovery.UnaryServerInterceptor(recoverOpts...),
	}
	unary = append(unary, guard.Unary()...)
	unary = append(unary, shares.Unary())
	unary = append(unary,
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := validate(ctx, log, v, req); err != nil {
				return nil, err
			}
			return h(ctx, req)
		},
		unaryDeadline(defaultTimeout),
	)
	stream := []grpc.StreamServerInterceptor{
		streamCallContext(guard, trace), // request id, trace and call info in one frame: a stream holds each frame while it lasts
		calllog.StreamServerInterceptor(log, logOpts...),
		recovery.StreamServerInterceptor(recoverOpts...),
	}
	stream = append(stream, guard.Stream()...)
	stream = append(stream, shares.Stream())
	stream = append(stream,
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, &validatingStream{ServerStream: ss, v: v, log: log})
		},
		streamDeadline(),
	)
	return unary, stream
}

func validate(ctx context.Context, log *slog.Logger, v *service.Validator, req any) error {
	msg, ok := req.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "unexpected request type %T", req)
	}
	if err := malformed(ctx, log, msg); err != nil {
		return err
	}
	return v.Validate(msg)
}

// validatingStream validates each message a server-streaming handler receives (its one request).
type validatingStream struct {
	grpc.ServerStream
	v   *service.Validator
	log *slog.Logger
}

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	// On a goroutine of its own: protovalidate's CEL programs recurse deeply, and on the stream's goroutine (already
	// ~6 KB deep in the interceptor chain) they grew its stack from 8 to 16 KiB, which a watch then holds for as
	// long as it lasts (the GC halves a stack only while less than a quarter is in use).
	done := make(chan error, 1)
	go func() { done <- validate(s.Context(), s.log, s.v, m) }()
	return <-done
}

// requestID returns ctx carrying the call's request id, and the id.
func requestID(ctx context.Context) (context.Context, string) {
	id := ""
	// ValueFromIncomingContext reads one key; FromIncomingContext copies the whole metadata map on every call.
	if vals := metadata.ValueFromIncomingContext(ctx, RequestIDHeader); len(vals) > 0 {
		id = vals[0]
	}
	id = upstream.CallerRequestID(id)
	return upstream.WithRequestID(ctx, id), id
}

// callContext joins ctx to the caller's trace (with trace non-nil) and gives it the call's request id.
func callContext(ctx context.Context, trace func(context.Context) context.Context) (context.Context, string) {
	if trace != nil {
		ctx = trace(ctx)
	}
	return requestID(ctx)
}

func unaryRequestID(trace func(context.Context) context.Context) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, id := callContext(ctx, trace)
		// SetHeader fails only when headers were already sent, which cannot happen before the handler runs.
		_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id))
		return h(ctx, req)
	}
}

// streamCallContext gives a stream its trace and request id (as unaryRequestID does) and its call info (as
// guard.CallInfoUnary does).
func streamCallContext(guard *auth.Guard, trace func(context.Context) context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx, id := callContext(ss.Context(), trace)
		_ = ss.SetHeader(metadata.Pairs(RequestIDHeader, id))
		return h(srv, &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: guard.WithCallInfo(ctx)})
	}
}
