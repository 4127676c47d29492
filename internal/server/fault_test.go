package server

// The fault suite: mixed load through the whole gateway (gRPC and the REST mirror) while the embedded simulator
// injects faults, asserting the status of every call, the breaker, the retry budget, the connection bound, and
// that no write is ever sent twice. The simulator runs on a fake clock that starts at the real time and does not
// move unless a test moves it, so a latency fault is a hang until the test advances the clock. Goroutine leaks
// are checked by the package's TestMain (goleak).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

var listReq = &pb.ListInstancesRequest{PageNo: 1, PageSize: 10}

// faultEnv is a gateway on the embedded simulator with a connection counter at the simulator.
type faultEnv struct {
	t     *testing.T
	srv   *Server
	sim   *sim.Server
	clk   *clock.Fake
	conn  *grpc.ClientConn
	inst  pb.InstanceServiceClient
	order pb.OrderServiceClient
	log   *testsupport.SyncBuffer

	open, maxOpen atomic.Int64 // connections to the simulator now, and at most
	cutOK         bool         // the test cuts calls at shutdown on purpose
}

// testsupport.SyncBuffer collects log output from many goroutines.

func newFaultEnv(t *testing.T, flags ...string) *faultEnv {
	t.Helper()
	return newFaultEnvIn(t, func(string) string { return "" }, flags...)
}

// newFaultEnvIn is newFaultEnv with the environment getenv reads.
func newFaultEnvIn(t *testing.T, getenv func(string) string, flags ...string) *faultEnv {
	t.Helper()
	args := append([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--sim-fleet=50", "--audit-log=off"}, flags...)
	cfg, err := config.Load(args, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e := &faultEnv{t: t, clk: clock.NewFake(time.Now()), log: &testsupport.SyncBuffer{}}
	srv, err := Start(context.Background(), cfg, NewLogger(e.log, "text", slog.LevelInfo),
		WithSimConfig(func(c *sim.Config) {
			c.Clock = e.clk
			c.Seed = 9
			c.Stock = 1000
		}),
		WithWatchOptions(func(o *service.WatchOptions) { o.Clock = e.clk }),
		// Retries back off on the real clock (the fake one never moves by itself), briefly.
		WithUpstreamConfig(func(c *upstream.Config) {
			c.Retry = upstream.RetryPolicy{MaxAttempts: 3, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
		}),
		func(o *options) {
			o.simConn = func(_ net.Conn, st http.ConnState) {
				switch st {
				case http.StateNew:
					n := e.open.Add(1)
					for m := e.maxOpen.Load(); n > m; m = e.maxOpen.Load() {
						if e.maxOpen.CompareAndSwap(m, n) {
							break
						}
					}
				case http.StateClosed, http.StateHijacked:
					e.open.Add(-1)
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.sim = srv, srv.Sim()
	e.conn, err = grpc.NewClient(srv.GRPCAddr(), append(checkErrorInfos(t), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	e.inst, e.order = pb.NewInstanceServiceClient(e.conn), pb.NewOrderServiceClient(e.conn)
	t.Cleanup(func() {
		_ = e.conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !e.cutOK {
			t.Error(err)
		}
	})
	hc := healthpb.NewHealthClient(e.conn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never became SERVING (last: %v %v); log:\n%s", res, err, e.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.sim.ResetCalls()
	return e
}

func (e *faultEnv) faults(fs ...sim.Fault) {
	e.t.Helper()
	if err := e.sim.SetFaults(fs); err != nil {
		e.t.Fatal(err)
	}
}

// callCtx bounds a call the way a client's deadline does.
func callCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// reason returns the status's ErrorInfo reason and whether it carries RetryInfo.
func reason(err error) (codes.Code, string, bool) {
	st := status.Convert(err)
	r, retry := "", false
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			r = d.GetReason()
		case *errdetails.RetryInfo:
			retry = true
		}
	}
	return st.Code(), r, retry
}

// Every fault, one call each, on the transport and kind of call it matters for: the status says what happened,
// and a write is never sent twice.
func TestFaultStatuses(t *testing.T) {
	e := newFaultEnv(t, "--breaker-failures=1000", "--watch-step-timeout=300ms")
	phone := e.sim.InstanceIDs()[0]
	type result struct {
		code   codes.Code
		reason string
		// or is the reason of the gateway's own answer when it may race the caller's deadline: both end the call
		// with DEADLINE_EXCEEDED at the same instant, and whichever lands first is right.
		or string
	}
	cases := []struct {
		name   string
		fault  sim.Fault
		op     string // the simulator operation, for the count of requests it received
		call   func(ctx context.Context) error
		want   result
		sends  int64 // requests KooPhone must have received
		within time.Duration
	}{
		{"read 503 is retried, then UNAVAILABLE", sim.Fault{Kind: sim.Fault503}, "ListInstances",
			func(ctx context.Context) error { _, err := e.inst.ListInstances(ctx, listReq); return err },
			result{codes.Unavailable, service.ReasonHTTP, ""}, 3, 5 * time.Second},
		{"read with malformed 200 is INTERNAL", sim.Fault{Kind: sim.FaultMalformed}, "BatchShowSku",
			func(ctx context.Context) error {
				_, err := e.order.BatchShowSku(ctx, &pb.BatchShowSkuRequest{})
				return err
			},
			result{codes.Internal, service.ReasonBadResponse, ""}, 1, 5 * time.Second},
		{"read hung past the deadline", sim.Fault{Kind: sim.FaultLatency, Latency: time.Hour}, "GetTask",
			func(ctx context.Context) error {
				_, err := e.inst.GetTask(ctx, &pb.GetTaskRequest{TaskId: "t-1"})
				return err
			},
			result{codes.DeadlineExceeded, "", service.ReasonUnavailable}, 1, 300 * time.Millisecond},
		{"write cut off after sending is OUTCOME_UNKNOWN", sim.Fault{Kind: sim.FaultDrop}, "CreateInstance",
			func(ctx context.Context) error {
				_, err := e.order.CreateInstance(ctx, createReq(goodSku, 1))
				return err
			},
			result{codes.Unknown, service.ReasonOutcomeUnknown, ""}, 1, 5 * time.Second},
		{"write answered with a truncated 200 is OUTCOME_UNKNOWN", sim.Fault{Kind: sim.FaultTruncated}, "CreateInstance",
			func(ctx context.Context) error {
				_, err := e.order.CreateInstance(ctx, createReq(goodSku, 1))
				return err
			},
			result{codes.Unknown, service.ReasonOutcomeUnknown, ""}, 1, 5 * time.Second},
		{"write behind a 502 proxy page is OUTCOME_UNKNOWN", sim.Fault{Kind: sim.Fault502}, "BatchReset",
			func(ctx context.Context) error {
				_, err := e.inst.BatchReset(ctx, &pb.BatchResetRequest{InstanceIds: []string{phone}})
				return err
			},
			result{codes.Unknown, service.ReasonOutcomeUnknown, ""}, 1, 5 * time.Second},
		// A proxy's 503 page does not prove KooPhone refused the write: it may come after the work was done.
		{"write answered with a 503 page is OUTCOME_UNKNOWN and not repeated", sim.Fault{Kind: sim.Fault503}, "BatchRebootInstance",
			func(ctx context.Context) error {
				_, err := e.inst.BatchRebootInstance(ctx, &pb.BatchRebootInstanceRequest{InstanceIds: []string{phone}})
				return err
			},
			result{codes.Unknown, service.ReasonOutcomeUnknown, ""}, 1, 5 * time.Second},
		{"write with KooPhone's 500 unknown error (9999) is OUTCOME_UNKNOWN", sim.Fault{Kind: sim.FaultError}, "AsyncCommand",
			func(ctx context.Context) error {
				_, err := e.inst.AsyncCommand(ctx, &pb.AsyncCommandRequest{Command: "ls", InstanceIds: []string{phone}})
				return err
			},
			result{codes.Unknown, service.ReasonOutcomeUnknown, ""}, 1, 5 * time.Second},
		{"write hung past the deadline is OUTCOME_UNKNOWN", sim.Fault{Kind: sim.FaultLatency, Latency: time.Hour}, "SyncCommand",
			func(ctx context.Context) error {
				_, err := e.inst.SyncCommand(ctx, &pb.SyncCommandRequest{Command: "ls", InstanceIds: []string{phone}})
				return err
			},
			result{codes.DeadlineExceeded, "", service.ReasonOutcomeUnknown}, 1, 300 * time.Millisecond},
		{"stream without a deadline: its AsyncCommand hangs, the step timeout ends it", sim.Fault{Kind: sim.FaultLatency, Latency: time.Hour}, "AsyncCommand",
			func(ctx context.Context) error {
				s, err := e.inst.RunAsyncCommand(ctx, &pb.RunAsyncCommandRequest{Command: "ls", InstanceIds: []string{phone}})
				if err != nil {
					return err
				}
				_, err = s.Recv()
				return err
			},
			result{codes.DeadlineExceeded, service.ReasonOutcomeUnknown, ""}, 1, 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fault.Ops = []string{c.op}
			e.faults(c.fault)
			defer e.faults()
			before := e.sim.Calls(c.op)
			err := c.call(callCtx(t, c.within))
			code, r, _ := reason(err)
			if code != c.want.code || (r != c.want.reason && (c.want.or == "" || r != c.want.or)) {
				t.Fatalf("got %v %q (%v), want %v %q", code, r, err, c.want.code, c.want.reason)
			}
			if n := e.sim.Calls(c.op) - before; n != c.sends {
				t.Fatalf("KooPhone received %d requests, want %d", n, c.sends)
			}
		})
	}
}

// A 429 with Retry-After seen by one call holds back every caller: a call whose deadline ends before the
// Retry-After gets RESOURCE_EXHAUSTED with RetryInfo at once, and sends nothing.
func TestFault429HoldsBackEveryCaller(t *testing.T) {
	e := newFaultEnv(t)
	e.faults(sim.Fault{Kind: sim.Fault429, Ops: []string{"ListInstances"}, Count: 1, RetryAfter: 30 * time.Second})
	_, err := e.inst.ListInstances(callCtx(t, 2*time.Second), listReq)
	if code, _, retry := reason(err); code != codes.ResourceExhausted || !retry {
		t.Fatalf("the 429 itself: %v (RetryInfo %v)", err, retry)
	}
	before := e.sim.AllCalls()
	for range 20 { // others, reads and writes, while the hold lasts
		_, err := e.order.BatchShowSku(callCtx(t, 2*time.Second), &pb.BatchShowSkuRequest{})
		if code, r, retry := reason(err); code != codes.ResourceExhausted || r != service.ReasonRateLimited || !retry {
			t.Fatalf("held call: %v %q RetryInfo %v", code, r, retry)
		}
	}
	if after := e.sim.AllCalls(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("held calls reached KooPhone: %v then %v", before, after)
	}
}

// An outage under load: every request fails with 503. Calls get UNAVAILABLE, the breaker opens and then fails
// calls without sending anything, KooPhone receives at most 1.2 requests per call (the retry budget), and once
// KooPhone is back the breaker probes and closes.
func TestFaultOutageOpensBreakerAndBudgetsRetries(t *testing.T) {
	e := newFaultEnv(t, "--breaker-failures=5", "--breaker-open-for=300ms", "--upstream-retry-min=1")
	e.faults(sim.Fault{Kind: sim.Fault503})
	const callers, each = 20, 10
	var calls, breakerOpen atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				ctx := callCtx(t, 5*time.Second)
				var err error
				switch (i + j) % 3 {
				case 0:
					_, err = e.inst.ListInstances(ctx, listReq)
				case 1:
					_, err = e.inst.BatchQueryStatus(ctx, &pb.BatchQueryStatusRequest{InstanceIds: []string{e.sim.InstanceIDs()[0]}})
				default:
					_, err = e.inst.GetTask(ctx, &pb.GetTaskRequest{TaskId: "t-1"})
				}
				calls.Add(1)
				code, r, retry := reason(err)
				switch {
				case code == codes.Unavailable && r == service.ReasonUnavailable && retry:
					breakerOpen.Add(1)
				case code == codes.Unavailable && r == service.ReasonHTTP:
				default:
					errs <- fmt.Errorf("call during the outage: %v %q %v", code, r, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var sent int64
	for _, n := range e.sim.AllCalls() {
		sent += n
	}
	t.Logf("outage: %d calls, %d upstream requests (%.2f per call), %d failed fast by the open breaker",
		calls.Load(), sent, float64(sent)/float64(calls.Load()), breakerOpen.Load())
	if float64(sent) > 1.2*float64(calls.Load()) {
		t.Fatalf("%d upstream requests for %d calls: more than 1.2 per call", sent, calls.Load())
	}
	if breakerOpen.Load() == 0 || e.srv.up.BreakerState() == upstream.BreakerClosed {
		t.Fatalf("the breaker never opened (state %s)", e.srv.up.BreakerState())
	}

	e.faults()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.inst.ListInstances(callCtx(t, 5*time.Second), listReq)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("KooPhone is back but calls still fail: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := e.srv.up.BreakerState(); st != upstream.BreakerClosed {
		t.Fatalf("breaker %s after KooPhone came back", st)
	}
}

// 100 concurrent calls over a slow KooPhone open no more connections than the bound (plus the IAM client's
// own), and none is lost.
func TestFaultConnectionsStayWithinTheBound(t *testing.T) {
	const bound, callers = 4, 100
	e := newFaultEnv(t, fmt.Sprintf("--upstream-max-conns=%d", bound))
	e.faults(sim.Fault{Kind: sim.FaultLatency, Latency: time.Second, Ops: []string{"ListInstances"}})
	var wg sync.WaitGroup
	var failed atomic.Int64
	var done atomic.Int64
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer done.Add(1)
			if _, err := e.inst.ListInstances(callCtx(t, 20*time.Second), listReq); err != nil {
				failed.Add(1)
				t.Error(err)
			}
		}()
	}
	// Each request sleeps one second of the fake clock: move it until every call has its answer.
	deadline := time.Now().Add(20 * time.Second)
	for done.Load() < callers && time.Now().Before(deadline) {
		e.clk.Advance(time.Second)
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("%d calls over a slow KooPhone: at most %d connections open (bound %d), %d requests", callers, e.maxOpen.Load(), bound, e.sim.Calls("ListInstances"))
	// The IAM token client has a transport (and so a connection) of its own; the simulator serves IAM too.
	if m := e.maxOpen.Load(); m > bound+1 {
		t.Fatalf("%d connections to KooPhone at once, bound %d (+1 for IAM)", m, bound)
	}
	if n := e.sim.Calls("ListInstances"); n != callers {
		t.Fatalf("KooPhone received %d requests for %d calls", n, callers)
	}
}

// Mixed load, both transports, while faults hit a fraction of the requests at random: every call ends with a
// status from the expected set, and no write reaches KooPhone more than once per call.
func TestFaultMixedLoad(t *testing.T) {
	e := newFaultEnv(t, "--breaker-failures=1000")
	e.faults(
		sim.Fault{Kind: sim.Fault503, Rate: 0.1},
		sim.Fault{Kind: sim.FaultDrop, Rate: 0.05},
		sim.Fault{Kind: sim.FaultTruncated, Rate: 0.05},
		sim.Fault{Kind: sim.FaultMalformed, Rate: 0.05},
		sim.Fault{Kind: sim.FaultError, Rate: 0.05},
	)
	phones := e.sim.InstanceIDs()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	base := "http://" + e.srv.HTTPAddr()
	// FAILED_PRECONDITION: KooPhone's own answer to rebooting a phone that is not running.
	allowed := map[codes.Code]bool{codes.OK: true, codes.Unavailable: true, codes.Unknown: true, codes.Internal: true, codes.FailedPrecondition: true}
	var writes atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				ctx := callCtx(t, 5*time.Second)
				var err error
				switch (i*5 + j) % 4 {
				case 0:
					_, err = e.inst.ListInstances(ctx, listReq)
				case 1:
					writes.Add(1)
					_, err = e.inst.BatchRebootInstance(ctx, &pb.BatchRebootInstanceRequest{InstanceIds: []string{phones[i%len(phones)]}})
				case 2:
					writes.Add(1)
					_, err = e.order.CreateInstance(ctx, createReq(goodSku, 1))
				default:
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/instances/batch-query-status", strings.NewReader(`{"instance_ids":["`+phones[j]+`"]}`))
					req.Header.Set("Content-Type", "application/json")
					res, herr := hc.Do(req)
					if herr != nil {
						errs <- herr
						continue
					}
					_, _ = io.Copy(io.Discard, res.Body)
					_ = res.Body.Close()
					if res.StatusCode != 200 && res.StatusCode != 503 && res.StatusCode != 500 {
						errs <- fmt.Errorf("REST batch-status: HTTP %d", res.StatusCode)
					}
				}
				if c := status.Code(err); !allowed[c] {
					errs <- fmt.Errorf("unexpected %v: %v", c, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	w := e.sim.Calls("BatchRebootInstance") + e.sim.Calls("CreateInstance")
	t.Logf("mixed load: %d write calls, %d write requests at KooPhone; all calls %v", writes.Load(), w, e.sim.AllCalls())
	if w > writes.Load() {
		t.Fatalf("%d write requests for %d write calls: a write was sent twice", w, writes.Load())
	}
}

// Calls still running when the grace period ends are cut, counted in a WARN line, and Shutdown returns an error
// (so the process exits non-zero).
func TestShutdownCountsCutCalls(t *testing.T) {
	e := newFaultEnv(t)
	e.cutOK = true
	e.faults(sim.Fault{Kind: sim.FaultLatency, Latency: time.Hour, Ops: []string{"GetTask"}})
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := e.inst.GetTask(callCtx(t, 20*time.Second), &pb.GetTaskRequest{TaskId: "t-1"})
		done <- err
	}()
	<-started
	for e.sim.Calls("GetTask") == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "1 calls cut") {
		t.Fatalf("Shutdown: %v, want 1 call cut", err)
	}
	if err := <-done; err == nil {
		t.Error("the cut call ended OK")
	}
	if log := e.log.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "calls=1") {
		t.Fatalf("no WARN line counting the cut call:\n%s", log)
	}
}
