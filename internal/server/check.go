package server

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/coord"
	"github.com/koophone-gateway/koophone-gateway/internal/pprofserver"
)

// Check does what Start does with cfg before it listens, without listening or connecting: it loads the TLS
// certificate and key, the client CA, the API keys and policy files with the same loaders Start uses, and checks
// the addresses, the KooPhone endpoint, the Redis URL, the pprof address and the audit log's directory. It is
// `koophone-gateway --check-config`, so CI and deploy tests can refuse a configuration the server would refuse.
// config.Load has already applied the settings' own rules (ranges, credentials, the non-loopback-without-auth rule).
func Check(cfg *config.Config) error {
	var errs []error
	for _, l := range []struct{ flag, addr string }{{"--grpc-addr", cfg.GRPCAddr}, {"--http-addr", cfg.HTTPAddr}, {"--metrics-addr", cfg.MetricsAddr}} {
		if l.addr == "" && l.flag == "--metrics-addr" {
			continue
		}
		if err := checkListenAddr(l.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", l.flag, l.addr, err))
		}
	}
	if cfg.TLSCertFile != "" {
		if _, err := auth.NewServerTLS(auth.TLSFiles{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, ClientCAFile: cfg.TLSClientCAFile}); err != nil {
			errs = append(errs, fmt.Errorf("TLS: %w", err))
		}
	}
	if _, err := auth.New(auth.Config{KeysFile: cfg.AuthKeysFile, MTLS: cfg.TLSClientCAFile != "", PolicyFile: cfg.AuthPolicyFile}); err != nil {
		errs = append(errs, err)
	}
	if !cfg.Simulated() {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("KOOPHONE_ENDPOINT %q is not an http(s) base URL", cfg.Endpoint))
		}
	}
	if cfg.RedisURL != "" {
		if _, err := coord.ParseURL(cfg.RedisURL); err != nil {
			errs = append(errs, err) // never names the URL, which may hold a password
		}
	}
	if cfg.PprofAddr != "" {
		if err := pprofserver.CheckLoopback(cfg.PprofAddr); err != nil {
			errs = append(errs, err)
		}
	}
	switch cfg.AuditLog {
	case "", "stderr", "stdout", "off":
	default:
		// Opening it would create it; a missing directory is what fails at start.
		if fi, err := os.Stat(filepath.Dir(cfg.AuditLog)); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("--audit-log %q: its directory does not exist", cfg.AuditLog))
		}
	}
	return errors.Join(errs...)
}

// checkListenAddr accepts host:port with a numeric port (0: any free port).
func checkListenAddr(addr string) error {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return errors.New("the port must be a number 0..65535")
	}
	return nil
}
