package server

import (
	"context"
	"io"
	"log/slog"

	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
	"github.com/koophone-gateway/koophone-gateway/internal/telemetry"
)

// NewLogger returns the server's logger: text or JSON on w, at level, with the call's request id added to every
// line logged with a call's context, and the trace and span ids where the call is traced (interceptors, services, the upstream client alike).
func NewLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(telemetry.LogHandler(requestIDHandler{h}))
}

// requestIDHandler adds request_id from the context to each record.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := requestid.From(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
