package webrpc

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth/authtest"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seen is what the gRPC side saw of the last call: the chain reads these to authenticate.
type seen struct {
	mu  sync.Mutex
	saw saw
}

type saw struct {
	peerAddr      string
	certCN        string // the verified client certificate's, "" without one
	authorization string
	mirror        bool // any x-koophone-* metadata arrived
	interceptor   bool // the server's interceptor ran
}

func (s *seen) get() saw {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saw
}

// fake is an InstanceService that answers ListInstances, streams WatchTask to a terminal message and fails
// SyncCommand as the gateway's validation does.
type fake struct {
	pb.UnimplementedInstanceServiceServer
	seen *seen
}

func (f *fake) record(ctx context.Context) {
	f.seen.mu.Lock()
	defer f.seen.mu.Unlock()
	if p, ok := peer.FromContext(ctx); ok {
		f.seen.saw.peerAddr = p.Addr.String()
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			f.seen.saw.certCN = ti.State.VerifiedChains[0][0].Subject.CommonName
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	f.seen.saw.authorization = strings.Join(md.Get("authorization"), ",")
	for k := range md {
		if strings.HasPrefix(k, "x-koophone-") {
			f.seen.saw.mirror = true
		}
	}
}

func (f *fake) ListInstances(ctx context.Context, req *pb.ListInstancesRequest) (*pb.ListInstancesResponse, error) {
	f.record(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", "rid-1"))
	return &pb.ListInstancesResponse{Result: []*pb.Instance{{InstanceId: "p1"}, {InstanceId: "p2"}}, PageNo: req.GetPageNo(), TotalCount: 2}, nil
}

func (f *fake) WatchTask(req *pb.WatchTaskRequest, ss grpc.ServerStreamingServer[pb.WatchTaskResponse]) error {
	f.record(ss.Context())
	for i := int32(0); i < 3; i++ {
		if req.GetTaskId() == "slow" && i > 0 {
			time.Sleep(300 * time.Millisecond) // a stream that outlasts a short body deadline
		}
		if err := ss.Send(&pb.WatchTaskResponse{TaskId: req.GetTaskId(), RunningCount: 2 - i, SucceededCount: i, Terminal: i == 2}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fake) SyncCommand(ctx context.Context, _ *pb.SyncCommandRequest) (*pb.SyncCommandResponse, error) {
	st, _ := status.New(codes.InvalidArgument, "invalid request").WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "command", Reason: "string.pattern", Description: "no shell operators"}}},
		errcat.Info(pb.ErrorReason_ACTION_DENIED, nil))
	return nil, st.Err()
}

type env struct {
	url  string
	seen *seen
	srv  *httptest.Server
}

// start serves a gRPC server (with an interceptor marking the calls it sees, health registered beside the
// contract) through Mount on a real loopback listener; tlsCfg, when set, is the listener's TLS.
func start(t testing.TB, cfg Config, tlsCfg *tls.Config) *env {
	t.Helper()
	s := &seen{}
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		s.mu.Lock()
		s.saw.interceptor = true
		s.mu.Unlock()
		return h(ctx, req)
	}))
	pb.RegisterInstanceServiceServer(g, &fake{seen: s})
	healthpb.RegisterHealthServer(g, health.NewServer())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "the REST mirror", http.StatusTeapot) })
	if err := Mount(mux, cfg, g); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(mux)
	hs.EnableHTTP2 = true
	if tlsCfg != nil {
		hs.TLS = tlsCfg
		hs.StartTLS()
	} else {
		hs.Start()
	}
	t.Cleanup(func() { hs.Close(); g.Stop() })
	return &env{url: hs.URL, seen: s, srv: hs}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func list(e *env, c *http.Client, opts ...connect.ClientOption) *connect.Client[pb.ListInstancesRequest, pb.ListInstancesResponse] {
	return connect.NewClient[pb.ListInstancesRequest, pb.ListInstancesResponse](c, e.url+"/koophone.v1.InstanceService/ListInstances", opts...)
}

// Unary and server-streaming calls over the Connect protocol (binary and JSON) and gRPC-web reach the gRPC
// server through its interceptors, with the caller's address and headers as the chain reads them.
func TestProtocols(t *testing.T) {
	e := start(t, Config{MaxBodyBytes: 1 << 20, BodyTimeout: 5 * time.Second}, nil)
	for name, opts := range map[string][]connect.ClientOption{
		"connect":      nil,
		"connect-json": {connect.WithProtoJSON()},
		"grpc-web":     {connect.WithGRPCWeb()},
	} {
		t.Run(name, func(t *testing.T) {
			req := connect.NewRequest(&pb.ListInstancesRequest{PageNo: 3})
			req.Header().Set("Authorization", "Bearer k1")
			req.Header().Set("X-Koophone-Client-Cert", "cert:forged") // the mirror's metadata: dropped
			res, err := list(e, http.DefaultClient, opts...).CallUnary(ctx(t), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Msg.GetResult()) != 2 || res.Msg.GetPageNo() != 3 || res.Header().Get("X-Request-Id") != "rid-1" {
				t.Fatalf("answer %v, headers %v", res.Msg, res.Header())
			}
			s := e.seen.get()
			if !s.interceptor || s.authorization != "Bearer k1" || s.mirror || !strings.HasPrefix(s.peerAddr, "127.0.0.1:") {
				t.Fatalf("the gRPC side saw %+v", &s)
			}

			watch := connect.NewClient[pb.WatchTaskRequest, pb.WatchTaskResponse](http.DefaultClient, e.url+"/koophone.v1.InstanceService/WatchTask", opts...)
			stream, err := watch.CallServerStream(ctx(t), connect.NewRequest(&pb.WatchTaskRequest{TaskId: "t1"}))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for stream.Receive() {
				m := stream.Msg()
				got = append(got, m.GetTaskId()+map[bool]string{true: " terminal", false: ""}[m.GetTerminal()])
			}
			if err := stream.Err(); err != nil || strings.Join(got, ",") != "t1,t1,t1 terminal" {
				t.Fatalf("stream: %q, %v", got, err)
			}
			_ = stream.Close()
		})
	}
}

// An error keeps its google.rpc.Status details, read by a Connect client as typed details.
func TestErrorDetails(t *testing.T) {
	e := start(t, Config{}, nil)
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
		t.Run(name, func(t *testing.T) {
			c := connect.NewClient[pb.SyncCommandRequest, pb.SyncCommandResponse](http.DefaultClient, e.url+"/koophone.v1.InstanceService/SyncCommand", opts...)
			_, err := c.CallUnary(ctx(t), connect.NewRequest(&pb.SyncCommandRequest{Command: "ls; rm"}))
			info, bad := details(t, err)
			if connect.CodeOf(err) != connect.CodeInvalidArgument || info.GetReason() != "ACTION_DENIED" || info.GetDomain() != errcat.Domain ||
				len(bad.GetFieldViolations()) != 1 || bad.GetFieldViolations()[0].GetField() != "command" {
				t.Fatalf("%v: info %v, bad request %v", err, info, bad)
			}
		})
	}
}

func details(t *testing.T, err error) (*errdetails.ErrorInfo, *errdetails.BadRequest) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("not a Connect error: %v", err)
	}
	var info *errdetails.ErrorInfo
	var bad *errdetails.BadRequest
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			t.Fatal(err)
		}
		switch m := v.(type) {
		case *errdetails.ErrorInfo:
			info = m
		case *errdetails.BadRequest:
			bad = m
		}
	}
	return info, bad
}

// Under mTLS the gRPC side sees the verified client certificate of the HTTP connection, which is what the
// gateway's authentication reads.
func TestClientCertificateReachesTheChain(t *testing.T) {
	ca := authtest.NewCA(t)
	leaf := ca.Server(t)
	e := start(t, Config{}, &tls.Config{Certificates: []tls.Certificate{leaf.TLS(t)}, ClientCAs: ca.Pool(),
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12})
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{ForceAttemptHTTP2: h2, TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12,
			Certificates: []tls.Certificate{ca.Client(t, "billing-svc").TLS(t)}}}
		if !h2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		c := &http.Client{Transport: tr}
		_, err := list(e, c).CallUnary(ctx(t), connect.NewRequest(&pb.ListInstancesRequest{}))
		tr.CloseIdleConnections()
		if err != nil {
			t.Fatal(err)
		}
		cn := e.seen.get().certCN
		if cn != "billing-svc" {
			t.Fatalf("HTTP/2 %v: the gRPC side saw certificate %q", h2, cn)
		}
	}
}

// raw sends one request and returns the answer's status, headers and body.
func raw(t *testing.T, method, url, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
		if header[i] == "Host" {
			req.Host = header[i+1]
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// CORS: a listed origin's preflight is answered with what Connect and gRPC-web need; a write from an unlisted
// origin is refused in the caller's protocol with the reason.
func TestCORS(t *testing.T) {
	const page = "http://page.test:8000"
	e := start(t, Config{CORSOrigins: []string{page}}, nil)
	path := e.url + "/koophone.v1.InstanceService/ListInstances"

	code, h, _ := raw(t, http.MethodOptions, path, "", "Origin", page, "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,connect-protocol-version,connect-timeout-ms,content-type,x-grpc-web,x-user-agent")
	if code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != page ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "connect-protocol-version") {
		t.Fatalf("preflight: %d %v", code, h)
	}
	code, h, _ = raw(t, http.MethodPost, path, "{}", "Origin", page, "Sec-Fetch-Site", "cross-site",
		"Content-Type", "application/json", "Connect-Protocol-Version", "1")
	if code != http.StatusOK || h.Get("Access-Control-Allow-Origin") != page ||
		!strings.Contains(h.Get("Access-Control-Expose-Headers"), "Grpc-Status-Details-Bin") || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Fatalf("listed origin: %d %v", code, h)
	}

	c := list(e, http.DefaultClient, connect.WithGRPCWeb())
	req := connect.NewRequest(&pb.ListInstancesRequest{})
	req.Header().Set("Origin", "http://evil.test")
	req.Header().Set("Sec-Fetch-Site", "cross-site")
	_, err := c.CallUnary(ctx(t), req)
	if info, _ := details(t, err); connect.CodeOf(err) != connect.CodePermissionDenied || info.GetReason() != "CROSS_ORIGIN_REFUSED" || info.GetMetadata()["origin"] != "http://evil.test" {
		t.Fatalf("unlisted origin: %v (%v)", err, info)
	}
}

// What is not Connect or gRPC-web is refused with a reason; plain gRPC is pointed at the gRPC port; the Host
// list and the body cap hold; only the contract's services are served here.
func TestRefusals(t *testing.T) {
	e := start(t, Config{Hosts: []string{"127.0.0.1"}, MaxBodyBytes: 64}, nil)
	path := e.url + "/koophone.v1.InstanceService/ListInstances"
	reason := func(body string) string {
		i := strings.Index(body, `"reason":"`)
		if i < 0 {
			return ""
		}
		rest := body[i+len(`"reason":"`):]
		return rest[:strings.IndexByte(rest, '"')]
	}

	for _, ct := range []string{"text/plain", "application/json", "application/grpc-web-text", ""} {
		code, h, body := raw(t, http.MethodPost, path, "{}", "Content-Type", ct)
		if code != http.StatusUnsupportedMediaType || reason(body) != "HTTP_UNSUPPORTED_MEDIA_TYPE" || h.Get("X-Request-Id") == "" ||
			!strings.Contains(body, "Connect-Protocol-Version") {
			t.Errorf("Content-Type %q: %d %v %s", ct, code, h, body)
		}
	}

	_, err := list(e, http.DefaultClient, connect.WithGRPC()).CallUnary(ctx(t), connect.NewRequest(&pb.ListInstancesRequest{}))
	if info, _ := details(t, err); connect.CodeOf(err) != connect.CodeUnimplemented || !strings.Contains(err.Error(), "--grpc-addr") || info.GetReason() != "HTTP_UNSUPPORTED_MEDIA_TYPE" {
		t.Errorf("plain gRPC: %v", err)
	}

	req := connect.NewRequest(&pb.ListInstancesRequest{InstanceName: strings.Repeat("x", 100)})
	_, err = list(e, http.DefaultClient).CallUnary(ctx(t), req)
	if info, _ := details(t, err); connect.CodeOf(err) != connect.CodeInvalidArgument || info.GetReason() != "HTTP_BODY_TOO_LARGE" {
		t.Errorf("body over the cap: %v", err)
	}

	for _, opts := range [][]connect.ClientOption{{connect.WithSendGzip()}, {connect.WithSendGzip(), connect.WithGRPCWeb()}} {
		req := connect.NewRequest(&pb.ListInstancesRequest{InstanceName: "a"})
		_, err = list(e, http.DefaultClient, append(opts, connect.WithCompressMinBytes(0))...).CallUnary(ctx(t), req)
		if info, _ := details(t, err); connect.CodeOf(err) != connect.CodeUnimplemented || info.GetMetadata()["content_encoding"] != "gzip" {
			t.Errorf("a gzip request: %v (%v)", err, info)
		}
	}

	// JSON as strict as the REST mirror's: an unknown field or an unreadable body is the caller's error, named.
	for body, want := range map[string]string{`{"pageNo":1,"pageSise":5}`: `"field":"pageSise"`, `{"pageNo":`: `"reason":"body.invalid"`, `[]`: `"reason":"body.invalid"`} {
		code, _, got := raw(t, http.MethodPost, path, body, "Content-Type", "application/json", "Connect-Protocol-Version", "1")
		if code != http.StatusBadRequest || !strings.Contains(got, `"code":"invalid_argument"`) || !strings.Contains(got, want) {
			t.Errorf("body %s: %d %s", body, code, got)
		}
	}

	code, _, body := raw(t, http.MethodPost, path, "{}", "Host", "rebind.test", "Content-Type", "application/json", "Connect-Protocol-Version", "1")
	if code != http.StatusForbidden || reason(body) != "HTTP_HOST_NOT_SERVED" {
		t.Errorf("unlisted host: %d %s", code, body)
	}

	// Health is the gRPC port's: its path is the mux's (here the stand-in for the REST mirror).
	code, _, _ = raw(t, http.MethodPost, e.url+"/grpc.health.v1.Health/Check", "{}", "Content-Type", "application/json", "Connect-Protocol-Version", "1")
	if code != http.StatusTeapot {
		t.Errorf("health over Connect: %d, want the mux's other handler", code)
	}
}

// A body that stalls is cut off at BodyTimeout with its reason, and one longer than its declared (chunked) length
// allows at the cap, both as the REST mirror answers them; a server stream is not held to the body's deadline.
func TestBodyLimits(t *testing.T) {
	e := start(t, Config{BodyTimeout: 300 * time.Millisecond, MaxBodyBytes: 64}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, _ = io.WriteString(conn, "POST /koophone.v1.InstanceService/ListInstances HTTP/1.1\r\nHost: 127.0.0.1\r\n"+
		"Content-Type: application/json\r\nConnect-Protocol-Version: 1\r\nContent-Length: 40\r\n\r\n{\"pageNo\":")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // the test's own bound; the gateway's is 300 ms
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("a stalled body: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "body.timeout") {
		t.Errorf("a stalled body: %d %s", res.StatusCode, b)
	}

	// Chunked: no declared length, so the cap cuts it while it is read.
	body := io.MultiReader(strings.NewReader(`{"instanceName":"`), strings.NewReader(strings.Repeat("x", 100)), strings.NewReader(`"}`))
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodPost, e.url+"/koophone.v1.InstanceService/ListInstances", body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connect-Protocol-Version", "1")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTP_BODY_TOO_LARGE") {
		t.Errorf("a chunked body over the cap: %d %s", res.StatusCode, b)
	}

	// A stream whose answer outlasts the body's deadline (600 ms against 300) is not cut.
	stream, err := connect.NewClient[pb.WatchTaskRequest, pb.WatchTaskResponse](http.DefaultClient, e.url+"/koophone.v1.InstanceService/WatchTask").
		CallServerStream(ctx(t), connect.NewRequest(&pb.WatchTaskRequest{TaskId: "slow"}))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for stream.Receive() {
		n++
	}
	if err := stream.Err(); err != nil || n != 3 {
		t.Errorf("stream: %d messages, %v", n, err)
	}
	_ = stream.Close()
}
