package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
)

// The production dress: what a gateway on a network runs with. TLS on both ports (an ECDSA P-256 certificate, as
// most ACME and internal CAs issue today), callers identified by API key (bearer) or by client certificate (mTLS),
// a policy of a few dozen statements, the audit log to a file, and /metrics scraped every 15 s. Every file is
// made afresh for each run in the logs directory; nothing here is a real secret.
type dress struct {
	dir                                 string
	caFile, certFile, keyFile           string // the gateway's and the bare TLS proxy's certificate
	clientCertFile, clientKeyFile       string // the mTLS caller's
	keysFile, policyFile, sharesFile    string
	apiKey                              string // the load's key; its principal is key:loadbench
	clientIdentity                      string // the load's certificate identity (DNS SAN): cert:<this>
	roots                               *x509.CertPool
	clientCert                          tls.Certificate
	policyStatements, keyCount, scrapes int
}

const (
	benchPrincipal = "loadbench"
	clientIdentity = "loadbench.bench.internal"
	scrapeEvery    = 15 * time.Second
	// The configured shares' rate: far above what the load reaches, so the bucket is consulted on every call and
	// never refuses one (a refusal would count as a failed call).
	sharesRate = 100000
)

// newDress writes the certificates, keys, policy and shares files into dir.
func newDress(dir string) (*dress, error) {
	d := &dress{dir: dir, clientIdentity: clientIdentity}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := d.certificates(); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	if err := d.credentials(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *dress) path(name string) string { return filepath.Join(d.dir, name) }

// certificates makes a CA, the server's certificate (127.0.0.1, localhost) and a client certificate, all P-256.
func (d *dress) certificates() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "loadbench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	d.roots = x509.NewCertPool()
	d.roots.AddCert(ca)
	d.caFile = d.path("ca.pem")
	if err := writePEM(d.caFile, "CERTIFICATE", caDER); err != nil {
		return err
	}
	leaf := func(serial int64, name string, ips []net.IP, usage x509.ExtKeyUsage, certFile, keyFile string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
			IPAddresses: ips, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyFile, "PRIVATE KEY", keyDER)
	}
	d.certFile, d.keyFile = d.path("server.pem"), d.path("server-key.pem")
	if err := leaf(2, "localhost", []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, x509.ExtKeyUsageServerAuth, d.certFile, d.keyFile); err != nil {
		return err
	}
	d.clientCertFile, d.clientKeyFile = d.path("client.pem"), d.path("client-key.pem")
	if err := leaf(3, d.clientIdentity, nil, x509.ExtKeyUsageClientAuth, d.clientCertFile, d.clientKeyFile); err != nil {
		return err
	}
	d.clientCert, err = tls.LoadX509KeyPair(d.clientCertFile, d.clientKeyFile)
	return err
}

func writePEM(file, kind string, der []byte) error {
	return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}

// credentials writes the keys file (SHA-256 of each key), a policy of ~40 statements naming key: and cert:
// principals and groups, and a shares file with a rate.
func (d *dress) credentials() error {
	var keys strings.Builder
	keys.WriteString("keys:\n")
	key := func(principal, secret string, groups ...string) {
		keys.WriteString(keyEntry(principal, secret, groups...))
		d.keyCount++
	}
	// Other callers first, so the load's key is not the first entry looked at.
	groups := []string{"operators", "readers", "billing", "support", "ci"}
	for i := range 24 {
		key(fmt.Sprintf("svc-%02d", i), fmt.Sprintf("other-key-%02d-%x", i, randomBytes(8)), groups[i%len(groups)])
	}
	d.apiKey = "loadbench-" + hex.EncodeToString(randomBytes(16))
	key(benchPrincipal, d.apiKey, "readers", "bench")
	d.keysFile = d.path("keys.yaml")
	if err := os.WriteFile(d.keysFile, []byte(keys.String()), 0o600); err != nil {
		return err
	}

	// A policy shaped like a shared gateway's: per-service grants, group grants, denies that do not concern the
	// load's caller, and the statements that let it query status near the end (a deny beats an allow, so every
	// statement naming the caller is looked at on every call anyway).
	var pol strings.Builder
	pol.WriteString("statements:\n")
	stmt := func(effect, who string, actions ...string) {
		fmt.Fprintf(&pol, "  - effect: %s\n    %s\n    actions:\n", effect, who)
		for _, a := range actions {
			fmt.Fprintf(&pol, "      - %q\n", a)
		}
		d.policyStatements++
	}
	const res = "koophone:cloudphoneResource:"
	stmt("allow", "groups: [operators]", "koophone:*")
	stmt("deny", "groups: [operators]", res+"instanceCreate", res+"instanceDelete", res+"*InvokeInstance")
	stmt("allow", "groups: [billing]", res+"queryInstanceSku", res+"queryInstanceBatch")
	stmt("allow", "groups: [support]", res+"query*", res+"instanceReboot", res+"batchResetInstance")
	stmt("allow", "groups: [ci]", res+"instanceAppInstall", res+"queryApplicationList", res+"queryExecuteJob")
	for i := range 24 {
		who := fmt.Sprintf("principals: [\"key:svc-%02d\"]", i)
		if i%3 == 2 {
			who = fmt.Sprintf("principals: [\"cert:svc-%02d.bench.internal\"]", i)
		}
		switch i % 4 {
		case 0:
			stmt("allow", who, res+"instanceAssign", res+"instancePrepare", res+"getInstancePrepareProgress")
		case 1:
			stmt("deny", who, res+"instanceBackup", res+"setVideo")
		case 2:
			stmt("allow", who, res+"executeInstanceAuthToken", res+"stopInstancesStreaming", res+"releaseInstancesSession")
		default:
			stmt("allow", who, res+"asyncInvokeInstance", res+"queryExecuteJob", res+"queryBatchShowInstance")
		}
	}
	stmt("deny", "groups: [readers]", res+"instanceCreate", res+"instanceDelete", res+"*Reset*")
	stmt("deny", "principals: [\"key:svc-03\", \"key:svc-07\"]", "koophone:*")
	stmt("allow", "groups: [readers]", res+"query*", res+"getInstancePrepareProgress")
	stmt("deny", "groups: [bench]", res+"*InvokeInstance", res+"instanceReboot")
	for i := range 5 {
		stmt("allow", fmt.Sprintf("principals: [\"cert:edge-%d.bench.internal\"]", i), res+"queryInstanceBatch", res+"instanceUnassign")
	}
	stmt("allow", fmt.Sprintf("principals: [\"key:%s\", \"cert:%s\"]", benchPrincipal, d.clientIdentity), res+"queryBatchShowInstance", res+"queryExecuteJob")
	stmt("deny", fmt.Sprintf("principals: [\"cert:%s\"]", d.clientIdentity), res+"instanceCreate", res+"instanceDelete")
	d.policyFile = d.path("policy.yaml")
	if err := os.WriteFile(d.policyFile, []byte(pol.String()), 0o600); err != nil {
		return err
	}

	// The defaults carry the rate too, for the anonymous caller of a gateway without authentication.
	shares := fmt.Sprintf(`defaults: {requests_per_second: %[2]d, burst: 1000, open_streams: 2000, concurrent_calls: 256, concurrent_fleet_runs: 4}
groups:
  operators: {requests_per_second: 200, concurrent_fleet_runs: 2}
  readers: {requests_per_second: 50}
principals:
  key:%[1]s: {requests_per_second: %[2]d, burst: 1000, concurrent_calls: 256}
  cert:%[3]s: {requests_per_second: %[2]d, burst: 1000, concurrent_calls: 256}
`, benchPrincipal, sharesRate, d.clientIdentity)
	d.sharesFile = d.path("shares.yaml")
	return os.WriteFile(d.sharesFile, []byte(shares), 0o600)
}

// keyEntry is one API key's entry in a keys file: its SHA-256, never the key itself.
func keyEntry(principal, secret string, groups ...string) string {
	sum := sha256.Sum256([]byte(secret))
	return fmt.Sprintf("  - principal: %s\n    sha256: %s\n    groups: [%s]\n", principal, hex.EncodeToString(sum[:]), strings.Join(groups, ", "))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// tlsEnv is the gateway's environment for TLS on both ports.
func (d *dress) tlsEnv() []string {
	return []string{"KOOPHONE_TLS_CERT_FILE=" + d.certFile, "KOOPHONE_TLS_KEY_FILE=" + d.keyFile}
}

// keysEnv: TLS, API keys, the policy and the audit log to a file of its own.
func (d *dress) keysEnv(name string) []string {
	return append(d.tlsEnv(), "KOOPHONE_AUTH_KEYS_FILE="+d.keysFile, "KOOPHONE_AUTH_POLICY_FILE="+d.policyFile,
		"KOOPHONE_AUDIT_LOG="+d.path("audit-"+name+".log"))
}

// mtlsEnv: TLS with client certificates instead of keys, the policy and the audit log.
func (d *dress) mtlsEnv(name string) []string {
	return append(d.tlsEnv(), "KOOPHONE_TLS_CLIENT_CA_FILE="+d.caFile, "KOOPHONE_AUTH_POLICY_FILE="+d.policyFile,
		"KOOPHONE_AUDIT_LOG="+d.path("audit-"+name+".log"))
}

// sharesEnv configures the per-caller shares: the defaults on and the shares file (with a rate).
func (d *dress) sharesEnv() []string {
	return []string{"KOOPHONE_SHARE_OPEN_STREAMS=2000", "KOOPHONE_SHARE_CONCURRENT_CALLS=256", "KOOPHONE_SHARE_FILE=" + d.sharesFile}
}

// grpcConfig is how the load dials a dressed gateway: by key, or by certificate.
func (d *dress) grpcConfig(mtls bool) koophone.Config {
	c := koophone.Config{CAFile: d.caFile, NoRetry: true}
	if mtls {
		c.CertFile, c.KeyFile = d.clientCertFile, d.clientKeyFile
	} else {
		c.APIKey = d.apiKey
	}
	return c
}

// httpClient trusts the run's CA and presents the client certificate when mtls; HTTP/2 when the server offers it,
// as curl, browsers and Go's own client do.
func (d *dress) httpClient(mtls bool) *http.Client {
	hc := newHTTPClient()
	cfg := &tls.Config{RootCAs: d.roots, MinVersion: tls.VersionTLS12}
	if mtls {
		cfg.Certificates = []tls.Certificate{d.clientCert}
	}
	hc.Transport.(*http.Transport).TLSClientConfig = cfg
	return hc
}

// restHeader is what a REST caller with the key sends.
func (d *dress) restHeader(mtls bool) http.Header {
	if mtls {
		return http.Header{}
	}
	return http.Header{"Authorization": {"Bearer " + d.apiKey}}
}

// scraper fetches each dressed gateway's /metrics every 15 s, as Prometheus would, until stopped.
type scraper struct {
	stop   context.CancelFunc
	wg     sync.WaitGroup
	count  atomic.Int64
	failed atomic.Int64
	bytes  atomic.Int64
}

func startScraper(ctx context.Context, targets []*gateway) *scraper {
	ctx, cancel := context.WithCancel(ctx)
	s := &scraper{stop: cancel}
	for _, g := range targets {
		s.wg.Go(func() {
			t := time.NewTicker(scrapeEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				body, err := fetchWith(g.hc, g.base+"/metrics")
				s.count.Add(1)
				s.bytes.Add(int64(len(body)))
				if err != nil {
					s.failed.Add(1)
				}
			}
		})
	}
	return s
}

func (s *scraper) close() {
	s.stop()
	s.wg.Wait()
}

// Names of the dressed paths, which the report looks up.
const (
	pathBareTLS     = "bare TLS proxy"
	pathDressGRPC   = "dress: gateway gRPC (key)"
	pathDressREST   = "dress: gateway REST (key)"
	pathMTLSGRPC    = "dress: gateway gRPC (mTLS)"
	pathMTLSREST    = "dress: gateway REST (mTLS)"
	pathSharesGRPC  = "gateway gRPC, shares on"
	pathDressShares = "dress: gateway gRPC (key), shares on"
)

// dressed starts the bare TLS proxy and the dressed gateways (keys, mTLS, keys with shares) and a plain gateway
// with shares on, and returns their paths, the gateways to scrape, and a function that stops them all (to be
// called even on error).
func dressed(ctx context.Context, o *options, s *simulator, self string, ids []string, rep *report) ([]path, []*gateway, func(), error) {
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	d, err := newDress(filepath.Join(o.logDir, "dress"))
	if err != nil {
		return nil, nil, stopAll, err
	}
	rep.dress = d
	bare, err := startProc("bareproxy-tls", o.logDir, self, []string{"bareproxy", "-listen", "127.0.0.1:0", "-upstream", s.url,
		"-tls-cert", d.certFile, "-tls-key", d.keyFile}, []string{"LOADBENCH_TOKEN=" + s.token})
	if err != nil {
		return nil, nil, stopAll, err
	}
	stops = append(stops, bare.stop)
	m, err := waitLog(ctx, bare, bareListening)
	if err != nil {
		return nil, nil, stopAll, err
	}
	var paths []path
	add := func(p path, err error) error {
		if err == nil {
			paths = append(paths, p)
			stops = append(stops, p.close)
		}
		return err
	}
	if err := add(grpcPathWith(pathBareTLS, m[1], bare.pid(), 4, koophone.Config{CAFile: d.caFile, NoRetry: true}, ids)); err != nil {
		return nil, nil, stopAll, err
	}
	if err := waitCall(ctx, bare, paths[0].call); err != nil {
		return nil, nil, stopAll, err
	}

	type gw struct {
		name     string
		mtls     bool
		env      []string
		grpcPath string
		restPath string // "" for none
	}
	gws := []gw{
		{"gateway-dress-key", false, d.keysEnv("key"), pathDressGRPC, pathDressREST},
		{"gateway-dress-mtls", true, d.mtlsEnv("mtls"), pathMTLSGRPC, pathMTLSREST},
		{"gateway-shares", false, d.sharesEnv(), pathSharesGRPC, ""},
		{"gateway-dress-key-shares", false, append(d.keysEnv("key-shares"), d.sharesEnv()...), pathDressShares, ""},
	}
	var scraped []*gateway
	for _, w := range gws {
		var td *dress
		if w.grpcPath != pathSharesGRPC {
			td = d
		}
		g, err := startGatewayTLS(ctx, o, s, w.name, o.gatewayBin, td, w.env...)
		if err != nil {
			return nil, nil, stopAll, err
		}
		stops = append(stops, g.stop)
		if td == nil {
			if err := add(grpcPath(w.grpcPath, g.grpcAddr, g.pid(), 4, ids, callOptions(o)...)); err != nil {
				return nil, nil, stopAll, err
			}
			continue
		}
		scraped = append(scraped, g)
		if err := add(grpcPathWith(w.grpcPath, g.grpcAddr, g.pid(), 4, d.grpcConfig(w.mtls), ids)); err != nil {
			return nil, nil, stopAll, err
		}
		if w.restPath != "" {
			_ = add(restPathWith(w.restPath, g, d.httpClient(w.mtls), ids, d.restHeader(w.mtls)), nil)
		}
	}
	return paths, scraped, stopAll, nil
}
