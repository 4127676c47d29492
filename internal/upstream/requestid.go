package upstream

import (
	"context"
	"regexp"

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

// validRequestID is what KooPhone accepts as x-request-id (it answers KOOPHONE.API.0003 otherwise): a caller's id
// outside it is replaced rather than forwarded.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// CallerRequestID returns the caller's request id when it is valid, else a new UUID.
func CallerRequestID(id string) string {
	if validRequestID.MatchString(id) {
		return id
	}
	return uuid.NewString()
}
