package rest

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

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
	ch    *InProcChannel
	calls []string            // what the interceptors saw, in order
	spans []trace.SpanContext // the span each interceptor ran in
}

func start(t *testing.T, streams uint32, opts ...InProcChannelOption) *env {
	t.Helper()
	e := &env{}
	mark := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			e.calls = append(e.calls, name+" "+info.FullMethod)
			e.spans = append(e.spans, trace.SpanContextFromContext(ctx))
			return h(ctx, req)
		}
	}
	srv := grpc.NewServer(grpc.MaxConcurrentStreams(streams))
	reg := NewInProcRegistrar(srv)
	healthpb.RegisterHealthServer(reg, probe{health.NewServer()})
	lis := ListenInProcess()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	conns, err := DialInProcess(lis, 1)
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
	e.ch = NewInProcChannel(reg, []grpc.UnaryServerInterceptor{mark("outer"), mark("inner")}, conns, opts...)
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
	if _, err := DialInProcess(ListenInProcess(), 0); err == nil {
		t.Fatal("no connection accepted")
	}
}

// With a tracer provider, a unary call is a server span named as otelgrpc names it, a child of the caller's span
// (the REST request's), and the chain and the handler run in it; its code is recorded, and only the codes that
// are the server's failure mark it failed.
func TestUnaryCallIsAServerSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	e := start(t, 10, WithTracerProvider(tp))
	client := healthpb.NewHealthClient(e.ch)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "REST POST /v1/x")
	ctx = metadata.AppendToOutgoingContext(ctx, "x-in", "x")
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	_, _ = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "status"})
	_, _ = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "plain"})
	parent.End()

	var server []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindServer {
			server = append(server, s)
		}
	}
	if len(server) != 3 {
		t.Fatalf("%d server spans, want 3", len(server))
	}
	for i, want := range []struct {
		code   string
		failed bool
	}{{"OK", false}, {"FAILED_PRECONDITION", false}, {"UNKNOWN", true}} {
		s := server[i]
		if s.Name() != "grpc.health.v1.Health/Check" || s.Parent().SpanID() != parent.SpanContext().SpanID() ||
			s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("span %d: %q parent %v", i, s.Name(), s.Parent().SpanID())
		}
		attrs := map[attribute.Key]string{}
		for _, a := range s.Attributes() {
			attrs[a.Key] = a.Value.String()
		}
		for k, v := range map[attribute.Key]string{"rpc.system.name": "grpc", "rpc.system": "grpc", "rpc.service": "grpc.health.v1.Health",
			"rpc.method": "grpc.health.v1.Health/Check", "rpc.response.status_code": want.code} {
			if attrs[k] != v {
				t.Errorf("span %d: %s=%q, want %q", i, k, attrs[k], v)
			}
		}
		if failed := s.Status().Code == otelcodes.Error; failed != want.failed {
			t.Errorf("span %d (%s): failed=%v", i, want.code, failed)
		}
	}
	// The chain ran inside the server span, not in the caller's.
	if len(e.spans) == 0 || e.spans[0].SpanID() != server[0].SpanContext().SpanID() {
		t.Errorf("the interceptors ran in span %v, want the server span %v", e.spans, server[0].SpanContext().SpanID())
	}
}

// Without a tracer provider the call makes no span: the handler runs in the caller's.
func TestNoSpanWithoutTracer(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	e := start(t, 10, WithTracerProvider(nil))
	ctx, parent := tp.Tracer("test").Start(context.Background(), "REST")
	ctx = metadata.AppendToOutgoingContext(ctx, "x-in", "x")
	if _, err := healthpb.NewHealthClient(e.ch).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if n := len(rec.Ended()); n != 1 || e.spans[0].SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("%d spans; handler in %v", n, e.spans)
	}
}
