package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
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
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/share"
	"github.com/koophone-gateway/koophone-gateway/internal/telemetry"
)

// The interceptor chain every call meets, gRPC and REST alike (the REST mirror runs the same chain in process),
// outermost first. This list is the one description of the order: chain_test.go reads the step names from it and
// checks them against unarySteps and streamSteps.
//
//  1. request-id: the caller's x-request-id or a new UUID, in the context (for KooPhone and every log line) and in
//     the response headers; without a span exporter it also joins the call to the caller's trace (for the logs).
//  2. metrics: the gRPC server metrics. Right after the request id, so they see every call, including those later
//     steps refuse.
//  3. in-flight: counts the calls in progress, for the warning that says how many were cut at shutdown.
//  4. call-info: a record of the caller (client address now, principal once authenticated) that the call log reads
//     when the call ends; so it comes before the call log.
//  5. call-log (internal/calllog): one line per call with code and duration, never payloads (they can hold device
//     tokens), and no work at all when the level drops the line; health checks log at debug.
//  6. recovery: a panic becomes INTERNAL and a log line with the stack, never a crash. Inside the call log, so a
//     panicking call is logged with its code.
//  7. authenticate (KooPhone services only; health and reflection stay open): the caller is named before anything
//     looks at the request, so validation errors never tell an unauthenticated caller anything.
//  8. audit: wraps authorization and everything inside it and writes its one line per write when the call returns,
//     once its fate is known (denied, invalid or done); the line is bounded (auth.auditLine), so a denied or
//     invalid request of any size writes a small line.
//  9. authorize: the principal against the policy, by the KooPhone actions the RPC needs (auth.Rules).
//  10. shares (internal/share; KooPhone services only): the principal's rate, calls, streams and fleet runs, and
//     its fairness key for the upstream quota. After the guard, which names the principal, so denied calls never
//     spend a share.
//  11. validate: INVALID_ARGUMENT with BadRequest before any upstream call (malformed wire bytes included).
//  12. deadline: unary calls without a deadline get --default-call-timeout, so no upstream call waits forever; a
//     caller's deadline is kept back by a tenth (at most 500ms), so the gateway's status (OUTCOME_UNKNOWN for a
//     write already sent) reaches the caller before its own timer fires (deadline.go).
//  13. idempotency: a write's request_id (Idempotency-Key) answers a repeat from the store. Innermost: only calls
//     that passed authorization, validation and the deadline are remembered.
//
// Streams take the same steps in the same order with three differences, each because a stream's goroutine holds
// every frame of its chain for as long as the stream lasts (a watch: hours) or because the step does not apply:
// request-id also records the call info (steps 1 and 4 in one frame); guard authenticates, audits and authorizes
// (steps 7 to 9) in one interceptor; and there is no idempotency step (streams are never replayed). For the same
// reason the stream steps keep their frames small: what guard, shares and call-log do before and after the
// handler is in functions of their own, and guard matches the guarded services itself rather than through
// go-grpc-middleware's selector. An idle watch's stack size is set by the deepest its goroutine ever went, which
// is its first Send (proto marshalling under the whole chain): at 7.3 KB of 8 KiB it grew the stack to 16 KiB for
// the watch's life in 1 of 10 watches (all of them a round earlier); the smaller frames leave ~0.7 KB to spare.

// chain is what the interceptor steps are built from.
type chain struct {
	log            *slog.Logger
	tel            *telemetry.Telemetry
	inFlight       *atomic.Int64 // calls in progress
	guard          *auth.Guard
	shares         *share.Shares
	validator      *service.Validator
	defaultTimeout time.Duration
	idempotency    grpc.UnaryServerInterceptor
}

type unaryStep struct {
	name string
	fn   grpc.UnaryServerInterceptor
}

type streamStep struct {
	name string
	fn   grpc.StreamServerInterceptor
}

// trace joins a call to its caller's trace when no stats handler does. Spans exported: otelgrpc's stats handler
// makes one per call. Not exported: the request-id step only joins each call to its caller's trace (for the logs),
// which costs a fraction of the handler.
func (c chain) trace() func(context.Context) context.Context {
	if c.tel.Tracing() {
		return nil
	}
	return telemetry.ExtractTrace
}

func (c chain) unarySteps() []unaryStep {
	return []unaryStep{
		{"request-id", unaryRequestID(c.trace())},
		{"metrics", c.tel.GRPC.UnaryServerInterceptor()},
		{"in-flight", unaryInFlight(c.inFlight)},
		{"call-info", c.guard.CallInfoUnary()},
		{"call-log", calllog.UnaryServerInterceptor(c.log, callLogOptions()...)},
		{"recovery", recovery.UnaryServerInterceptor(recoverPanic(c.log))},
		{"authenticate", c.guard.AuthenticateUnary()},
		{"audit", c.guard.AuditUnary()},
		{"authorize", c.guard.AuthorizeUnary()},
		{"shares", c.shares.Unary()},
		{"validate", unaryValidate(c.log, c.validator)},
		{"deadline", unaryDeadline(c.defaultTimeout)},
		{"idempotency", c.idempotency},
	}
}

func (c chain) streamSteps() []streamStep {
	return []streamStep{
		{"request-id", streamRequestID(c.guard, c.trace())},
		{"metrics", c.tel.GRPC.StreamServerInterceptor()},
		{"in-flight", streamInFlight(c.inFlight)},
		{"call-log", calllog.StreamServerInterceptor(c.log, callLogOptions()...)},
		{"recovery", recovery.StreamServerInterceptor(recoverPanic(c.log))},
		{"guard", c.guard.Stream()},
		{"shares", c.shares.Stream()},
		{"validate", streamValidate(c.log, c.validator)},
		{"deadline", streamDeadline()},
	}
}

// unary and stream are the chains as grpc takes them.
func (c chain) unary() []grpc.UnaryServerInterceptor {
	var out []grpc.UnaryServerInterceptor
	for _, s := range c.unarySteps() {
		out = append(out, s.fn)
	}
	return out
}

func (c chain) stream() []grpc.StreamServerInterceptor {
	var out []grpc.StreamServerInterceptor
	for _, s := range c.streamSteps() {
		out = append(out, s.fn)
	}
	return out
}

// unaryRequestID is step 1 for unary calls; with trace non-nil it also joins the call to the caller's trace.
func unaryRequestID(trace func(context.Context) context.Context) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, id := callContext(ctx, trace)
		// SetHeader fails only when headers were already sent, which cannot happen before the handler runs.
		_ = grpc.SetHeader(ctx, metadata.Pairs(requestid.Header, id))
		return h(ctx, req)
	}
}

// streamRequestID gives a stream its trace and request id (as unaryRequestID does) and its call info (as the
// call-info step does for unary calls).
func streamRequestID(guard *auth.Guard, trace func(context.Context) context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx, id := callContext(ss.Context(), trace)
		_ = ss.SetHeader(metadata.Pairs(requestid.Header, id))
		return h(srv, &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: guard.WithCallInfo(ctx)})
	}
}

// callContext joins ctx to the caller's trace (with trace non-nil) and gives it the call's request id.
func callContext(ctx context.Context, trace func(context.Context) context.Context) (context.Context, string) {
	if trace != nil {
		ctx = trace(ctx)
	}
	id := ""
	// ValueFromIncomingContext reads one key; FromIncomingContext copies the whole metadata map on every call.
	if vals := metadata.ValueFromIncomingContext(ctx, requestid.Header); len(vals) > 0 {
		id = vals[0]
	}
	id = requestid.Caller(id)
	return requestid.With(ctx, id), id
}

// unaryInFlight and streamInFlight count the calls in progress in n.
func unaryInFlight(n *atomic.Int64) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		n.Add(1)
		defer n.Add(-1)
		return h(ctx, req)
	}
}

func streamInFlight(n *atomic.Int64) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		n.Add(1)
		defer n.Add(-1)
		return h(srv, ss)
	}
}

// callLogOptions name the principal and, for REST calls, the real client (read when the call ends); health
// checks, every few seconds from each load balancer, log at debug.
func callLogOptions() []calllog.Option {
	return []calllog.Option{
		calllog.WithFields(func(ctx context.Context) []any { return auth.LogFields(ctx) }),
		calllog.QuietServices(healthpb.Health_ServiceDesc.ServiceName),
	}
}

// recoverPanic turns a panic into INTERNAL (never the panic's text) and logs it with its stack.
func recoverPanic(log *slog.Logger) recovery.Option {
	return recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
}

// unaryValidate refuses a malformed or invalid request before the handler runs.
func unaryValidate(log *slog.Logger, v *service.Validator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := validate(ctx, log, v, req); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// streamValidate validates each message a server-streaming handler receives (its one request).
func streamValidate(log *slog.Logger, v *service.Validator) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, &validatingStream{ServerStream: ss, v: v, log: log})
	}
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
