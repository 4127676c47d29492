package koophone_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake is a gateway stand-in on a real loopback listener: enough of InstanceService to see what the client sends.
type fake struct {
	pb.UnimplementedInstanceServiceServer
	listCalls, asyncCalls atomic.Int32
	lastAuth, lastReqID   atomic.Value
}

func (f *fake) ListInstances(ctx context.Context, _ *pb.ListInstancesRequest) (*pb.ListInstancesResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.lastAuth.Store(strings.Join(md.Get("authorization"), ","))
	if f.listCalls.Add(1) == 1 {
		return nil, status.Error(codes.Unavailable, "try again")
	}
	return &pb.ListInstancesResponse{TotalCount: 2}, nil
}

func (f *fake) AsyncCommand(_ context.Context, req *pb.AsyncCommandRequest) (*pb.AsyncCommandResponse, error) {
	f.asyncCalls.Add(1)
	f.lastReqID.Store(req.GetRequestId())
	return nil, status.Error(codes.Unavailable, "not sent")
}

func (f *fake) SyncCommand(context.Context, *pb.SyncCommandRequest) (*pb.SyncCommandResponse, error) {
	st, _ := status.New(codes.Unknown, "the answer was lost").WithDetails(
		&errdetails.ErrorInfo{Reason: "OUTCOME_UNKNOWN", Domain: koophone.DomainGateway, Metadata: map[string]string{"operation": "SyncCommand"}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "command", Reason: "command.charset", Description: "no quotes"}}},
	)
	return nil, st.Err()
}

func (f *fake) WatchTask(req *pb.WatchTaskRequest, s grpc.ServerStreamingServer[pb.WatchTaskResponse]) error {
	for i := int32(0); i < 3; i++ {
		if err := s.Send(&pb.WatchTaskResponse{TaskId: req.GetTaskId(), SucceededCount: i, Terminal: i == 2}); err != nil {
			return err
		}
	}
	if req.GetTaskId() == "broken" {
		return status.Error(codes.NotFound, "no such task")
	}
	return nil
}

func serve(t *testing.T, f *fake, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	pb.RegisterInstanceServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func newClient(t *testing.T, addr string, c koophone.Config) *koophone.Client {
	t.Helper()
	cl, err := koophone.New(addr, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// Reads are retried on UNAVAILABLE by the built-in service config; writes are not.
func TestRetriesReadsOnly(t *testing.T) {
	f := &fake{}
	cl := newClient(t, serve(t, f), koophone.Config{})
	res, err := cl.Instances.ListInstances(ctx(t), &pb.ListInstancesRequest{PageNo: 1, PageSize: 10})
	if err != nil || res.GetTotalCount() != 2 {
		t.Fatalf("ListInstances = %v, %v; want a retried success", res, err)
	}
	if n := f.listCalls.Load(); n != 2 {
		t.Fatalf("ListInstances reached the server %d times, want 2", n)
	}
	req := &pb.AsyncCommandRequest{Command: "ls", InstanceIds: []string{"a"}}
	id := koophone.SetRequestID(req)
	if _, err := cl.Instances.AsyncCommand(ctx(t), req); status.Code(err) != codes.Unavailable {
		t.Fatalf("AsyncCommand: %v", err)
	}
	if n := f.asyncCalls.Load(); n != 1 {
		t.Fatalf("AsyncCommand (a write) reached the server %d times, want 1", n)
	}
	if got := f.lastReqID.Load(); got != id || len(id) != 36 {
		t.Fatalf("request_id sent %q, set %q", got, id)
	}
	if again := koophone.SetRequestID(req); again != id {
		t.Fatalf("SetRequestID replaced an id: %q then %q", id, again)
	}
	if got := koophone.SetRequestID(&pb.ListInstancesRequest{}); got != "" {
		t.Fatalf("a read got a request_id: %q", got)
	}
}

func TestIsWrite(t *testing.T) {
	for m, want := range map[string]bool{
		"/koophone.v1.InstanceService/ListInstances": false,
		"/koophone.v1.InstanceService/GetTask":       false,
		"/koophone.v1.InstanceService/AsyncCommand":  true,
		"/koophone.v1.OrderService/CreateInstance":   true,
		"/koophone.v1.FleetService/RebootFleet":      true,
		"/koophone.v1.Nope/Nothing":                  true,
	} {
		if got := koophone.IsWrite(m); got != want {
			t.Errorf("IsWrite(%s) = %v, want %v", m, got, want)
		}
	}
}

func TestErrorCatalogue(t *testing.T) {
	cl := newClient(t, serve(t, &fake{}), koophone.Config{})
	_, err := cl.Instances.SyncCommand(ctx(t), &pb.SyncCommandRequest{})
	e := koophone.ErrorOf(err)
	if e == nil || e.Code != codes.Unknown || e.Reason != "OUTCOME_UNKNOWN" || e.Domain != koophone.DomainGateway {
		t.Fatalf("ErrorOf = %+v", e)
	}
	if e.GatewayReason() != pb.ErrorReason_OUTCOME_UNKNOWN || !e.OutcomeUnknown() || !koophone.IsOutcomeUnknown(err) {
		t.Fatalf("outcome unknown not recognised: %+v", e)
	}
	if d, ok := koophone.RetryDelay(err); !ok || d != 1500*time.Millisecond {
		t.Fatalf("RetryDelay = %v, %v", d, ok)
	}
	if len(e.Violations) != 1 || e.Violations[0] != (koophone.Violation{Field: "command", Reason: "command.charset", Description: "no quotes"}) {
		t.Fatalf("violations %+v", e.Violations)
	}
	if e.Metadata["operation"] != "SyncCommand" || koophone.Reason(err) != "OUTCOME_UNKNOWN" {
		t.Fatalf("metadata %v", e.Metadata)
	}
	if koophone.ErrorOf(nil) != nil || koophone.ErrorOf(errors.New("local")) != nil || koophone.Reason(nil) != "" {
		t.Fatal("ErrorOf of a non-status error must be nil")
	}
	kp := &koophone.Error{Reason: "KOOPHONE.API.4001", Domain: koophone.DomainKooPhone}
	if kp.GatewayReason() != pb.ErrorReason_ERROR_REASON_UNSPECIFIED || kp.OutcomeUnknown() {
		t.Fatal("a KooPhone reason is not a gateway reason")
	}
}

func TestFollow(t *testing.T) {
	cl := newClient(t, serve(t, &fake{}), koophone.Config{})
	s, err := cl.Instances.WatchTask(ctx(t), &pb.WatchTaskRequest{TaskId: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	var seen []int32
	if err := koophone.Follow(s, func(m *pb.WatchTaskResponse) error { seen = append(seen, m.GetSucceededCount()); return nil }); err != nil {
		t.Fatalf("Follow: %v", err)
	}
	if len(seen) != 3 {
		t.Fatalf("saw %v", seen)
	}
	s, _ = cl.Instances.WatchTask(ctx(t), &pb.WatchTaskRequest{TaskId: "broken"})
	last, err := koophone.Last(s)
	if status.Code(err) != codes.NotFound || !last.GetTerminal() {
		t.Fatalf("Last = %v, %v; want the terminal message and NOT_FOUND", last, err)
	}
	c2, cancel := context.WithCancel(ctx(t))
	defer cancel()
	s, _ = cl.Instances.WatchTask(c2, &pb.WatchTaskRequest{TaskId: "t2"})
	stop := errors.New("enough")
	if err := koophone.Follow(s, func(*pb.WatchTaskResponse) error { return stop }); err != stop {
		t.Fatalf("Follow returned %v, want fn's error", err)
	}
}

func TestAPIKeyNeverInPlaintextToOtherHosts(t *testing.T) {
	if _, err := koophone.Dial("gateway.example:9090", koophone.Config{APIKey: "k"}); err == nil ||
		!strings.Contains(err.Error(), "plaintext") || strings.Contains(err.Error(), "k\"") {
		t.Fatalf("plaintext key to a remote host: %v", err)
	}
	for _, target := range []string{"127.0.0.1:9090", "localhost:9090", "[::1]:9090", "dns:///localhost:1", "unix:///tmp/s"} {
		conn, err := koophone.Dial(target, koophone.Config{APIKey: "k"})
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		_ = conn.Close()
	}
	conn, err := koophone.Dial("gateway.example:9090", koophone.Config{APIKey: "k", AllowInsecureAPIKey: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	for _, h := range []string{"10.0.0.1:1", "example.com:1", "127.0.0.1.example.com:1"} {
		if koophone.IsLoopback(h) {
			t.Errorf("IsLoopback(%s)", h)
		}
	}
}

// TLS with a private CA, a client certificate (mTLS) and the API key, over a real handshake.
func TestTLSAndMTLSWithAPIKey(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCert(t, dir, "ca", nil, nil)
	makeCert(t, dir, "server", ca, caKey)
	makeCert(t, dir, "client", ca, caKey)
	serverCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	f := &fake{}
	f.listCalls.Store(1) // answer at once
	addr := serve(t, f, grpc.Creds(creds))
	cl := newClient(t, addr, koophone.Config{CAFile: filepath.Join(dir, "ca.crt"), ServerName: "localhost",
		CertFile: filepath.Join(dir, "client.crt"), KeyFile: filepath.Join(dir, "client.key"), APIKey: "secret-key"})
	if _, err := cl.Instances.ListInstances(ctx(t), &pb.ListInstancesRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := f.lastAuth.Load(); got != "Bearer secret-key" {
		t.Fatalf("authorization %q", got)
	}
	// Without the client certificate the handshake fails.
	cl2 := newClient(t, addr, koophone.Config{CAFile: filepath.Join(dir, "ca.crt"), ServerName: "localhost"})
	if _, err := cl2.Instances.ListInstances(ctx(t), &pb.ListInstancesRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("without a client certificate: %v", err)
	}
	if _, err := koophone.Dial(addr, koophone.Config{CertFile: filepath.Join(dir, "client.crt")}); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
}

// makeCert writes name.crt and name.key into dir: a CA when parent is nil, else a leaf for localhost signed by it.
func makeCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	_ = os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}
