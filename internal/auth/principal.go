package auth

import "context"

// ContextWithPrincipal returns ctx carrying p as its call's authenticated caller, as authentication does. For
// tests of the steps after authentication (internal/share) and for callers the gateway authenticates itself.
func ContextWithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}
