package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/share"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
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

// runUnary sends req through the whole unary chain to h, as grpc would.
func runUnary(t *testing.T, ctx context.Context, log *slog.Logger, req any, h grpc.UnaryHandler) (any, error) {
	t.Helper()
	v, err := service.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	guard, err := auth.New(auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	unary, _ := interceptors(log, v, time.Minute, guard, noShares(t), nil)
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
		if id := upstream.RequestIDFrom(ctx); id != "caller-id-1" {
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
