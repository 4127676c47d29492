package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
)

// connectCall makes one Connect (or, with opts, gRPC-web) unary call on the REST port, with key as bearer.
func connectCall[Req, Res any](t *testing.T, c *http.Client, base, method string, req *Req, key string, opts ...connect.ClientOption) (*Res, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := connect.NewRequest(req)
	if key != "" {
		r.Header().Set("Authorization", "Bearer "+key)
	}
	res, err := connect.NewClient[Req, Res](c, base+"/koophone.v1.InstanceService/"+method, opts...).CallUnary(ctx, r)
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// connectReason is the ErrorInfo reason of a failed Connect call.
func connectReason(err error) string {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return ""
	}
	for _, d := range ce.Details() {
		if v, _ := d.Value(); v != nil {
			if info, ok := v.(*errdetails.ErrorInfo); ok {
				return info.GetReason()
			}
		}
	}
	return ""
}

// Connect and gRPC-web calls on the REST port go through the gRPC chain: no key, no call; a key names the
// principal the policy judges; denials carry their reason.
func TestWebRPCAuthenticatesWithAPIKeys(t *testing.T) {
	e := newSecureEnv(t, secureOpts{keys: map[string]string{"alice-key": "alice"}, policy: readersPolicy})
	c := e.httpClient()
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
		_, err := connectCall[pb.ListInstancesRequest, pb.ListInstancesResponse](t, c, e.base, "ListInstances", &pb.ListInstancesRequest{PageNo: 1, PageSize: 5}, "", opts...)
		if connect.CodeOf(err) != connect.CodeUnauthenticated || connectReason(err) != "MISSING_CREDENTIALS" {
			t.Errorf("%s without a key: %v (%s)", name, err, connectReason(err))
		}
		res, err := connectCall[pb.ListInstancesRequest, pb.ListInstancesResponse](t, c, e.base, "ListInstances", &pb.ListInstancesRequest{PageNo: 1, PageSize: 5}, "alice-key", opts...)
		if err != nil || res.GetTotalCount() != 20 {
			t.Fatalf("%s with a key: %v, %v", name, res, err)
		}
		_, err = connectCall[pb.SyncCommandRequest, pb.SyncCommandResponse](t, c, e.base, "SyncCommand",
			&pb.SyncCommandRequest{Command: "ls", InstanceIds: []string{res.GetResult()[0].GetInstanceId()}}, "alice-key", opts...)
		if connect.CodeOf(err) != connect.CodePermissionDenied || connectReason(err) != "ACTION_DENIED" {
			t.Errorf("%s: a reader's command: %v (%s)", name, err, connectReason(err))
		}
	}
	if log := e.log.String(); !strings.Contains(log, "principal=key:alice") {
		t.Errorf("the call log names no principal:\n%s", log)
	}
	if audit := e.audit(); !strings.Contains(audit, `"principal":"key:alice"`) || !strings.Contains(audit, "SyncCommand") {
		t.Errorf("the denied command is not audited:\n%s", audit)
	}
}

// Under mTLS a browser's (or any HTTPS caller's) verified client certificate authenticates its Connect calls.
func TestWebRPCAuthenticatesWithClientCertificates(t *testing.T) {
	e := newSecureEnv(t, secureOpts{mtls: true})
	leaf := e.ca.Client(t, "billing-svc")
	res, err := connectCall[pb.ListInstancesRequest, pb.ListInstancesResponse](t, e.httpClient(leaf.TLS(t)), e.base, "ListInstances", &pb.ListInstancesRequest{PageNo: 1, PageSize: 5}, "")
	if err != nil || res.GetTotalCount() != 20 {
		t.Fatalf("with a client certificate: %v, %v", res, err)
	}
	if log := e.log.String(); !strings.Contains(log, "principal=cert:billing-svc") {
		t.Errorf("the call log names no certificate principal:\n%s", log)
	}
	_, err = connectCall[pb.ListInstancesRequest, pb.ListInstancesResponse](t, e.httpClient(), e.base, "ListInstances", &pb.ListInstancesRequest{PageNo: 1, PageSize: 5}, "")
	if connect.CodeOf(err) != connect.CodeUnauthenticated || connectReason(err) != "MISSING_CREDENTIALS" {
		t.Errorf("without a certificate: %v", err)
	}
}

// A command started over Connect is followed with WatchTask to its terminal message over the Connect stream
// protocol; --web-rpc=false leaves the paths to the REST mirror, which knows none of them.
func TestWebRPCStreamsAndSwitch(t *testing.T) {
	base := newSecureEnv(t, secureOpts{args: []string{"--sim-job-duration=300ms"}}).base
	list, err := connectCall[pb.ListInstancesRequest, pb.ListInstancesResponse](t, http.DefaultClient, base, "ListInstances", &pb.ListInstancesRequest{PageNo: 1, PageSize: 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	started, err := connectCall[pb.AsyncCommandRequest, pb.AsyncCommandResponse](t, http.DefaultClient, base, "AsyncCommand",
		&pb.AsyncCommandRequest{Command: "getprop ro.serialno", InstanceIds: []string{list.GetResult()[0].GetInstanceId()}}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := connect.NewClient[pb.WatchTaskRequest, pb.WatchTaskResponse](http.DefaultClient, base+"/koophone.v1.InstanceService/WatchTask").
		CallServerStream(ctx, connect.NewRequest(&pb.WatchTaskRequest{TaskId: started.GetTaskId()}))
	if err != nil {
		t.Fatal(err)
	}
	var last *pb.WatchTaskResponse
	for n := 0; stream.Receive(); n++ {
		last = stream.Msg()
	}
	if err := stream.Err(); err != nil || last == nil || !last.GetTerminal() || last.GetSucceededCount() != 1 {
		t.Fatalf("watch ended with %v after %v", err, last)
	}
	_ = stream.Close()

	// The caller's X-Request-Id is the call's, and comes back, as on the REST mirror.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/koophone.v1.InstanceService/ListInstances",
		strings.NewReader(`{"pageNo":1,"pageSize":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connect-Protocol-Version", "1")
	req.Header.Set("X-Request-Id", "web-demo-1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Request-Id") != "web-demo-1" {
		t.Errorf("request id: HTTP %d, X-Request-Id %q", res.StatusCode, res.Header.Get("X-Request-Id"))
	}

	off := newSecureEnv(t, secureOpts{args: []string{"--web-rpc=false"}})
	_, err = connectCall[pb.ListInstancesRequest, pb.ListInstancesResponse](t, http.DefaultClient, off.base, "ListInstances", &pb.ListInstancesRequest{PageNo: 1, PageSize: 5}, "")
	if err == nil {
		t.Fatal("--web-rpc=false still serves Connect")
	}
}

// On shutdown a Connect watch ends like a gRPC one, before the REST port drains: UNAVAILABLE with the reason
// SERVER_SHUTTING_DOWN, so the page reconnects elsewhere; the drain then waits for nothing.
func TestWebRPCStreamEndsOnShutdown(t *testing.T) {
	cfg, err := config.Load([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--audit-log=off", "--sim-fleet=20",
		"--sim-job-duration=1h"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, srv)
	base := "http://" + srv.HTTPAddr()
	started, err := connectCall[pb.AsyncCommandRequest, pb.AsyncCommandResponse](t, http.DefaultClient, base, "AsyncCommand",
		&pb.AsyncCommandRequest{Command: "getprop", InstanceIds: srv.Sim().InstanceIDs()[:1]}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := connect.NewClient[pb.WatchTaskRequest, pb.WatchTaskResponse](http.DefaultClient, base+"/koophone.v1.InstanceService/WatchTask").
		CallServerStream(ctx, connect.NewRequest(&pb.WatchTaskRequest{TaskId: started.GetTaskId()}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.Close() }()
	if !stream.Receive() {
		t.Fatalf("no first watch message: %v", stream.Err())
	}

	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- srv.Shutdown(sctx)
	}()
	for stream.Receive() {
	}
	if err := stream.Err(); connect.CodeOf(err) != connect.CodeUnavailable || connectReason(err) != "SERVER_SHUTTING_DOWN" {
		t.Fatalf("the watch ended with %v (%s), want UNAVAILABLE SERVER_SHUTTING_DOWN", err, connectReason(err))
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("shutdown never ended")
	}
}
