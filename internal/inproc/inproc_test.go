package inproc

import (
	"context"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Streams and unary calls reach the server over separate in-memory connections.
func TestUnaryAndStreamsOnTheirOwnConnections(t *testing.T) {
	srv := grpc.NewServer(grpc.MaxConcurrentStreams(2))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	lis := Listen()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	defer func() {
		srv.Stop()
		<-done
	}()
	conns, err := Dial(lis, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	client := healthpb.NewHealthClient(conns)

	// Fill the stream connection's two slots with held watches.
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
	// Unary calls still go through, on their own connection.
	for range 5 {
		res, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check: %v %v", res, err)
		}
	}
}

func TestDialNeedsBothKinds(t *testing.T) {
	if _, err := Dial(Listen(), 0, 1); err == nil {
		t.Fatal("no unary connection accepted")
	}
}
