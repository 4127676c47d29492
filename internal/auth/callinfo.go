package auth

import (
	"context"
	"sync"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc/metadata"
)

// callInfo is who is behind a call, filled in as the chain learns it and read by the call log when the call ends.
type callInfo struct {
	mu        sync.Mutex
	client    string // the REST caller's address when the mirror vouches for it; empty on direct gRPC calls
	principal string
	refused   string // why a presented API key was refused: "unknown_key", "expired_key"
	keyOwner  string // whose expired key it was ("key:ci-bot")
}

type callInfoKey struct{}

// WithCallInfo gives ctx the call's record of its caller, as CallInfoUnary does; a stream interceptor that does
// other things too calls it itself (each stream interceptor is a frame the stream's goroutine holds while it lasts).
func (g *Guard) WithCallInfo(ctx context.Context) context.Context {
	info := &callInfo{}
	// One key at a time: FromIncomingContext copies the whole metadata map on every call.
	if g.fromMirror(metadata.ValueFromIncomingContext(ctx, mdMirror)) {
		if v := metadata.ValueFromIncomingContext(ctx, mdClientAddr); len(v) == 1 {
			info.client = v[0]
		}
	}
	return context.WithValue(ctx, callInfoKey{}, info)
}

// callInfoFrom returns the call's record, or a throwaway one when the chain has none (tests of single parts).
func callInfoFrom(ctx context.Context) *callInfo {
	if info, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		return info
	}
	return &callInfo{}
}

func (c *callInfo) setPrincipal(p string) {
	c.mu.Lock()
	c.principal = p
	c.mu.Unlock()
}

// setRefused records why the call's API key was refused and, for an expired key, whose it was.
func (c *callInfo) setRefused(why, keyPrincipal string) {
	c.mu.Lock()
	c.refused = why
	if keyPrincipal != "" {
		c.keyOwner = KeyPrefix + keyPrincipal
	}
	c.mu.Unlock()
}

func (c *callInfo) get() (client, principal string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client, c.principal
}

// ClientAddress is the REST caller's address the mirror vouched for, or "" on a direct gRPC call (whose address
// is the peer's).
func ClientAddress(ctx context.Context) string {
	c, _ := callInfoFrom(ctx).get()
	return c
}

// LogFields is a logging.WithFieldsFromContext function: the call log's principal and, for REST calls, the real
// client address (peer.address is the mirror's own there).
//
// A refused API key adds auth.refused (unknown_key or expired_key) and, for an expired key, auth.key_owner: the
// caller hears only "unknown or expired API key", the operator sees which.
func LogFields(ctx context.Context) logging.Fields {
	info := callInfoFrom(ctx)
	info.mu.Lock()
	defer info.mu.Unlock()
	var f logging.Fields
	if info.principal != "" {
		f = append(f, "principal", info.principal)
	}
	if info.client != "" {
		f = append(f, "client.address", info.client)
	}
	if info.refused != "" {
		f = append(f, "auth.refused", info.refused)
	}
	if info.keyOwner != "" {
		f = append(f, "auth.key_owner", info.keyOwner)
	}
	return f
}
