package upstream

import (
	"context"

	"github.com/google/uuid"
)

type requestIDKey struct{}

// WithRequestID returns a context whose KooPhone calls send id as x-request-id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id put in ctx by WithRequestID, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestID returns the id to send for a call made with ctx: the caller's, or a new UUID.
func requestID(ctx context.Context) string {
	if id := RequestIDFrom(ctx); id != "" {
		return id
	}
	return uuid.NewString()
}
