package server

import (
	"context"
	"time"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
)

// maxAnswerReserve caps answerReserve: past a few hundred milliseconds more time for the answer buys nothing.
const maxAnswerReserve = 500 * time.Millisecond

// answerReserve is the part of a caller's remaining time kept back for the gateway's answer to reach it. Without
// it the handler's deadline and the caller's end at the same instant: the caller's own timer fires first and it
// sees a bare DEADLINE_EXCEEDED, never the gateway's status saying a write was sent (OUTCOME_UNKNOWN). A tenth of
// the time left, at most maxAnswerReserve.
func answerReserve(left time.Duration) time.Duration {
	return min(left/10, maxAnswerReserve)
}

// callDeadline gives a call its working deadline: the caller's, less answerReserve, or defaultTimeout for a call
// that came without one. The returned cancel must be called.
func callDeadline(ctx context.Context, defaultTimeout time.Duration) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		if defaultTimeout <= 0 {
			return ctx, func() {}
		}
		return context.WithTimeout(ctx, defaultTimeout)
	}
	// A socket deadline is wall-clock time by nature, as is the caller's: there is no clock to inject here.
	return context.WithDeadline(ctx, dl.Add(-answerReserve(time.Until(dl))))
}

// unaryDeadline is the chain's deadline step for unary calls (see callDeadline).
func unaryDeadline(defaultTimeout time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, cancel := callDeadline(ctx, defaultTimeout)
		defer cancel()
		return h(ctx, req)
	}
}

// streamDeadline keeps back answerReserve of a stream's deadline too (streams get no default deadline: a watch
// lasts as long as its caller wants), so a stream whose step (an AsyncCommand, say) runs into the caller's
// deadline ends with the gateway's status.
func streamDeadline() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if _, ok := ss.Context().Deadline(); !ok {
			return h(srv, ss)
		}
		ctx, cancel := callDeadline(ss.Context(), 0)
		defer cancel()
		return h(srv, &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx})
	}
}
