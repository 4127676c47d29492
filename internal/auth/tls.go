package auth

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// TLSFiles are the listeners' certificate, key and (for mTLS) client CA files.
type TLSFiles struct {
	CertFile, KeyFile string
	ClientCAFile      string // empty: no client certificates asked for
	Log               *slog.Logger
}

// ServerTLS is a TLS server configuration whose certificate and client CAs are read again whenever their files
// change (checked at each handshake with a stat, so rotation needs no restart and no watcher).
type ServerTLS struct {
	files TLSFiles
	log   *slog.Logger

	mu      sync.Mutex
	stamp   [2]fileStamp
	cert    *tls.Certificate
	clients *fileValue[*x509.CertPool]
}

// NewServerTLS loads the files once; a missing or invalid file is an error naming it.
func NewServerTLS(f TLSFiles) (*ServerTLS, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("TLS needs both --tls-cert-file and --tls-key-file")
	}
	s := &ServerTLS{files: f, log: f.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if _, err := s.certificate(); err != nil {
		return nil, err
	}
	if f.ClientCAFile != "" {
		pool, err := loadFile(f.ClientCAFile, "client_ca", "client CA file", s.log, clock.Real{}, parseCAs)
		if err != nil {
			return nil, err
		}
		s.clients = pool
	}
	return s, nil
}

func parseCAs(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("holds no PEM certificate")
	}
	return pool, nil
}

// certificate returns the current certificate, loading the pair again when either file changed. A pair that does
// not load (say, the certificate written before its new key) keeps the previous one in service.
func (s *ServerTLS) certificate() (*tls.Certificate, error) {
	cs, _, err1 := stampOf(s.files.CertFile)
	ks, _, err2 := stampOf(s.files.KeyFile)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := errors.Join(err1, err2); err != nil {
		if s.cert != nil {
			return s.cert, nil
		}
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if s.cert != nil && s.stamp == [2]fileStamp{cs, ks} {
		return s.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
	if err != nil {
		if s.cert != nil {
			s.log.Error("keeping the previous TLS certificate: the new files do not load", "err", err)
			s.stamp = [2]fileStamp{cs, ks}
			return s.cert, nil
		}
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w", s.files.CertFile, s.files.KeyFile, err)
	}
	if s.cert != nil {
		s.log.Info("reloaded the TLS certificate", "cert", s.files.CertFile)
	}
	s.cert, s.stamp = &cert, [2]fileStamp{cs, ks}
	return s.cert, nil
}

// Check looks at the client CA file now and returns nil while it is usable (or there is none); the error names
// the file by role only (readiness shows it).
func (s *ServerTLS) Check() error {
	if s.clients == nil || s.clients.refreshNow() == nil {
		return nil
	}
	return errors.New("client CA file unusable (see the gateway's log): no client certificate is accepted")
}

// Ready reports whether the client CA file was usable when last looked at (no file access).
func (s *ServerTLS) Ready() bool { return s.clients == nil || s.clients.ok() }

// OnFileChange sets f to be called whenever the client CA file turns usable or unusable; f must not block.
func (s *ServerTLS) OnFileChange(f func()) {
	if s.clients != nil {
		s.clients.mu.Lock()
		s.clients.changed = f
		s.clients.mu.Unlock()
	}
}

// Config is the tls.Config for a listener: TLS 1.2 or later, the current certificate at each handshake, and client
// certificates verified when given (whether one is required is authentication's call, so health checks and
// API-key callers can connect without one).
func (s *ServerTLS) Config() *tls.Config {
	base := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.certificate() },
	}
	if s.clients == nil {
		return base
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := base.Clone()
			c.ClientAuth = tls.VerifyClientCertIfGiven
			// A stat per handshake, not throttled like the keys and policy (StatEvery): it is little beside
			// the handshake, and a removed CA stops the next handshake.
			pool, err := s.clients.getNow()
			if err != nil {
				// Fail closed for certificates only: no certificate verifies against an empty pool, while API-key
				// callers and health checks still connect. Readiness is NOT_SERVING meanwhile (Check).
				pool = x509.NewCertPool()
			}
			c.ClientCAs = pool
			return c, nil
		},
	}
}

// SelfClientConfig is for the REST mirror dialling this gateway's own gRPC listener: it trusts exactly the
// certificate that listener serves right now, whatever names it carries (the mirror dials 127.0.0.1).
func (s *ServerTLS) SelfClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // G402: replaced by the exact-certificate check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			cur, err := s.certificate()
			if err != nil {
				return err
			}
			if len(cs.PeerCertificates) == 0 || len(cur.Certificate) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, cur.Certificate[0]) {
				return errors.New("the gRPC listener presented a certificate other than the gateway's own")
			}
			return nil
		},
	}
}
