package server

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth/authtest"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

const listPath = "/v1/instances/batch-query?page_no=1&page_size=10"

// A rewritten keys file takes effect on the next call StatEvery after the last look, without a restart: the old key stops working, the new one
// starts, on both transports.
func TestKeyRotationWithoutRestart(t *testing.T) {
	e := newSecureEnv(t, secureOpts{keys: map[string]string{"old-key": "ci"}, clock: clock.NewFake(time.Now())})
	order := pb.NewOrderServiceClient(e.dial())
	works := func(key string) (bool, bool) {
		_, err := order.BatchShowSku(e.bearer(key), &pb.BatchShowSkuRequest{})
		code, _ := e.rest(http.DefaultClient, http.MethodGet, listPath, "", key)
		return err == nil, code == http.StatusOK
	}
	if g, r := works("old-key"); !g || !r {
		t.Fatalf("old key before rotation: grpc %v rest %v", g, r)
	}
	authtest.WriteFile(t, e.dir, "keys.yaml", []byte(keysDoc(map[string]string{"new-key": "ci"})))
	e.edited()
	if g, r := works("old-key"); g || r {
		t.Errorf("old key after rotation: grpc %v rest %v", g, r)
	}
	if g, r := works("new-key"); !g || !r {
		t.Errorf("new key after rotation: grpc %v rest %v", g, r)
	}
}

// servedCert returns the certificate a TLS handshake with addr presents.
func servedCert(t *testing.T, e *secureEnv, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: e.ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0]
}

// New certificate files are served from the next handshake on, by both listeners, and the REST mirror (which pins
// the gRPC listener's own certificate) follows. TLS below 1.2 is refused.
func TestCertificateRotationWithoutRestart(t *testing.T) {
	e := newSecureEnv(t, secureOpts{keys: map[string]string{"k": "ci"}, tls: true})
	first := servedCert(t, e, e.grpcAddr)
	if !servedCert(t, e, e.srv.HTTPAddr()).Equal(first) {
		t.Fatal("the listeners serve different certificates")
	}
	next := e.ca.Server(t)
	authtest.WriteFile(t, e.dir, "tls.key", next.KeyPEM)
	authtest.WriteFile(t, e.dir, "tls.crt", next.CertPEM)
	for _, addr := range []string{e.grpcAddr, e.srv.HTTPAddr()} {
		if got := servedCert(t, e, addr); !got.Equal(next.Cert) {
			t.Errorf("%s still serves serial %v after rotation, want %v", addr, got.SerialNumber, next.Cert.SerialNumber)
		}
	}
	if _, err := pb.NewOrderServiceClient(e.dial()).BatchShowSku(e.bearer("k"), &pb.BatchShowSkuRequest{}); err != nil {
		t.Errorf("gRPC after rotation: %v", err)
	}
	c := e.httpClient()
	if code, res := e.rest(c, http.MethodGet, listPath, "", "k"); code != http.StatusOK {
		t.Errorf("REST after rotation: %d %s", code, res)
	}
	old := &tls.Config{RootCAs: e.ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10} //nolint:gosec // the point of the test
	if conn, err := tls.Dial("tcp", e.grpcAddr, old); err == nil {
		_ = conn.Close()
		t.Error("TLS 1.1 accepted")
	}
}

// A verified client certificate names its caller on both transports; a direct gRPC caller cannot claim one with
// the metadata the mirror uses, nor can a REST caller through a header.
func TestClientCertificates(t *testing.T) {
	e := newSecureEnv(t, secureOpts{mtls: true, policy: `statements:
  - {effect: allow, principals: ["cert:svc-reader"], actions: ["koophone:cloudphoneResource:query*"]}
`})
	reader := e.ca.Client(t, "svc-reader").TLS(t)
	stranger := authtest.NewCA(t).Client(t, "svc-reader").TLS(t) // same name, unknown CA
	if _, err := pb.NewInstanceServiceClient(e.dial(reader)).ListInstances(e.bearer(""), &pb.ListInstancesRequest{PageNo: 1, PageSize: 10}); err != nil {
		t.Errorf("gRPC with a client certificate: %v", err)
	}
	_, err := pb.NewInstanceServiceClient(e.dial(reader)).BatchReset(e.bearer(""), &pb.BatchResetRequest{InstanceIds: []string{"abc1"}})
	if info := denial(err); info == nil || info.GetMetadata()["principal"] != "cert:svc-reader" {
		t.Errorf("gRPC reset by a reader: %v", err)
	}
	if code, res := e.rest(e.httpClient(reader), http.MethodGet, listPath, "", ""); code != http.StatusOK {
		t.Errorf("REST with a client certificate: %d %s", code, res)
	}
	// No certificate, or one from another CA (the handshake fails or no identity is verified).
	ctx := metadata.AppendToOutgoingContext(e.bearer(""), "x-koophone-client-cert", "svc-reader", "x-koophone-client-addr", "10.0.0.1")
	if _, err := pb.NewInstanceServiceClient(e.dial()).ListInstances(ctx, &pb.ListInstancesRequest{PageNo: 1, PageSize: 10}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC claiming an identity in metadata: %v", err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "x-koophone-mirror", strings.Repeat("0", 64))
	if _, err := pb.NewInstanceServiceClient(e.dial()).ListInstances(ctx, &pb.ListInstancesRequest{PageNo: 1, PageSize: 10}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC posing as the mirror: %v", err)
	}
	if _, err := pb.NewInstanceServiceClient(e.dial(stranger)).ListInstances(e.bearer(""), &pb.ListInstancesRequest{PageNo: 1, PageSize: 10}); err == nil {
		t.Error("gRPC with a certificate from an unknown CA succeeded")
	}
	for _, h := range []string{"Grpc-Metadata-X-Koophone-Client-Cert", "X-Koophone-Client-Cert"} {
		if code, res := e.rest(e.httpClient(), http.MethodGet, listPath, "", "", h, "svc-reader"); code != http.StatusUnauthorized {
			t.Errorf("REST claiming an identity in %s: %d %s", h, code, res)
		}
	}
}

// The gRPC listener refuses header lists far below grpc-go's 16 MiB default, before any handler runs.
func TestHeaderListCap(t *testing.T) {
	e := newSecureEnv(t, secureOpts{keys: map[string]string{"k": "ci"}, args: []string{"--grpc-max-header-bytes=16384"}})
	ctx := metadata.AppendToOutgoingContext(e.bearer("k"), "x-padding", strings.Repeat("a", 32<<10))
	_, err := pb.NewOrderServiceClient(e.dial()).BatchShowSku(ctx, &pb.BatchShowSkuRequest{})
	if err == nil {
		t.Fatal("32 KiB of metadata accepted with a 16 KiB cap")
	}
	if _, err := pb.NewOrderServiceClient(e.dial()).BatchShowSku(e.bearer("k"), &pb.BatchShowSkuRequest{}); err != nil {
		t.Errorf("a normal call after: %v", err)
	}
}

// A rewritten policy (StatEvery after the last look), and a rewritten client CA file, take effect on the next call
// without a restart.
func TestPolicyAndClientCARotation(t *testing.T) {
	e := newSecureEnv(t, secureOpts{mtls: true, keys: map[string]string{"k": "ci"}, clock: clock.NewFake(time.Now()), policy: `statements:
  - {effect: allow, principals: ["key:ci"], actions: ["koophone:cloudphoneResource:query*"]}
`})
	order := pb.NewOrderServiceClient(e.dial())
	if _, err := order.BatchShowSku(e.bearer("k"), &pb.BatchShowSkuRequest{}); err != nil {
		t.Fatalf("before: %v", err)
	}
	authtest.WriteFile(t, e.dir, "policy.yaml", []byte(`statements:
  - {effect: deny, principals: ["key:ci", "cert:ci"], actions: ["koophone:cloudphoneResource:queryInstanceSku"]}
`))
	e.edited()
	if _, err := order.BatchShowSku(e.bearer("k"), &pb.BatchShowSkuRequest{}); denial(err) == nil {
		t.Errorf("after the policy changed: %v", err)
	}

	newCA := authtest.NewCA(t)
	svc := newCA.Client(t, "ci").TLS(t)
	if _, err := pb.NewOrderServiceClient(e.dial(svc)).BatchShowSku(e.bearer(""), &pb.BatchShowSkuRequest{}); status.Code(err) != codes.Unavailable && status.Code(err) != codes.Unauthenticated {
		t.Errorf("a certificate from a CA not yet trusted: %v", err)
	}
	authtest.WriteFile(t, e.dir, "ca.crt", newCA.PEM)
	_, err := pb.NewOrderServiceClient(e.dial(svc)).BatchShowSku(e.bearer(""), &pb.BatchShowSkuRequest{})
	if info := denial(err); info == nil || info.GetMetadata()["principal"] != "cert:ci" {
		t.Errorf("a certificate from the new CA: %v, want it authenticated as cert:ci (and denied by the policy)", err)
	}
}
