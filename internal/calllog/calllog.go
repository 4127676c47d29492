// Package calllog writes one log line per gRPC call: method, peer, code, error and duration, never payloads (they
// can hold device tokens). It replaces go-grpc-middleware's logging interceptor, which builds its field list on
// every call (a few hundred bytes of allocations) even when the logger's level then drops the line: here the level
// is decided first, from the same code-to-level table (logging.DefaultServerCodeToLevel), and a dropped line
// costs nothing. The fields keep the library's names, so log queries do not change.
package calllog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Option adjusts the call log.
type Option func(*options)

type options struct {
	fields func(context.Context) []any
	quiet  map[string]bool
}

// WithFields adds fields read from the call's context when it ends, such as the authenticated principal (known
// only once authentication, further down the chain, has run).
func WithFields(f func(context.Context) []any) Option { return func(o *options) { o.fields = f } }

// QuietServices logs the calls of these gRPC services at debug whatever their code: load balancers check health
// every few seconds, which is not worth an INFO line each.
func QuietServices(names ...string) Option {
	return func(o *options) {
		for _, n := range names {
			o.quiet[n] = true
		}
	}
}

func build(opts []Option) *options {
	o := &options{quiet: map[string]bool{}}
	for _, f := range opts {
		f(o)
	}
	return o
}

// UnaryServerInterceptor logs each unary call when it ends.
func UnaryServerInterceptor(log *slog.Logger, opts ...Option) grpc.UnaryServerInterceptor {
	o := build(opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		o.finished(ctx, log, info.FullMethod, "unary", start, err)
		return resp, err
	}
}

// StreamServerInterceptor logs each streaming call when it ends.
//
//nolint:contextcheck // the call's context is ss.Context(), which contextcheck does not follow
func StreamServerInterceptor(log *slog.Logger, opts ...Option) grpc.StreamServerInterceptor {
	o := build(opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		err := h(srv, ss)
		o.streamFinished(ss, log, info, start, err)
		return err
	}
}

// streamFinished writes a stream's line. A function of its own, so the frame a watch holds for its whole life
// (the interceptor's) stays small.
func (o *options) streamFinished(ss grpc.ServerStream, log *slog.Logger, info *grpc.StreamServerInfo, start time.Time, err error) {
	kind := "bidi_stream"
	switch {
	case info.IsServerStream && !info.IsClientStream:
		kind = "server_stream"
	case info.IsClientStream && !info.IsServerStream:
		kind = "client_stream"
	}
	o.finished(ss.Context(), log, info.FullMethod, kind, start, err)
}

// finished writes the call's line, if the logger keeps lines of the level its code maps to.
func (o *options) finished(ctx context.Context, log *slog.Logger, fullMethod, kind string, start time.Time, err error) {
	if errors.Is(err, io.EOF) {
		err = nil
	}
	code := status.Code(err)
	level := slog.Level(logging.DefaultServerCodeToLevel(code))
	service, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if o.quiet[service] {
		level = slog.LevelDebug
	}
	if !log.Enabled(ctx, level) {
		return
	}
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	// On the stack: the line's usual fields and a few from o.fields fit (slog copies them into its record), where
	// a slice literal grown by the appends below cost two heap allocations of up to ~0.9 KB per call.
	var buf [16]slog.Attr
	attrs := append(buf[:0],
		slog.String("protocol", "grpc"),
		slog.String("grpc.component", "server"),
		slog.String("grpc.service", service),
		slog.String("grpc.method", method),
		slog.String("grpc.method_type", kind),
		slog.String("peer.address", addr),
		slog.String("grpc.start_time", start.Format(time.RFC3339)),
		slog.String("grpc.code", code.String()),
		slog.Float64("grpc.time_ms", float64(time.Since(start).Microseconds())/1000),
	)
	if err != nil {
		attrs = append(attrs, slog.String("grpc.error", err.Error()))
	}
	if o.fields != nil {
		f := o.fields(ctx)
		for i := 0; i+1 < len(f); i += 2 {
			if k, ok := f[i].(string); ok {
				attrs = append(attrs, slog.Any(k, f[i+1]))
			}
		}
	}
	log.LogAttrs(ctx, level, "finished call", attrs...)
}
