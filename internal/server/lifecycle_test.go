package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

func TestClosersRunLastInFirstOut(t *testing.T) {
	var ran []string
	c := closers{ran: func(name string) { ran = append(ran, name) }}
	for _, name := range []string{"a", "b", "c"} {
		c.push(name, func(context.Context) error {
			if name == "b" {
				return errors.New("broken")
			}
			return nil
		})
	}
	err := c.unwind(context.Background())
	if !slices.Equal(ran, []string{"c", "b", "a"}) || err == nil || err.Error() != "b: broken" {
		t.Fatalf("ran %v, err %v; want c, b, a and b's error", ran, err)
	}
	ran = nil
	if err := c.unwind(context.Background()); err != nil || len(ran) != 0 {
		t.Fatalf("second unwind ran %v (%v): each closer runs once", ran, err)
	}
}

// lateTransport counts the KooPhone requests sent after the client's closer ran.
type lateTransport struct {
	base   http.RoundTripper
	closed atomic.Bool
	late   atomic.Int64
}

func (l *lateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if l.closed.Load() {
		l.late.Add(1)
	}
	return l.base.RoundTrip(r)
}

// A REST unary call and a REST stream in flight when shutdown begins both end cleanly: the stream with the
// shutting-down status, the unary call with its answer, which it gets from a KooPhone client that is still open;
// the parts close in the documented order and nothing reaches the client after it closed.
func TestShutdownDrainsRESTBeforeWhatItCalls(t *testing.T) {
	clk := clocktest.NewFake(time.Now())
	cfg, err := config.Load([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--audit-log=off", "--sim-fleet=20",
		"--upstream-read-rate=0", "--upstream-write-rate=0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	up := &lateTransport{base: upstream.NewTransport()}
	var mu sync.Mutex
	var closed []string
	restDraining := make(chan struct{})
	srv, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler),
		WithSimConfig(func(c *sim.Config) { c.Clock, c.JobDuration = clk, time.Hour }),
		WithWatchOptions(func(o *service.WatchOptions) { o.Clock = clk }),
		WithUpstreamConfig(func(c *upstream.Config) { c.HTTPClient = &http.Client{Transport: up} }),
		func(o *options) {
			o.closing = func(name string) {
				mu.Lock()
				closed = append(closed, name)
				mu.Unlock()
				switch name {
				case "REST listener":
					close(restDraining)
				case "KooPhone client":
					up.closed.Store(true)
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, srv)
	base := "http://" + srv.HTTPAddr()
	phones := srv.Sim().InstanceIDs()

	// The stream: a REST watch of an hour-long task, its first message read.
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	task, err := pb.NewInstanceServiceClient(conn).AsyncCommand(ctx, &pb.AsyncCommandRequest{Command: "getprop", InstanceIds: phones[:1]})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/instances/tasks/"+task.GetTaskId()+"/watch", nil)
	watch, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = watch.Body.Close() }()
	lines := bufio.NewScanner(watch.Body)
	if !lines.Scan() {
		t.Fatalf("no first watch message: %v", lines.Err())
	}

	// The unary call: held in the simulator by a minute of latency on its (fake) clock.
	if err := srv.Sim().SetFaults([]sim.Fault{{Kind: sim.FaultLatency, Latency: time.Minute, Ops: []string{"BatchQueryStatus"}, Count: 1}}); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code int
		body string
		err  error
	}
	unary := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/instances/batch-query-status",
			strings.NewReader(`{"instance_ids":["`+phones[1]+`"]}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			unary <- answer{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		unary <- answer{res.StatusCode, string(b), err}
	}()
	for srv.Sim().Calls("BatchQueryStatus") == 0 {
		select {
		case a := <-unary:
			t.Fatalf("the REST call ended before shutdown: HTTP %d %q %v", a.code, a.body, a.err)
		default:
		}
		if ctx.Err() != nil {
			t.Fatal("the REST call never reached the simulator")
		}
		time.Sleep(time.Millisecond)
	}

	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- srv.Shutdown(sctx)
	}()

	// The stream ends first, cleanly, with the shutting-down status as its last line.
	var last string
	for lines.Scan() {
		last = lines.Text()
	}
	if err := lines.Err(); err != nil {
		t.Fatalf("REST stream cut instead of ended: %v", err)
	}
	var end struct {
		Error struct {
			Code    int
			Details []struct{ Reason string }
		}
	}
	if err := json.Unmarshal([]byte(last), &end); err != nil || end.Error.Code != 14 || len(end.Error.Details) == 0 ||
		end.Error.Details[0].Reason != service.ReasonShuttingDown {
		t.Fatalf("REST stream's last line %q (%v), want UNAVAILABLE SERVER_SHUTTING_DOWN", last, err)
	}

	// The REST listener drains while the unary call is still held; let the simulator answer it.
	select {
	case <-restDraining:
	case <-ctx.Done():
		t.Fatal("shutdown never reached the REST listener")
	}
	var a answer
	for done := false; !done; {
		clk.Advance(time.Minute)
		select {
		case a = <-unary:
			done = true
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("the held REST call never ended")
		}
	}
	if a.err != nil || a.code != http.StatusOK || !strings.Contains(a.body, phones[1]) {
		t.Fatalf("REST unary call during shutdown: HTTP %d %q %v, want 200 with its answer", a.code, a.body, a.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := up.late.Load(); n > 0 {
		t.Errorf("%d KooPhone requests after the client closed", n)
	}
	want := []string{"streams", "readiness probe", "REST listener", "REST workers", "REST stream connections", "gRPC server",
		"audit log", "KooPhone client", "simulator", "telemetry"}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(closed, want) {
		t.Errorf("closed %v,\nwant   %v", closed, want)
	}
}

// A Start that fails part way closes what it built (the package's goleak check sees no goroutine left).
func TestFailedStartClosesWhatItBuilt(t *testing.T) {
	cfg, err := config.Load([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=256.0.0.1:0", "--audit-log=off", "--insecure-no-auth"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var closed []string
	_, err = Start(context.Background(), cfg, slog.New(slog.DiscardHandler),
		func(o *options) { o.closing = func(name string) { closed = append(closed, name) } })
	if err == nil || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("Start: %v, want the HTTP listener's error", err)
	}
	want := []string{"gRPC server", "audit log", "KooPhone client", "simulator", "telemetry"}
	if !slices.Equal(closed, want) {
		t.Fatalf("closed %v, want %v", closed, want)
	}
}

// waitReady waits until /readyz answers 200.
func waitReady(t *testing.T, srv *Server) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		res, err := http.Get("http://" + srv.HTTPAddr() + "/readyz")
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return
		}
		last = string(b)
	}
	t.Fatalf("never ready; last: %s", last)
}
