package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/connlimit"
)

// security is what Start builds to decide who may call: TLS for both listeners, the auth guard, the audit log.
type security struct {
	tls        *auth.ServerTLS // nil: plain TCP
	guard      *auth.Guard
	auditClose func() error
}

// newSecurity loads the TLS, keys and policy files cfg names and opens the audit log; it warns loudly about an
// open gateway and about credentials sent to KooPhone in clear text.
func newSecurity(cfg *config.Config, log *slog.Logger, clk clock.Clock) (*security, error) {
	sec := &security{auditClose: func() error { return nil }}
	if cfg.TLSCertFile != "" {
		t, err := auth.NewServerTLS(auth.TLSFiles{
			CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, ClientCAFile: cfg.TLSClientCAFile,
			Log: log.With("component", "tls"),
		})
		if err != nil {
			return nil, err
		}
		sec.tls = t
	}
	audit, closeAudit, err := openAudit(cfg)
	if err != nil {
		return nil, err
	}
	sec.auditClose = closeAudit
	sec.guard, err = auth.New(auth.Config{
		KeysFile: cfg.AuthKeysFile, MTLS: cfg.TLSClientCAFile != "", PolicyFile: cfg.AuthPolicyFile,
		Clock: clk, Log: log.With("component", "auth"), Audit: audit,
	})
	if err != nil {
		_ = closeAudit()
		return nil, err
	}
	if !sec.guard.Enabled() && (!config.IsLoopback(cfg.GRPCAddr) || !config.IsLoopback(cfg.HTTPAddr)) {
		log.Warn("INSECURE: no caller authentication on a non-loopback listener (--insecure-no-auth): anyone who "+
			"reaches these ports can buy, reset and delete phones and run commands on them",
			"grpc", cfg.GRPCAddr, "http", cfg.HTTPAddr)
	}
	if sec.guard.Enabled() && sec.tls == nil && (!config.IsLoopback(cfg.GRPCAddr) || !config.IsLoopback(cfg.HTTPAddr)) {
		log.Warn("callers' API keys travel in clear text on a non-loopback listener: set --tls-cert-file and --tls-key-file",
			"grpc", cfg.GRPCAddr, "http", cfg.HTTPAddr)
	}
	if u, err := url.Parse(cfg.Endpoint); err == nil && u.Scheme == "http" && !config.IsLoopback(hostPort(u)) {
		log.Warn("KooPhone endpoint is plain HTTP on a non-loopback host: credentials and tokens travel unencrypted",
			"endpoint", u.Redacted())
	}
	return sec, nil
}

func hostPort(u *url.URL) string {
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "80")
	}
	return u.Host
}

// openAudit returns the audit logger cfg asks for (JSON lines, so they ship as they are), or nil for "off".
func openAudit(cfg *config.Config) (*slog.Logger, func() error, error) {
	var w io.Writer
	closer := func() error { return nil }
	switch cfg.AuditLog {
	case "off":
		return nil, closer, nil
	case "", "stderr":
		w = os.Stderr
	case "stdout":
		w = os.Stdout
	default:
		f, err := os.OpenFile(cfg.AuditLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("--audit-log: %w", err)
		}
		w, closer = f, f.Close
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})
	return slog.New(h).With("log", "audit"), closer, nil
}

// checkFiles looks at the credential files (keys, policy, client CA) now; nil while all are usable.
func (sec *security) checkFiles() error {
	err := sec.guard.Check()
	if sec.tls != nil {
		err = errors.Join(err, sec.tls.Check())
	}
	return err
}

// filesReady reports whether the credential files were usable when last looked at.
func (sec *security) filesReady() bool {
	return sec.guard.Ready() && (sec.tls == nil || sec.tls.Ready())
}

// followFiles tells changed whenever a credential file breaks or is fixed (a call or /readyz finding it) and
// exports the files' metrics.
func (sec *security) followFiles(reg prometheus.Registerer, changed func()) error {
	sec.guard.OnFileChange(changed)
	cs := sec.guard.Collectors()
	if sec.tls != nil {
		sec.tls.OnFileChange(changed)
		cs = append(cs, sec.tls.Collectors()...)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// pollFiles looks at the credential files every auth.HashCheckEvery until ctx ends, so a file that breaks while
// no call arrives still turns readiness NOT_SERVING. Wall clock, as the readiness probe.
func (sec *security) pollFiles(ctx context.Context) {
	for clock.Sleep(clock.Real{}, auth.HashCheckEvery, ctx.Done()) {
		_ = sec.checkFiles()
	}
}

// grpcOptions are the gRPC server's TLS options, when TLS is configured.
func (sec *security) grpcOptions() []grpc.ServerOption {
	if sec.tls == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(sec.tls.Config()))}
}

// httpTLS is the REST listener's TLS configuration: HTTP/2 and HTTP/1.1 offered by ALPN. net/http adds them to
// the configuration it is given, but with a client CA the handshake runs on the one GetConfigForClient returns,
// which knows nothing of them: the port then negotiated no ALPN at all (HTTP/1.1 only, one connection per call).
func (sec *security) httpTLS() *tls.Config {
	c := sec.tls.Config().Clone()
	c.NextProtos = []string{"h2", "http/1.1"}
	if get := c.GetConfigForClient; get != nil {
		protos := c.NextProtos
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cc, err := get(hello)
			if cc != nil && len(cc.NextProtos) == 0 {
				cc = cc.Clone()
				cc.NextProtos = protos
			}
			return cc, err
		}
	}
	return c
}

// mirrorCreds are the REST mirror's credentials toward the gRPC listener: TLS pinned to the gateway's own
// certificate when the listener uses TLS.
func (sec *security) mirrorCreds() credentials.TransportCredentials {
	if sec.tls == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(sec.tls.SelfClientConfig())
}

// reflection reports whether gRPC reflection is served: by default only when callers need no authentication.
func (sec *security) reflection(cfg *config.Config) bool {
	switch cfg.Reflection {
	case "on":
		return true
	case "off":
		return false
	}
	return !sec.guard.Enabled()
}

// listen opens a listener that holds at most cfg.MaxConnections connections at once (beyond that, new ones wait
// in the kernel's backlog instead of exhausting file descriptors for the whole process) and at most
// cfg.MaxConnsPerSource from one source (beyond that, they are closed at once: one client cannot hold the port).
func listen(cfg *config.Config, flag, addr string, refused func(net.Addr)) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --%s %s: %w", flag, addr, err)
	}
	return connlimit.Wrap(lis, cfg.MaxConnections, cfg.MaxConnsPerSource, refused), nil
}
