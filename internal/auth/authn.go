package auth

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"strings"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Principal is an authenticated caller.
type Principal struct {
	Name   string // namespaced by how the caller authenticated: "key:ci-bot", "cert:billing-svc", or Anonymous
	Groups []string
	Method string // "api-key", "mtls", or "none" when authentication is off
}

// Anonymous is every caller when authentication is off.
const Anonymous = "anonymous"

// Metadata the REST mirror adds to its calls. The gRPC side believes the client-* values only when the call also
// carries the mirror's secret (random per process, never logged), so a direct gRPC caller cannot claim a
// certificate identity or an address; the mirror keeps its own callers from sending these keys as headers.
const (
	mdMirror     = "x-koophone-mirror"
	mdClientAddr = "x-koophone-client-addr"
	mdClientCert = "x-koophone-client-cert"
	mdPrefix     = "x-koophone-"
)

type principalKey struct{}

// PrincipalFrom returns the caller authenticated for ctx's call.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// authenticate names the caller of ctx's call: a bearer API key if one is presented (a wrong one fails even when
// a certificate would do), else a verified client certificate (the mirror's caller's, when the mirror forwards
// it; the peer's own on a direct gRPC connection).
func (g *Guard) authenticate(ctx context.Context) (context.Context, error) {
	info := callInfoFrom(ctx)
	if err := g.filesErr(true); err != nil {
		// Fail closed: without a usable keys file or policy nobody can be told apart, nor what they may do.
		return nil, filesUnusable()
	}
	if !g.enabled {
		p := Principal{Name: Anonymous, Method: "none"}
		info.setPrincipal(p.Name)
		return context.WithValue(ctx, principalKey{}, p), nil
	}
	var p Principal
	switch {
	case len(metadata.ValueFromIncomingContext(ctx, "authorization")) > 0: // one key: FromIncomingContext copies the map
		if g.keys == nil {
			return nil, unauthenticated(pb.ErrorReason_INVALID_CREDENTIALS, "API keys are not enabled on this gateway: authenticate with a client certificate")
		}
		key, err := grpcauth.AuthFromMD(ctx, "bearer")
		if err != nil {
			return nil, unauthenticated(pb.ErrorReason_INVALID_CREDENTIALS, "the authorization header must be \"Bearer <API key>\"")
		}
		keys, _ := g.keys.current() // filesErr just checked it
		e, err := keys.lookup(key, g.clock.Now())
		if err != nil {
			// One message for unknown and expired keys; the call log tells them apart (auth.refused).
			info.setRefused(refusalOf(err), e.Principal)
			return nil, unauthenticated(pb.ErrorReason_INVALID_CREDENTIALS, "unknown or expired API key")
		}
		p = Principal{Name: KeyPrefix + e.Principal, Groups: e.Groups, Method: "api-key"}
	default:
		name, err := g.certIdentity(ctx)
		if err != nil {
			return nil, err
		}
		p = Principal{Name: CertPrefix + name, Method: "mtls"}
	}
	info.setPrincipal(p.Name)
	return context.WithValue(ctx, principalKey{}, p), nil
}

// certIdentity is the identity of the verified client certificate behind the call, or UNAUTHENTICATED.
func (g *Guard) certIdentity(ctx context.Context) (string, error) {
	// Built only on the way out: a status with details is not free, and most calls succeed.
	missing := func() error {
		if !g.mtls && g.keys != nil {
			return unauthenticated(pb.ErrorReason_MISSING_CREDENTIALS, "no credentials: send \"authorization: Bearer <API key>\"")
		}
		return unauthenticated(pb.ErrorReason_MISSING_CREDENTIALS, "no credentials: send \"authorization: Bearer <API key>\" or a client certificate")
	}
	if !g.mtls {
		return "", missing()
	}
	if g.fromMirror(metadata.ValueFromIncomingContext(ctx, mdMirror)) {
		vals := metadata.ValueFromIncomingContext(ctx, mdClientCert)
		if len(vals) != 1 || vals[0] == "" {
			return "", missing()
		}
		return vals[0], nil
	}
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return "", missing()
	}
	tlsInfo, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(tlsInfo.State.VerifiedChains) == 0 || len(tlsInfo.State.VerifiedChains[0]) == 0 {
		return "", missing()
	}
	name, err := CertIdentity(tlsInfo.State.VerifiedChains[0][0])
	if err != nil {
		return "", unauthenticated(pb.ErrorReason_INVALID_CREDENTIALS, err.Error())
	}
	return name, nil
}

// fromMirror reports whether the call carries the REST mirror's secret, exactly once; vals are the call's
// values of mdMirror.
func (g *Guard) fromMirror(vals []string) bool {
	return len(vals) == 1 && subtle.ConstantTimeCompare([]byte(vals[0]), []byte(g.mirrorSecret)) == 1
}

// CertIdentity is who a verified client certificate names: its first URI SAN (e.g. a SPIFFE id), else its first
// DNS SAN, else its first e-mail SAN, else its subject's common name.
func CertIdentity(c *x509.Certificate) (string, error) {
	var name string
	switch {
	case len(c.URIs) > 0:
		name = c.URIs[0].String()
	case len(c.DNSNames) > 0:
		name = c.DNSNames[0]
	case len(c.EmailAddresses) > 0:
		name = c.EmailAddresses[0]
	default:
		name = c.Subject.CommonName
	}
	if !validName.MatchString(name) {
		return "", errors.New("the client certificate names no usable identity (SAN or CN of letters, digits and ._@:/+=-)")
	}
	return name, nil
}

// filesUnusable is the answer to every call while a credential file cannot be used: UNAVAILABLE, since the fault
// is the gateway's, not the caller's (UNAUTHENTICATED would tell a client to drop a good key), and another
// replica or a later retry may serve it.
func filesUnusable() error {
	return status.Error(codes.Unavailable, "the gateway cannot use its credential files (an operator must fix them): try again later")
}

// refusalOf is the call log's word for why a key was refused.
func refusalOf(err error) string {
	if errors.Is(err, errExpiredKey) {
		return "expired_key"
	}
	return "unknown_key"
}

func unauthenticated(reason pb.ErrorReason, msg string) error {
	st, _ := status.New(codes.Unauthenticated, msg).WithDetails(errcat.Info(reason, nil))
	return st.Err()
}

// isMirrorHeader reports whether an HTTP header would reach gRPC as one of the mirror's trusted metadata keys.
func isMirrorHeader(key string) bool {
	k := strings.ToLower(key)
	return strings.HasPrefix(k, mdPrefix) || strings.HasPrefix(k, "grpc-metadata-"+mdPrefix)
}
