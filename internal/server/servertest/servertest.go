// Package servertest starts the whole gateway as `make run` does (embedded simulator, real listeners on loopback),
// for tests of the clients that call it from outside the process: other languages, curl, a browser.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/server"
)

// Fast are settings that keep the simulator's jobs and prepare queue short, so a test does not wait on them.
var Fast = []string{"--sim-job-duration=300ms", "--sim-prepare-step=100ms"}

// Start starts the gateway on free loopback ports with the default configuration plus args (flags of cmd/server;
// the environment is ignored), waits until /readyz answers ready, and shuts it down when the test ends.
func Start(t testing.TB, args ...string) *server.Server {
	t.Helper()
	cfg, err := config.Load(append([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0"}, args...),
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	// Readiness comes from the first probe of the simulator; poll it (a wait, not a timing assertion).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + srv.HTTPAddr() + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never became ready (last: %v)", err)
		}
	}
}
