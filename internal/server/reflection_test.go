package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"

	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/koophone-gateway/koophone-gateway/internal/config"
)

func TestReflectionListsTheServices(t *testing.T) {
	e := newEnv(t)
	stream, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	res, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	var names []string
	for _, s := range res.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	sort.Strings(names)
	got := strings.Join(names, ",")
	for _, want := range []string{"koophone.v1.AppService", "koophone.v1.InstanceService", "koophone.v1.OrderService", "grpc.health.v1.Health"} {
		if !strings.Contains(got, want) {
			t.Errorf("reflection lists %s, missing %s", got, want)
		}
	}
}

func TestHealthzAndReadyz(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		res, err := e.http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: HTTP %d %s", path, res.StatusCode, b)
		}
	}
	e.srv.setServing(false)
	res, err := e.http.Get(e.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while NOT_SERVING: HTTP %d", res.StatusCode)
	}
}

// TestStartFailsCleanly: a port already taken is a clear error, with nothing left running (goleak checks).
func TestStartFailsCleanly(t *testing.T) {
	e := newEnv(t)
	cfg, err := config.Load([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=" + e.srv.HTTPAddr()}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || srv != nil || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("Start on a taken port: %v, %v", srv, err)
	}
}
