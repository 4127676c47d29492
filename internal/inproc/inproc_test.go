package inproc

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// probe is a health service whose Check shows what a handler sees, and answers as its request's service name asks.
type probe struct {
	*health.Server
}

func (p probe) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	method, _ := grpc.Method(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	pr, _ := peer.FromContext(ctx)
	if out, _ := metadata.FromOutgoingContext(ctx); len(out) > 0 {
		return nil, errors.New("the caller's outgoing metadata leaked into the handler")
	}
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-method", method, "x-peer", pr.Addr.String())); err != nil {
		return nil, err
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-echo", md.Get("x-in")[0]))
	switch req.GetService() {
	case "status":
		st, _ := status.New(codes.FailedPrecondition, "not now").WithDetails(&errdetails.ErrorInfo{Reason: "BUSY"})
		return nil, st.Err()
	case "plain":
		return nil, errors.New("plain error")
	case "deadline":
		<-ctx.Done()
		return nil, ctx.Err()
	case "mutate":
		req.Service = "changed by the handler"
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

type env struct {
	ch    *Channel
	calls []string // what the interceptors saw, in order
}

func start(t *testing.T, streams uint32) *env {
	t.Helper()
	e := &env{}
	mark := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			e.calls = append(e.calls, name+" "+info.FullMethod)
			return h(ctx, req)
		}
	}
	srv := grpc.NewServer(grpc.MaxConcurrentStreams(streams))
	reg := NewRegistrar(srv)
	healthpb.RegisterHealthServer(reg, probe{health.NewServer()})
	lis := Listen()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	conns, err := Dial(lis, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conns.Close()
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	e.ch = NewChannel(reg, []grpc.UnaryServerInterceptor{mark("outer"), mark("inner")}, conns)
	return e
}

// A unary call runs the chain in order and the handler sees what it would over the server: incoming metadata,
// the method, a peer; its headers and trailers reach the caller's options; the request and answer are copies.
func TestUnaryCallRunsInProcessLikeOverTheServer(t *testing.T) {
	e := start(t, 10)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-in", "hello")
	var header, trailer metadata.MD
	req := &healthpb.HealthCheckRequest{Service: "mutate"}
	res, err := healthpb.NewHealthClient(e.ch).Check(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("answer %v", res)
	}
	if req.GetService() != "mutate" {
		t.Errorf("the handler changed the caller's request: %q", req.GetService())
	}
	const method = "/grpc.health.v1.Health/Check"
	if got := header.Get("x-method"); len(got) != 1 || got[0] != method {
		t.Errorf("header x-method %v", got)
	}
	if got := header.Get("x-peer"); len(got) != 1 || got[0] != "in-process" {
		t.Errorf("header x-peer %v", got)
	}
	if got := trailer.Get("x-echo"); len(got) != 1 || got[0] != "hello" {
		t.Errorf("trailer x-echo %v", got)
	}
	if want := []string{"outer " + method, "inner " + method}; len(e.calls) != 2 || e.calls[0] != want[0] || e.calls[1] != want[1] {
		t.Errorf("interceptors ran %v, want %v", e.calls, want)
	}
}

// Errors reach the caller as a client of the server would see them.
func TestUnaryErrorsAreStatuses(t *testing.T) {
	e := start(t, 10)
	client := healthpb.NewHealthClient(e.ch)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-in", "x")

	var trailer metadata.MD
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "status"}, grpc.Trailer(&trailer))
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || len(st.Details()) != 1 {
		t.Errorf("status error arrived as %v %v", st.Code(), st.Details())
	}
	if len(trailer.Get("x-echo")) != 1 {
		t.Errorf("trailer lost with an error: %v", trailer)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "plain"}); status.Code(err) != codes.Unknown {
		t.Errorf("plain error arrived as %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := client.Check(short, &healthpb.HealthCheckRequest{Service: "deadline"}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("expired call arrived as %v", err)
	}
	if err := e.ch.Invoke(ctx, "/grpc.health.v1.Health/Nope", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v", err)
	}
}

// Streams go over the in-memory connections; held streams that fill every slot do not stop unary calls.
func TestHeldStreamsDoNotStopUnaryCalls(t *testing.T) {
	e := start(t, 2)
	client := healthpb.NewHealthClient(e.ch)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		w, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	call := metadata.AppendToOutgoingContext(context.Background(), "x-in", "x")
	for range 5 {
		res, err := client.Check(call, &healthpb.HealthCheckRequest{})
		if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check: %v %v", res, err)
		}
	}
}

func TestDialNeedsAConnection(t *testing.T) {
	if _, err := Dial(Listen(), 0); err == nil {
		t.Fatal("no connection accepted")
	}
}
