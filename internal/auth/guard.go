package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// Config says how callers authenticate and what they may do. With neither KeysFile nor MTLS, authentication is
// off: every caller is "anonymous" and may do everything (the loopback demo).
type Config struct {
	KeysFile   string // API keys file; empty: no API keys
	MTLS       bool   // the listeners verify client certificates against a CA
	PolicyFile string // empty: every authenticated caller may do everything
	Clock      clock.Clock
	Log        *slog.Logger // reloads and their failures
	Audit      *slog.Logger // one line per write; nil: no audit log
}

// Guard authenticates and authorizes calls. It is safe for concurrent use.
type Guard struct {
	enabled      bool
	mtls         bool
	keys         *fileValue[keySet]
	policy       *fileValue[*Policy]
	clock        clock.Clock
	audit        *slog.Logger
	mirrorSecret string

	changedMu sync.Mutex
	changed   func() // told when a credential file turns usable or unusable
}

// New loads the files cfg names; an unreadable or invalid file is an error naming it.
func New(cfg Config) (*Guard, error) {
	g := &Guard{mtls: cfg.MTLS, clock: cfg.Clock, audit: cfg.Audit}
	if g.clock == nil {
		g.clock = clock.Real{}
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.KeysFile != "" {
		k, err := loadFile(cfg.KeysFile, "keys", "API keys file", log, g.clock, parseKeys)
		if err != nil {
			return nil, err
		}
		g.keys = k
	}
	g.enabled = g.keys != nil || g.mtls
	if cfg.PolicyFile != "" {
		if !g.enabled {
			return nil, errors.New("a policy file needs authentication: set --auth-keys-file or --tls-client-ca too")
		}
		p, err := loadFile(cfg.PolicyFile, "policy", "policy file", log, g.clock, ParsePolicy)
		if err != nil {
			return nil, err
		}
		g.policy = p
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	g.mirrorSecret = hex.EncodeToString(secret)
	if g.keys != nil {
		g.keys.changed = g.fileChanged
		if k, _ := g.keys.current(); len(k) == 0 {
			// A running gateway takes an emptied file as revocation; one that starts on it was most likely shipped
			// unfilled, and would refuse every caller. Without client certificates, nobody could get in: say so.
			if !g.mtls {
				return nil, fmt.Errorf("API keys file %s: \"keys\" is empty and no client CA is set, so no caller could authenticate: add a key (docs/auth/keys.example.yaml)", cfg.KeysFile)
			}
			log.Warn("the API keys file lists no keys: no caller can authenticate with a key", "path", cfg.KeysFile)
		}
	}
	if g.policy != nil {
		g.policy.changed = g.fileChanged
		if p, _ := g.policy.current(); len(p.statements) == 0 {
			log.Warn("the policy has no statements: every call is denied", "path", cfg.PolicyFile)
		}
	}
	return g, nil
}

// Enabled reports whether callers must authenticate.
func (g *Guard) Enabled() bool { return g.enabled }

// filesErr is errFileBroken while the keys file or the policy cannot be used; with refresh, each file is looked at
// first (a stat; a read when it changed).
func (g *Guard) filesErr(refresh bool) error {
	if (g.keys != nil && !usable(g.keys, refresh)) || (g.policy != nil && !usable(g.policy, refresh)) {
		return errFileBroken
	}
	return nil
}

func usable[T any](f *fileValue[T], refresh bool) bool {
	if refresh {
		return f.refresh() == nil
	}
	return f.ok()
}

// Check looks at the credential files now and returns nil while they are usable, else an error naming the
// unusable ones (by role, not by path: it is shown by readiness, which anyone may call).
func (g *Guard) Check() error {
	var bad []string
	if g.keys != nil && g.keys.refreshNow() != nil {
		bad = append(bad, "API keys file")
	}
	if g.policy != nil && g.policy.refreshNow() != nil {
		bad = append(bad, "policy file")
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s unusable (see the gateway's log): every call is refused", strings.Join(bad, " and "))
	}
	return nil
}

// Ready reports whether the credential files were usable when last looked at (no file access: readiness calls it).
func (g *Guard) Ready() bool { return g.filesErr(false) == nil }

// OnFileChange sets f to be called whenever a credential file turns usable or unusable, so readiness follows at
// once; f must not block.
func (g *Guard) OnFileChange(f func()) {
	g.changedMu.Lock()
	g.changed = f
	g.changedMu.Unlock()
}

func (g *Guard) fileChanged() {
	g.changedMu.Lock()
	f := g.changed
	g.changedMu.Unlock()
	if f != nil {
		f()
	}
}

// guarded is every RPC of the KooPhone contract; health and reflection stay outside authentication.
func guarded(_ context.Context, c interceptors.CallMeta) bool {
	return strings.HasPrefix(c.Service, "koophone.")
}

// CallInfoUnary and CallInfoStream go before the logging interceptor: they give the call a record of its caller
// (client address now, principal once authenticated) that the call log reads when the call ends.
func (g *Guard) CallInfoUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(g.WithCallInfo(ctx), req)
	}
}

// The guard's unary steps, chained in this order by the server (internal/server/chain.go), for the KooPhone
// services only (health and reflection stay open): AuthenticateUnary, AuditUnary, AuthorizeUnary. Audit wraps
// authorization and everything after it (validation, the handler) and writes its line when the call returns, so
// every write gets exactly one line once its fate is known: denied by the policy, refused by validation, or done.
// The line is bounded whatever the request holds (see auditLine). Unauthenticated calls get no audit line (nobody
// to name; the call log has them).

// AuthenticateUnary names the caller (API key, client certificate, or the identity the REST mirror vouches for).
func (g *Guard) AuthenticateUnary() grpc.UnaryServerInterceptor {
	return selector.UnaryServerInterceptor(grpcauth.UnaryServerInterceptor(g.authenticate), selector.MatchFunc(guarded))
}

// AuditUnary writes one audit line per write call once the call returns.
func (g *Guard) AuditUnary() grpc.UnaryServerInterceptor {
	return selector.UnaryServerInterceptor(g.auditUnary, selector.MatchFunc(guarded))
}

// AuthorizeUnary checks the authenticated caller against the policy.
func (g *Guard) AuthorizeUnary() grpc.UnaryServerInterceptor {
	return selector.UnaryServerInterceptor(g.authorizeUnary, selector.MatchFunc(guarded))
}

// Stream does for streams what the three unary steps do, in one interceptor: a stream's handler goroutine holds
// every interceptor's frames for as long as the stream lasts (a watch: hours), and three selector-wrapped
// interceptors were ~2 KB of each idle watcher's stack, enough to double it to 16 KiB. For the same reason it
// matches the guarded services itself (selector's frame is 280 bytes) and does its work before and after the
// handler in functions of their own, so the frame a watch holds is small (see the chain's doc in internal/server).
//
// It authenticates, audits (writes only, denials too) and authorizes a stream, as the unary chain does: the RPC's
// fixed actions before the handler runs, the request's own (OpenSession's assign) when it arrives.
func (g *Guard) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if !guardedMethod(info.FullMethod) {
			return h(srv, ss)
		}
		as, rec, err := g.openStream(ss, info.FullMethod)
		if err == nil {
			err = h(srv, as)
		}
		if rec != nil {
			g.auditStream(rec, info.FullMethod, err)
		}
		return err
	}
}

// guardedMethod is guarded for a full method name ("/koophone.v1.InstanceService/WatchTask").
func guardedMethod(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/koophone.")
}

// openStream authenticates and authorizes a stream: the stream the handler gets, and the recording stream to audit
// (nil: no audit line) whatever the outcome. A function of its own, so its locals are not in the frame that an
// open stream holds.
func (g *Guard) openStream(ss grpc.ServerStream, method string) (grpc.ServerStream, *recordingStream, error) {
	ctx, err := g.authenticate(ss.Context())
	if err != nil {
		return nil, nil, err
	}
	ss = &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx}
	var rec *recordingStream
	if g.audit != nil && Rules[method].Write {
		rec = &recordingStream{ServerStream: ss}
		ss = rec
	}
	if err := g.check(ctx, method, nil, true); err != nil {
		return nil, rec, err
	}
	return &authorizingStream{ServerStream: ss, g: g, method: method}, rec, nil
}

// auditStream writes a guarded stream's audit line once it has ended (or was refused).
func (g *Guard) auditStream(rec *recordingStream, method string, err error) {
	g.auditLine(rec.Context(), method, Rules[method], rec.req, err)
}

// MirrorMetadata is the REST mirror's runtime.WithMetadata function: it vouches for the HTTP caller's address and
// verified client certificate with the mirror's secret. The caller's own credentials (Authorization) travel as
// grpc-gateway forwards them.
func (g *Guard) MirrorMetadata(_ context.Context, r *http.Request) metadata.MD {
	md := metadata.Pairs(mdMirror, g.mirrorSecret, mdClientAddr, r.RemoteAddr)
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		if name, err := CertIdentity(r.TLS.VerifiedChains[0][0]); err == nil {
			md.Set(mdClientCert, name)
		}
	}
	return md
}

// MirrorHeaderMatcher wraps the mirror's incoming header matcher so no HTTP caller can send the metadata the
// mirror vouches for.
func MirrorHeaderMatcher(next func(string) (string, bool)) func(string) (string, bool) {
	return func(key string) (string, bool) {
		if isMirrorHeader(key) {
			return "", false
		}
		return next(key)
	}
}
