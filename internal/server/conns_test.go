package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// from is a dialer whose connections come from the loopback address ip (Linux routes all of 127/8 to lo), so one
// test can be two clients.
func from(ip string) *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
}

// closedWithin reports whether the server closes c within wait (the read ends with EOF or a reset, not a timeout);
// it sends nothing.
func closedWithin(c net.Conn, wait time.Duration) (bool, error) {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, err
	}
	return true, err
}

// grpcFrom is a TLS gRPC connection to e's gRPC port from the loopback address ip.
func (e *secureEnv) grpcFrom(ip string) *grpc.ClientConn {
	e.t.Helper()
	conn, err := grpc.NewClient(e.grpcAddr,
		grpc.WithTransportCredentials(credentials.NewTLS(e.tlsClient())),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return from(ip).DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Issue 18, finding 1: nobody holds the gRPC port without finishing a handshake, without making calls, or with
// more connections from one address than their share. Real TLS clients; short configured bounds.
func TestGRPCHandshakeIdleAndPerSourceBounds(t *testing.T) {
	e := newSecureEnv(t, secureOpts{keys: map[string]string{"k1": "alice"}, tls: true, args: []string{
		"--handshake-timeout=300ms", "--idle-timeout=500ms", "--max-connections-per-source=3", "--max-connections=64"}})

	// The deadlines are tried from 127.0.0.4, so the connections they close (the server frees their slots a moment
	// later) never count against the share of 127.0.0.1 tried below.
	// A connection that never starts TLS is closed once the handshake deadline passes (grpc-go's default: 120s).
	raw, err := from("127.0.0.4").Dial("tcp", e.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = raw.Close() }()
	if closed, err := closedWithin(raw, 10*time.Second); !closed {
		t.Fatalf("a connection that never started TLS was still open after 10s: %v", err)
	}
	// So is one that finishes TLS but never sends HTTP/2's preface.
	tc, err := tls.DialWithDialer(from("127.0.0.4"), "tcp", e.grpcAddr, func() *tls.Config {
		c := e.tlsClient()
		c.NextProtos = []string{"h2"}
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tc.Close() }()
	if closed, err := closedWithin(tc, 10*time.Second); !closed {
		t.Fatalf("a TLS connection that never spoke HTTP/2 was still open after 10s: %v", err)
	}

	// A connection that makes no call is reaped once idle (grpc-go's client then goes IDLE).
	idle := e.grpcFrom("127.0.0.4")
	idle.Connect()
	if !waitState(idle, connectivity.Ready, 10*time.Second) {
		t.Fatalf("the idle connection never became ready: %v", idle.GetState())
	}
	if !waitState(idle, connectivity.Idle, 10*time.Second) {
		t.Fatalf("a connection with no calls was still %v 10s after connecting (idle timeout 500ms)", idle.GetState())
	}
	_ = idle.Close()

	// Three connections from 127.0.0.1, each holding a health watch (never idle), take its share.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 3 {
		w, err := healthpb.NewHealthClient(e.grpcFrom("127.0.0.1")).Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			t.Fatalf("held watch %d: %v", i+1, err)
		}
	}
	// The fourth from 127.0.0.1 is closed at once, before the handshake completes...
	if c, err := tls.DialWithDialer(from("127.0.0.1"), "tcp", e.grpcAddr, e.tlsClient()); err == nil {
		_ = c.Close()
		t.Fatal("a fourth TLS connection from 127.0.0.1 was accepted over its share of 3")
	}
	// ...while another address still gets in, and its calls work.
	call, cancelCall := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelCall()
	if _, err := healthpb.NewHealthClient(e.grpcFrom("127.0.0.2")).Check(call, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("127.0.0.2 while 127.0.0.1 holds its share: %v", err)
	}
}

func waitState(c *grpc.ClientConn, want connectivity.State, wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for s := c.GetState(); s != want; s = c.GetState() {
		if !c.WaitForStateChange(ctx, s) {
			return false
		}
	}
	return true
}

// Issue 18, finding 2: one client's held REST watch streams take its share of the REST port, not the port: another
// address still lists phones and /readyz and /healthz answer at once. Idle keep-alive connections are reaped, and
// a connection that never sends a request is closed after the header deadline.
func TestRESTHeldStreamsIdleAndPerSourceBounds(t *testing.T) {
	e := newEnv(t, "--max-connections-per-source=4", "--max-connections=64", "--idle-timeout=500ms",
		"--http-read-header-timeout=300ms")
	task := startTask(e, e.phone())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := func(ip string) *http.Client {
		tr := &http.Transport{DialContext: from(ip).DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	held := client("127.0.0.1")
	for i := range 4 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/v1/instances/tasks/"+task.GetTaskId()+"/watch", nil)
		res, err := held.Do(req)
		if err != nil {
			t.Fatalf("watch %d: %v", i+1, err)
		}
		defer func() { _ = res.Body.Close() }()
		if line, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("watch %d: HTTP %d %q %v", i+1, res.StatusCode, line, err)
		}
	}
	get := func(c *http.Client, path string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
		res, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer func() { _ = res.Body.Close() }()
		_, _ = io.Copy(io.Discard, res.Body)
		return res.StatusCode, nil
	}
	// A fifth connection from 127.0.0.1 is refused at once (not left waiting until its deadline).
	start := time.Now()
	if code, err := get(client("127.0.0.1"), "/healthz"); err == nil {
		t.Fatalf("a fifth connection from 127.0.0.1 was served (HTTP %d) over its share of 4", code)
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a fifth connection from 127.0.0.1 waited %v instead of being refused: %v", time.Since(start), err)
	}
	other := client("127.0.0.2")
	for _, path := range []string{"/readyz", "/healthz", listPath} {
		if code, err := get(other, path); err != nil || code != http.StatusOK {
			t.Fatalf("127.0.0.2 %s while 127.0.0.1 holds its share: HTTP %d %v", path, code, err)
		}
	}

	// An idle keep-alive connection is closed after --idle-timeout.
	c, err := from("127.0.0.3").Dial("tcp", e.srv.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || res.StatusCode != http.StatusOK || strings.EqualFold(res.Header.Get("Connection"), "close") {
		t.Fatalf("keep-alive request: %v %v", res, err)
	}
	_ = res.Body.Close()
	if closed, err := closedWithin(c, 10*time.Second); !closed {
		t.Fatalf("an idle keep-alive connection was still open after 10s (idle timeout 500ms): %v", err)
	}
	// A connection that never sends a request is closed after the header deadline.
	silent, err := from("127.0.0.3").Dial("tcp", e.srv.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silent.Close() }()
	if closed, err := closedWithin(silent, 10*time.Second); !closed {
		t.Fatalf("a silent connection was still open after 10s (header deadline 300ms): %v", err)
	}
}
