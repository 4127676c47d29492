// Package requestid carries a call's request id: the caller's x-request-id (or a new UUID), put in the context by
// the first step of the interceptor chain, sent to KooPhone by the upstream client, written in every log and audit
// line of the call and returned to the caller. It is a fact of the call, not of any one room, so it lives here,
// a leaf every package may import.
package requestid

import (
	"context"
	"regexp"

	"github.com/google/uuid"
)

// Header is the gRPC metadata key of the request id; canonicalised (X-Request-Id), its HTTP header.
const Header = "x-request-id"

type key struct{}

// With returns a context carrying id as the call's request id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the request id put in ctx by With, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// FromOrNew returns the request id in ctx, or a new UUID when there is none.
func FromOrNew(ctx context.Context) string {
	if id := From(ctx); id != "" {
		return id
	}
	return uuid.NewString()
}

// valid is what KooPhone accepts as x-request-id (it answers KOOPHONE.API.0003 otherwise): a caller's id outside
// it is replaced rather than forwarded.
var valid = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// Caller returns the caller's request id when it is valid, else a new UUID.
func Caller(id string) string {
	if valid.MatchString(id) {
		return id
	}
	return uuid.NewString()
}
