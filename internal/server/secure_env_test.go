package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/auth/authtest"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

// secureEnv is a whole gateway with caller authentication on (API keys, and TLS with client certificates when
// asked), on loopback ports and the embedded simulator, with its call log and audit log captured.
type secureEnv struct {
	t        *testing.T
	srv      *Server
	sim      *sim.Server
	dir      string
	ca       *authtest.CA // nil without TLS
	clock    *clock.Fake  // nil: the wall clock
	log      *testsupport.SyncBuffer
	grpcAddr string
	base     string // REST base URL
}

// secureOpts says what the gateway is started with: keys (key → "principal" or "principal:group"), a policy
// document, TLS, and extra flags.
type secureOpts struct {
	keys   map[string]string
	policy string
	tls    bool
	mtls   bool
	args   []string
	// clock, when set, is the gateway's one clock (from time.Now()): tests that edit the keys or policy file
	// call edited to let StatEvery pass on it, so the next call looks at the file.
	clock *clock.Fake
}

func keysDoc(keys map[string]string) string {
	var b strings.Builder
	b.WriteString("keys:\n")
	for key, who := range keys {
		principal, group, _ := strings.Cut(who, ":")
		fmt.Fprintf(&b, "  - principal: %s\n    sha256: %s\n", principal, auth.HashKey(key))
		if group != "" {
			fmt.Fprintf(&b, "    groups: [%s]\n", group)
		}
	}
	return b.String()
}

func newSecureEnv(t *testing.T, o secureOpts) *secureEnv {
	t.Helper()
	e := &secureEnv{t: t, dir: t.TempDir(), log: &testsupport.SyncBuffer{}}
	args := []string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--sim-fleet=20",
		"--audit-log=" + filepath.Join(e.dir, "audit.log")}
	if len(o.keys) > 0 {
		args = append(args, "--auth-keys-file="+authtest.WriteFile(t, e.dir, "keys.yaml", []byte(keysDoc(o.keys))))
	}
	if o.policy != "" {
		args = append(args, "--auth-policy-file="+authtest.WriteFile(t, e.dir, "policy.yaml", []byte(o.policy)))
	}
	if o.tls || o.mtls {
		e.ca = authtest.NewCA(t)
		leaf := e.ca.Server(t)
		args = append(args, "--tls-cert-file="+authtest.WriteFile(t, e.dir, "tls.crt", leaf.CertPEM),
			"--tls-key-file="+authtest.WriteFile(t, e.dir, "tls.key", leaf.KeyPEM))
		if o.mtls {
			args = append(args, "--tls-client-ca="+authtest.WriteFile(t, e.dir, "ca.crt", e.ca.PEM))
		}
	}
	cfg, err := config.Load(append(args, o.args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var opts []Option
	if o.clock != nil {
		e.clock = o.clock
		opts = append(opts, WithClock(o.clock))
	}
	srv, err := Start(context.Background(), cfg, NewLogger(e.log, "text", slog.LevelDebug), opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.sim, e.grpcAddr = srv, srv.Sim(), srv.GRPCAddr()
	e.base = "http://" + srv.HTTPAddr()
	if e.ca != nil {
		e.base = "https://" + srv.HTTPAddr()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s\naudit log:\n%s", e.log.String(), e.audit())
		}
	})
	e.waitServing()
	return e
}

// edited lets auth.StatEvery pass on the gateway's clock after the test changed a keys or policy file: calls
// stat those files at most once per StatEvery.
func (e *secureEnv) edited() {
	e.t.Helper()
	if e.clock == nil {
		e.t.Fatal("edited needs secureOpts.clock")
	}
	e.clock.Advance(auth.StatEvery)
}

func (e *secureEnv) audit() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "audit.log"))
	return string(b)
}

// tlsClient is a client TLS configuration trusting the test CA, presenting certs if any.
func (e *secureEnv) tlsClient(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: e.ca.Pool(), Certificates: certs, MinVersion: tls.VersionTLS12}
}

// dial connects to the gRPC port: over TLS (with the given client certificates) when the gateway uses TLS.
func (e *secureEnv) dial(certs ...tls.Certificate) *grpc.ClientConn {
	e.t.Helper()
	creds := insecure.NewCredentials()
	if e.ca != nil {
		creds = credentials.NewTLS(e.tlsClient(certs...))
	}
	conn, err := grpc.NewClient(e.grpcAddr, append(checkErrorInfos(e.t), grpc.WithTransportCredentials(creds))...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// httpClient is a REST client (HTTPS with the given client certificates when the gateway uses TLS).
func (e *secureEnv) httpClient(certs ...tls.Certificate) *http.Client {
	tr := &http.Transport{}
	if e.ca != nil {
		tr.TLSClientConfig = e.tlsClient(certs...)
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func (e *secureEnv) waitServing() {
	e.t.Helper()
	hc := healthpb.NewHealthClient(e.dial())
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		res, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		last = err
	}
	e.t.Fatalf("server never became SERVING (last error: %v)", last)
}

// bearer is a call context presenting key (none when key is empty).
func (e *secureEnv) bearer(key string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	e.t.Cleanup(cancel)
	if key == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// rest sends one REST request with key as bearer (none when empty) and returns the status and body.
func (e *secureEnv) rest(c *http.Client, method, path, body, key string, header ...string) (int, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
		if header[i] == "Host" {
			req.Host = header[i+1]
		}
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, string(b)
}
