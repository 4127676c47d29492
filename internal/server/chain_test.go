package server

import (
	"context"
	"go/parser"
	"go/token"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/share"
	"github.com/koophone-gateway/koophone-gateway/internal/telemetry"
)

// noShares is the shares step with nothing configured.
func noShares(t *testing.T) *share.Shares {
	t.Helper()
	s, err := share.New(share.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testChain is the chain with authentication off, no shares and in-memory idempotency keys.
func testChain(t *testing.T, log *slog.Logger) chain {
	t.Helper()
	v, err := service.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	guard, err := auth.New(auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tel, err := telemetry.New(context.Background(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return chain{log: log, tel: tel, inFlight: new(atomic.Int64), guard: guard, shares: noShares(t), validator: v,
		defaultTimeout: time.Minute,
		idempotency:    idempotency.UnaryServerInterceptor(idempotency.Options{Store: idempotency.NewMemory(nil, 0), TTL: time.Hour})}
}

// runUnary sends req through the whole unary chain to h, as grpc would.
func runUnary(t *testing.T, ctx context.Context, log *slog.Logger, req any, h grpc.UnaryHandler) (any, error) {
	t.Helper()
	unary := testChain(t, log).unary() //nolint:contextcheck // builds the chain once; the call below gets ctx
	info := &grpc.UnaryServerInfo{FullMethod: "/koophone.v1.InstanceService/GetTask"}
	for i := len(unary) - 1; i >= 0; i-- {
		ic, next := unary[i], h
		h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
	}
	// grpc.SetHeader needs a server transport stream in the context.
	ctx = grpc.NewContextWithServerTransportStream(ctx, &fakeTransportStream{})
	return h(ctx, req)
}

type fakeTransportStream struct{ header metadata.MD }

func (s *fakeTransportStream) Method() string { return "/koophone.v1.InstanceService/GetTask" }
func (s *fakeTransportStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}
func (s *fakeTransportStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }
func (s *fakeTransportStream) SetTrailer(metadata.MD) error    { return nil }

func TestPanicBecomesInternal(t *testing.T) {
	var logs strings.Builder
	log := NewLogger(&logs, "text", slog.LevelInfo)
	_, err := runUnary(t, context.Background(), log, &pb.GetTaskRequest{TaskId: "abc"}, func(context.Context, any) (any, error) {
		panic("boom")
	})
	if status.Code(err) != codes.Internal || strings.Contains(status.Convert(err).Message(), "boom") {
		t.Fatalf("got %v; want INTERNAL without the panic's text", err)
	}
	if !strings.Contains(logs.String(), "panic in handler") || !strings.Contains(logs.String(), "boom") ||
		!strings.Contains(logs.String(), "request_id=") {
		t.Fatalf("log: %s", logs.String())
	}
}

func TestRequestIDAndDefaultDeadline(t *testing.T) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-request-id", "caller-id-1"))
	_, err := runUnary(t, ctx, slog.New(slog.DiscardHandler), &pb.GetTaskRequest{TaskId: "abc"}, func(ctx context.Context, _ any) (any, error) {
		if id := requestid.From(ctx); id != "caller-id-1" {
			t.Errorf("request id in context %q", id)
		}
		if _, ok := ctx.Deadline(); !ok {
			t.Error("no default deadline")
		}
		return &pb.GetTaskResponse{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestValidationRunsBeforeTheHandler(t *testing.T) {
	called := false
	_, err := runUnary(t, context.Background(), slog.New(slog.DiscardHandler), &pb.GetTaskRequest{TaskId: "a/b"}, func(context.Context, any) (any, error) {
		called = true
		return nil, nil
	})
	if status.Code(err) != codes.InvalidArgument || called {
		t.Fatalf("err %v, handler called %v", err, called)
	}
}

// documentedSteps reads the numbered steps ("  7. authenticate ...") of the chain's doc comment in chain.go.
func documentedSteps(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "chain.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	step := regexp.MustCompile(`^ *([0-9]+)\. ([a-z-]+)[ :]`)
	var names []string
	for _, g := range f.Comments {
		if !strings.Contains(g.Text(), "This list is the one description of the order") {
			continue
		}
		for _, line := range strings.Split(g.Text(), "\n") {
			if m := step.FindStringSubmatch(line); m != nil {
				if n, _ := strconv.Atoi(m[1]); n != len(names)+1 {
					t.Fatalf("step %q is numbered %s, want %d", m[2], m[1], len(names)+1)
				}
				names = append(names, m[2])
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("no numbered steps in chain.go's doc comment")
	}
	return names
}

// The chain runs in the order its doc comment gives, and streams differ from it only as the comment says.
func TestChainOrderIsTheDocumentedOne(t *testing.T) {
	c := testChain(t, slog.New(slog.DiscardHandler))
	doc := documentedSteps(t)
	var unary []string
	for _, s := range c.unarySteps() {
		if s.fn == nil {
			t.Errorf("unary step %s has no interceptor", s.name)
		}
		unary = append(unary, s.name)
	}
	if !slices.Equal(unary, doc) {
		t.Errorf("unary chain %v,\ndocumented %v", unary, doc)
	}
	// Streams: call-info inside request-id, the three guard steps as one, no idempotency.
	var want []string
	for _, name := range doc {
		switch name {
		case "call-info", "idempotency", "audit", "authorize":
		case "authenticate":
			want = append(want, "guard")
		default:
			want = append(want, name)
		}
	}
	var stream []string
	for _, s := range c.streamSteps() {
		if s.fn == nil {
			t.Errorf("stream step %s has no interceptor", s.name)
		}
		stream = append(stream, s.name)
	}
	if !slices.Equal(stream, want) {
		t.Errorf("stream chain %v, want %v", stream, want)
	}
}

// callStep runs one unary step alone around h.
func callStep(ctx context.Context, step grpc.UnaryServerInterceptor, req any, h grpc.UnaryHandler) (any, error) {
	ctx = grpc.NewContextWithServerTransportStream(ctx, &fakeTransportStream{})
	return step(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/koophone.v1.InstanceService/GetTask"}, h)
}

// request-id: the caller's valid id is kept, in the context and the response header; an invalid one is replaced.
func TestStepRequestID(t *testing.T) {
	for in, keep := range map[string]bool{"caller-1": true, "not valid": false, "": false} {
		ts := &fakeTransportStream{}
		ctx := grpc.NewContextWithServerTransportStream(metadata.NewIncomingContext(context.Background(), metadata.Pairs(requestid.Header, in)), ts)
		var seen string
		_, _ = unaryRequestID(nil)(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
			seen = requestid.From(ctx)
			return nil, nil
		})
		if (seen == in) != keep || seen == "" || ts.header.Get(requestid.Header)[0] != seen {
			t.Errorf("caller's id %q: context %q, header %v", in, seen, ts.header.Get(requestid.Header))
		}
	}
}

// in-flight: counts the call while it runs, and not after.
func TestStepInFlight(t *testing.T) {
	var n atomic.Int64
	_, _ = callStep(context.Background(), unaryInFlight(&n), nil, func(context.Context, any) (any, error) {
		if n.Load() != 1 {
			t.Errorf("in flight during the call: %d", n.Load())
		}
		return nil, nil
	})
	if n.Load() != 0 {
		t.Errorf("in flight after the call: %d", n.Load())
	}
}

// recovery: a panic becomes INTERNAL without its text, and a log line with it.
func TestStepRecovery(t *testing.T) {
	var logs strings.Builder
	_, err := callStep(context.Background(), recovery.UnaryServerInterceptor(recoverPanic(slog.New(slog.NewTextHandler(&logs, nil)))), nil,
		func(context.Context, any) (any, error) { panic("boom") })
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "boom") || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("err %v, log %s", err, logs.String())
	}
}

// validate: a bad request never reaches the handler; a good one does.
func TestStepValidate(t *testing.T) {
	v, err := service.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	step := unaryValidate(slog.New(slog.DiscardHandler), v)
	called := false
	h := func(context.Context, any) (any, error) { called = true; return nil, nil }
	if _, err := callStep(context.Background(), step, &pb.GetTaskRequest{TaskId: "a/b"}, h); status.Code(err) != codes.InvalidArgument || called {
		t.Fatalf("bad request: err %v, handler called %v", err, called)
	}
	if _, err := callStep(context.Background(), step, &pb.GetTaskRequest{TaskId: "t-1"}, h); err != nil || !called {
		t.Fatalf("good request: err %v, handler called %v", err, called)
	}
}

// deadline: a call without a deadline gets the default one.
func TestStepDeadline(t *testing.T) {
	_, _ = callStep(context.Background(), unaryDeadline(time.Minute), nil, func(ctx context.Context, _ any) (any, error) {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > time.Minute {
			t.Errorf("deadline %v %v, want within a minute", dl, ok)
		}
		return nil, nil
	})
}
