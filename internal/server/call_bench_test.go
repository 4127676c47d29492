package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
)

// BenchmarkUnaryCall is one whole BatchQueryStatus of 10 phones, in one process: client, gateway with its full
// chain (logging at info, to a discarding handler), KooPhone client, and the embedded simulator over loopback HTTP.
// allocs/op counts all of them; cmd/loadbench measures the gateway alone, in its own process.
func BenchmarkUnaryCall(b *testing.B) {
	// No client-side quota: at its default 50 reads/s it would time the limiter, not the call.
	cfg, err := config.Load([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--sim-fleet=20", "--audit-log=off", "--upstream-read-rate=0"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := Start(context.Background(), cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	client := pb.NewInstanceServiceClient(conn)
	ids := srv.Sim().InstanceIDs()[:10]
	req := &pb.BatchQueryStatusRequest{InstanceIds: ids}
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; { // until the readiness probe has logged in
		if _, err := client.BatchQueryStatus(ctx, req); err == nil {
			break
		} else if time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Run("gRPC", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.BatchQueryStatus(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	body := `{"instance_ids":["` + strings.Join(ids, `","`) + `"]}`
	b.Run("REST", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, err := hc.Post("http://"+srv.HTTPAddr()+"/v1/instances/batch-query-status", "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatalf("HTTP %d", res.StatusCode)
			}
		}
	})
}
