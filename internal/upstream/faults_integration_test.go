package upstream_test

// The fault matrix: every fault kind the simulator can inject × reads and writes, one call each, recording what
// the client returned and how many requests the simulator received. docs/fault-matrix.md is this test's -v output.
//
// The rules asserted (from retry.go and the digest):
//   - reads (GetTask, ListInstances) are retried on transport errors, HTTP 429/502/503/504 and 9001/9003/4999,
//     at most RetryPolicy.MaxAttempts (3) sends, waiting max(backoff, Retry-After) between them;
//   - a 500 9999, a malformed or a truncated 200 is not retried (KindAPI / KindDecode), and never panics;
//   - writes (AsyncCommand, CreateInstance) are sent exactly once under every fault, unless the request provably
//     never left (a refused dial), and then the simulator still sees exactly one request;
//   - the caller's deadline bounds a slow answer, and a Retry-After beyond the deadline is returned, not waited.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Default retry policy of the client (RetryPolicy.withDefaults); the matrix relies on it.
const (
	defaultAttempts  = 3
	defaultBaseDelay = 100 * time.Millisecond
	defaultMaxDelay  = 2 * time.Second
)

// matrixOp is one operation of the matrix, called once against a faultFixture prepared before the fault is set.
type matrixOp struct {
	name string // the simulator's operation name
	read bool
	call func(ctx context.Context, c *upstream.Client, fx faultFixture) error
}

// faultFixture is what the calls need: phones, and a task to read.
type faultFixture struct {
	phones []string
	taskID string
}

var matrixOps = []matrixOp{
	{"GetTask", true, func(ctx context.Context, c *upstream.Client, fx faultFixture) error {
		ts, err := c.GetTask(ctx, fx.taskID)
		if err == nil && len(ts.Jobs) != 1 {
			return fmt.Errorf("GetTask decoded %d jobs, want 1", len(ts.Jobs))
		}
		return err
	}},
	{"ListInstances", true, func(ctx context.Context, c *upstream.Client, _ faultFixture) error {
		p, err := c.ListInstances(ctx, upstream.ListInstancesRequest{PageNo: 1, PageSize: 5})
		if err == nil && p.TotalCount != 20 {
			return fmt.Errorf("ListInstances decoded total_count %d, want 20", p.TotalCount)
		}
		return err
	}},
	{"AsyncCommand", false, func(ctx context.Context, c *upstream.Client, fx faultFixture) error {
		t, err := c.AsyncCommand(ctx, upstream.CommandRequest{Command: "echo fault", InstanceIDs: fx.phones})
		if err == nil && !hex32.MatchString(t.TaskID) {
			return fmt.Errorf("AsyncCommand decoded task %+v", t)
		}
		return err
	}},
	{"CreateInstance", false, func(ctx context.Context, c *upstream.Client, _ faultFixture) error {
		o, err := c.CreateInstance(ctx, upstream.CreateInstanceRequest{
			OS: "AOSP9", InstanceSkuID: "kp.professional.xlarge.32g.2", BandSkuID: "kp.bandwidth",
			RegionID: sim.DefaultRegion, InstanceNamePrefix: "fault", BandSize: 4, Count: 1,
			ChargeParam: upstream.ChargeParam{ChargingMode: 1, PeriodType: 2, PeriodNum: 1, IsAutoPay: 1},
		})
		if err == nil && len(o.InstanceInfos) != 1 {
			return fmt.Errorf("CreateInstance decoded %+v", o)
		}
		return err
	}},
}

// faultOutcome is what one call produced, as the matrix records it.
type faultOutcome struct {
	err      error
	kind     upstream.Kind
	code     string
	status   int
	attempts int
	requests int64           // requests the simulator counted for the operation
	waits    []time.Duration // the client's waits between sends
	orders   int             // CreateInstance only: orders the simulator placed (stock taken)
	elapsed  time.Duration   // real time the call took
}

// faultWant is a row's expectation for one kind of operation. ok means success; otherwise kind/code/status/attempts.
// waitRA > 0 means every wait must be exactly the Retry-After; otherwise waits must be jittered backoffs.
type faultWant struct {
	ok       bool
	kind     upstream.Kind
	code     string
	status   int
	attempts int
	requests int64
	waits    int
	waitRA   time.Duration
	deadline bool // the error must wrap context.DeadlineExceeded
}

// faultRow is one line of the matrix: a fault (or a setup) and what reads and writes must do under it.
type faultRow struct {
	name     string
	fault    *sim.Fault    // Ops is set per operation; nil: no fault (dial row)
	deadline time.Duration // the caller's deadline (real time); default 10s
	// simAdvance, when set, moves the simulator's clock once its latency timer is armed (a slow but timely answer).
	simAdvance time.Duration
	// refuseFirstDial makes the client's first dial hit a closed port (connection refused).
	refuseFirstDial bool
	// cold closes the client's idle connections before the call, so it dials afresh.
	cold        bool
	read, write faultWant
}

const (
	kindAPI       = upstream.KindAPI
	kindHTTP      = upstream.KindHTTP
	kindDecode    = upstream.KindDecode
	kindTransport = upstream.KindTransport
)

func faultRows() []faultRow {
	f := func(kind string, count int) *sim.Fault { return &sim.Fault{Kind: kind, Count: count} }
	ra := func(count int, d time.Duration) *sim.Fault {
		return &sim.Fault{Kind: sim.Fault429, Count: count, RetryAfter: d}
	}
	lat := func(d time.Duration) *sim.Fault { return &sim.Fault{Kind: sim.FaultLatency, Count: 1, Latency: d} }
	once := func(kind upstream.Kind, code string, status int) faultWant {
		return faultWant{kind: kind, code: code, status: status, attempts: 1, requests: 1}
	}
	okAfter := func(requests int64, waits int, waitRA time.Duration) faultWant {
		return faultWant{ok: true, requests: requests, waits: waits, waitRA: waitRA}
	}
	exhausted := func(kind upstream.Kind, code string, status int, requests int64, waitRA time.Duration) faultWant {
		return faultWant{kind: kind, code: code, status: status, attempts: defaultAttempts, requests: requests,
			waits: defaultAttempts - 1, waitRA: waitRA}
	}
	deadline := faultWant{kind: kindTransport, attempts: 1, requests: 1, deadline: true}
	return []faultRow{
		{name: "error (HTTP 500 KOOPHONE.API.9999) ×1", fault: f(sim.FaultError, 1),
			read: once(kindAPI, "KOOPHONE.API.9999", 500), write: once(kindAPI, "KOOPHONE.API.9999", 500)},
		{name: "error (HTTP 500 KOOPHONE.API.9999) ×5", fault: f(sim.FaultError, 5),
			read: once(kindAPI, "KOOPHONE.API.9999", 500), write: once(kindAPI, "KOOPHONE.API.9999", 500)},
		{name: "429 APIGW.0308, Retry-After 3s ×1", fault: ra(1, 3*time.Second),
			read: okAfter(2, 1, 3*time.Second), write: once(kindAPI, "APIGW.0308", 429)},
		{name: "429 APIGW.0308, Retry-After 3s ×5", fault: ra(5, 3*time.Second),
			read: exhausted(kindAPI, "APIGW.0308", 429, 3, 3*time.Second), write: once(kindAPI, "APIGW.0308", 429)},
		{name: "429 APIGW.0308, Retry-After 5s, caller deadline 1s ×1", fault: ra(1, 5*time.Second), deadline: time.Second,
			read: once(kindAPI, "APIGW.0308", 429), write: once(kindAPI, "APIGW.0308", 429)},
		{name: "502 (HTML) ×1", fault: f(sim.Fault502, 1),
			read: okAfter(2, 1, 0), write: once(kindHTTP, "", 502)},
		{name: "502 (HTML) ×5", fault: f(sim.Fault502, 5),
			read: exhausted(kindHTTP, "", 502, 3, 0), write: once(kindHTTP, "", 502)},
		{name: "503 (HTML) ×1", fault: f(sim.Fault503, 1),
			read: okAfter(2, 1, 0), write: once(kindHTTP, "", 503)},
		{name: "503 (HTML) ×5", fault: f(sim.Fault503, 5),
			read: exhausted(kindHTTP, "", 503, 3, 0), write: once(kindHTTP, "", 503)},
		{name: "done-503 (the work done, then a 503 HTML page) ×1", fault: f(sim.FaultDone503, 1),
			read: okAfter(2, 1, 0), write: once(kindHTTP, "", 503)},
		{name: "malformed (HTTP 200, HTML body) ×1", fault: f(sim.FaultMalformed, 1),
			read: once(kindDecode, "", 200), write: once(kindDecode, "", 200)},
		{name: "truncated (HTTP 200, first half of the answer) ×1", fault: f(sim.FaultTruncated, 1),
			read: once(kindDecode, "", 200), write: once(kindDecode, "", 200)},
		// On a warm keep-alive connection net/http itself replays an idempotent GET once when the server closes
		// the connection before answering (Transport.shouldRetryRequest): the simulator sees two requests for
		// one client attempt. POSTs are never replayed by net/http.
		{name: "drop (connection closed, no answer) ×1", fault: f(sim.FaultDrop, 1),
			read: okAfter(2, 0, 0), write: once(kindTransport, "", 0)},
		{name: "drop ×1, cold connection", fault: f(sim.FaultDrop, 1), cold: true,
			read: okAfter(2, 1, 0), write: once(kindTransport, "", 0)},
		{name: "drop ×5", fault: f(sim.FaultDrop, 5),
			read: exhausted(kindTransport, "", 0, 4, 0), write: once(kindTransport, "", 0)},
		{name: "latency 1h (sim clock), caller deadline 200ms", fault: lat(time.Hour), deadline: 200 * time.Millisecond,
			read: deadline, write: deadline},
		{name: "latency 2s (sim clock advanced), caller deadline 10s", fault: lat(2 * time.Second), simAdvance: 2 * time.Second,
			read: okAfter(1, 0, 0), write: okAfter(1, 0, 0)},
		{name: "first dial refused (never sent)", refuseFirstDial: true, cold: true,
			read: okAfter(1, 1, 0), write: okAfter(1, 1, 0)},
	}
}

// TestSimFaultMatrix runs every row against every operation on a fresh simulator and prints the table.
func TestSimFaultMatrix(t *testing.T) {
	checkLeaks(t)
	var table []string
	for _, row := range faultRows() {
		for _, op := range matrixOps {
			t.Run(row.name+"/"+op.name, func(t *testing.T) {
				got := runFaultCase(t, row, op)
				w := row.write
				if op.read {
					w = row.read
				}
				checkOutcome(t, row, op, w, got)
				table = append(table, formatRow(row, op, got))
			})
		}
	}
	t.Log("fault matrix (fault | operation | read/write | client result | attempts | requests seen by the sim | client waits | orders placed):\n" +
		"| Fault | Operation | Kind | Client result | Attempts | Requests seen by the sim | Client waits | Orders placed |\n" +
		"|---|---|---|---|---|---|---|---|\n" + strings.Join(table, "\n"))
}

// runFaultCase prepares a fresh simulator and client, warms the keep-alive connection with the faultFixture's setup
// call (as in production, where connections are pooled), injects the fault for op only and calls op once.
func runFaultCase(t *testing.T, row faultRow, op matrixOp) faultOutcome {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	tr := e.transport()
	if row.refuseFirstDial {
		tr.DialContext = refuseFirstDial(t, e.srv.Listener.Addr().String())
	}
	c := e.client(nil, func(cfg *upstream.Config) { cfg.HTTPClient = &http.Client{Transport: tr} })

	fx := faultFixture{phones: e.ids(1)}
	if !row.refuseFirstDial {
		task, err := c.AsyncCommand(itCtx(t), upstream.CommandRequest{Command: "echo setup", InstanceIDs: fx.phones})
		mustOK(t, "setup AsyncCommand", err)
		fx.taskID = task.TaskID
	} else {
		fx.taskID = "0123456789abcdef0123456789abcdef" // unused: GetTask would 1323; see below
	}
	if row.cold {
		tr.CloseIdleConnections()
	}
	if row.fault != nil {
		f := *row.fault
		f.Ops = []string{op.name}
		if err := e.sim.SetFaults([]sim.Fault{f}); err != nil {
			t.Fatal(err)
		}
	}

	deadline := row.deadline
	if deadline == 0 {
		deadline = 10 * time.Second
	}
	cctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()

	var advanced sync.WaitGroup
	if row.simAdvance > 0 {
		// Let the simulator's latency timer be armed, then move its clock: a slow answer inside the deadline.
		advanced.Go(func() {
			if e.fake.WaitForTimers(1, cctx.Done()) {
				e.fake.Advance(row.simAdvance)
			}
		})
	}

	call := op.call
	if row.refuseFirstDial && op.name == "GetTask" {
		// No setup call may precede the refused dial, so read the simulator's answer for an unknown task: a
		// 1323 answer proves the request arrived, which is all this row is about.
		call = func(ctx context.Context, c *upstream.Client, fx faultFixture) error {
			_, err := c.GetTask(ctx, fx.taskID)
			if e, ok := upstream.AsError(err); ok && e.Code == "KOOPHONE.API.1323" {
				return nil
			}
			return err
		}
	}

	stock := e.sim.Stock()
	before := e.sim.Calls(op.name)
	e.clk.takeWaits()
	start := time.Now()
	err := call(cctx, c, fx)
	got := faultOutcome{err: err, elapsed: time.Since(start)}
	advanced.Wait()
	if row.fault != nil && row.fault.Kind == sim.FaultLatency && row.simAdvance == 0 {
		// Simulator bug (TestSimLatencyFaultNoticesClientLeaving): a request with a body is not aborted when its
		// client leaves during a latency fault; it sleeps on the fake clock for ever. Release it and wait for it to
		// finish, so that the counters below are final and the server can close.
		e.fake.Advance(row.fault.Latency)
		e.srv.Close()
	}
	got.requests = e.sim.Calls(op.name) - before
	got.waits = e.clk.takeWaits()
	got.orders = stock - e.sim.Stock()
	if ue, ok := upstream.AsError(err); ok {
		got.kind, got.code, got.status, got.attempts = ue.Kind, ue.Code, ue.HTTPStatus, ue.Attempts
		if row.fault != nil && row.fault.Kind == sim.Fault429 && ue.RetryAfter != row.fault.RetryAfter {
			t.Errorf("Error.RetryAfter = %v, want the header's %v", ue.RetryAfter, row.fault.RetryAfter)
		}
	}
	return got
}

// refuseFirstDial returns a DialContext whose first dial goes to a port nobody listens on (connection refused)
// and every later one to addr.
func refuseFirstDial(t *testing.T, addr string) func(ctx context.Context, network, address string) (net.Conn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	var dials atomic.Int64
	d := &net.Dialer{Timeout: 5 * time.Second}
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			return d.DialContext(ctx, network, closed)
		}
		return d.DialContext(ctx, network, addr)
	}
}

// checkOutcome asserts a row's expectation, and the rules that hold for every row.
func checkOutcome(t *testing.T, row faultRow, op matrixOp, w faultWant, got faultOutcome) {
	t.Helper()
	if got.requests != w.requests {
		t.Errorf("the simulator saw %d %s requests, want %d", got.requests, op.name, w.requests)
	}
	if !op.read && got.requests != 1 {
		t.Errorf("a write was sent %d times: writes must be sent exactly once", got.requests)
	}
	if w.ok {
		if got.err != nil {
			t.Errorf("got %s, want success", describeErr(got.err))
		}
	} else {
		ue, ok := upstream.AsError(got.err)
		switch {
		case !ok:
			t.Errorf("got %v, want *upstream.Error", got.err)
		case ue.Kind != w.kind || ue.Code != w.code || ue.HTTPStatus != w.status || ue.Attempts != w.attempts:
			t.Errorf("got %s, want %v code=%q http=%d attempts=%d", describeErr(got.err), w.kind, w.code, w.status, w.attempts)
		}
		if w.deadline && !errors.Is(got.err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap context.DeadlineExceeded", got.err)
		}
	}
	if len(got.waits) != w.waits {
		t.Errorf("client waited %d times %v, want %d", len(got.waits), got.waits, w.waits)
	}
	for i, d := range got.waits {
		if w.waitRA > 0 && d != w.waitRA {
			t.Errorf("wait %d = %v, want exactly the Retry-After %v", i+1, d, w.waitRA)
		}
		if w.waitRA == 0 && d > backoffCap(i+1) {
			t.Errorf("wait %d = %v, beyond the backoff cap %v", i+1, d, backoffCap(i+1))
		}
	}
	if row.deadline > 0 && got.elapsed > row.deadline+3*time.Second {
		t.Errorf("the call took %v with a %v deadline", got.elapsed, row.deadline)
	}
	wantOrders := 0
	switch {
	case op.name != "CreateInstance":
	case w.ok || (row.fault != nil && (row.fault.Kind == sim.FaultTruncated || row.fault.Kind == sim.FaultDone503)):
		// The truncated and done-503 faults run the operation and lose its answer: the order exists though the
		// client got an error. Not retrying is what keeps it from being placed twice.
		wantOrders = 1
	case w.deadline:
		// Whether the abandoned request is carried out depends on the simulator bug worked around above: once
		// released it is refused only because its AK/SK signature is an hour old by then. Recorded, not asserted.
		wantOrders = got.orders
	}
	if got.orders != wantOrders {
		t.Errorf("%d orders placed, want %d", got.orders, wantOrders)
	}
}

// backoffCap is the largest backoff before retry n: min(MaxDelay, BaseDelay·2^(n-1)) (full jitter below it).
func backoffCap(n int) time.Duration {
	d := defaultBaseDelay
	for i := 1; i < n && d < defaultMaxDelay; i++ {
		d *= 2
	}
	return min(d, defaultMaxDelay)
}

func formatRow(row faultRow, op matrixOp, got faultOutcome) string {
	kind := "write"
	if op.read {
		kind = "read"
	}
	result, attempts := "ok", "—"
	if got.err != nil {
		ue, _ := upstream.AsError(got.err)
		result = got.kind.String()
		if got.code != "" {
			result += " " + got.code
		}
		if got.status != 0 {
			result += fmt.Sprintf(" HTTP %d", got.status)
		}
		if errors.Is(got.err, context.DeadlineExceeded) {
			result += " (context deadline exceeded)"
		}
		if ue != nil && ue.RetryAfter > 0 {
			result += fmt.Sprintf(", RetryAfter %v", ue.RetryAfter)
		}
		attempts = fmt.Sprint(got.attempts)
	}
	var waits []string
	for i, d := range got.waits {
		if row.fault != nil && row.fault.Kind == sim.Fault429 {
			waits = append(waits, d.String()+" (Retry-After)")
		} else {
			waits = append(waits, "≤"+backoffCap(i+1).String()+" (backoff)")
		}
	}
	w := "—"
	if len(waits) > 0 {
		w = strings.Join(waits, ", ")
	}
	orders := "—"
	if op.name == "CreateInstance" {
		orders = fmt.Sprint(got.orders)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %d | %s | %s |", row.name, op.name, kind, result, attempts, got.requests, w, orders)
}

// TestSimLatencyFaultNoticesClientLeaving: a slow answer whose caller gives up ends on the simulator too, for a
// GET and for a POST alike, and the operation is never carried out (CreateInstance places no order).
func TestSimLatencyFaultNoticesClientLeaving(t *testing.T) {
	checkLeaks(t)
	for _, op := range []matrixOp{matrixOps[1], matrixOps[3]} { // ListInstances (GET), CreateInstance (POST)
		t.Run(op.name, func(t *testing.T) {
			e := newSimEnv(t, nil)
			// A token, not AK/SK: a signature would have expired by the time the request is released.
			c := e.client(upstream.NewStaticToken(e.fetchToken(t)), nil)
			if err := e.sim.SetFaults([]sim.Fault{{Kind: sim.FaultLatency, Ops: []string{op.name}, Latency: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			stock := e.sim.Stock()
			if err := op.call(cctx, c, faultFixture{phones: e.ids(1)}); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %s, want the caller's deadline", describeErr(err))
			}
			closed := make(chan struct{})
			go func() { e.srv.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(2 * time.Second): // a bound on a failure, not a measurement
				t.Errorf("%s: the simulator is still serving a request whose client left 2s ago", op.name)
				e.fake.Advance(time.Hour)
				<-closed
			}
			if n := stock - e.sim.Stock(); n != 0 {
				t.Errorf("%s: %d orders placed for a client that gave up", op.name, n)
			}
		})
	}
}
