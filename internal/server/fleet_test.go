package server

// Fleet RPCs end to end: the whole gateway on loopback ports, the embedded simulator with 1,050 phones, every
// fleet RPC over gRPC and over the REST mirror, checked against what the simulator counted.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

const (
	fleetSize        = 1050
	fleetConcurrency = 3
	fleetSeed        = 11
)

// fleetEnv is newEnv with a fleet of 1,050 phones in two node groups and fleet concurrency 3.
type fleetEnv struct {
	*env
	fleet pb.FleetServiceClient
	ids   []string // the simulator's phones in creation order
	fail  []string // phones whose every job fails
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	cfg, err := config.Load([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0",
		fmt.Sprintf("--sim-fleet=%d", fleetSize), fmt.Sprintf("--fleet-concurrency=%d", fleetConcurrency)},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.NewFake(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	simCfg := func(c *sim.Config) {
		c.FleetSize = fleetSize
		c.JobDuration = jobDuration
		c.RebootDuration = 2 * time.Second
		c.Seed = fleetSeed
		c.Pools = []string{"pool-a", "pool-b"}
	}
	// Ids are deterministic for a seed: a first simulator names the phones that will fail.
	probe := sim.DefaultConfig()
	simCfg(&probe)
	probe.Clock = clk
	ids := sim.New(probe).InstanceIDs()
	fail := []string{ids[5], ids[777]}
	srv, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler), WithClock(clk),
		WithSimConfig(func(c *sim.Config) {
			simCfg(c)
			c.FailInstances = fail
		}),
		WithWatchOptions(func(o *service.WatchOptions) {
			o.Rand = func() float64 { return 0.5 }
			o.PollTimeout = 24 * time.Hour
		}))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, sim: srv.Sim(), clk: clk, conn: conn,
		inst: pb.NewInstanceServiceClient(conn), order: pb.NewOrderServiceClient(conn), app: pb.NewAppServiceClient(conn),
		base: "http://" + srv.HTTPAddr(), http: &http.Client{Transport: &http.Transport{}}}
	t.Cleanup(e.close)
	e.waitServing()
	if got := e.sim.InstanceIDs(); !slices.Equal(got, ids) {
		t.Fatal("the probe simulator named other phones")
	}
	return &fleetEnv{env: e, fleet: pb.NewFleetServiceClient(conn), ids: ids, fail: fail}
}

// transport runs one fleet RPC to its end and returns its events and final status.
type transport struct {
	name string
	call func(f *fleetEnv, ctx context.Context, rpc string, req proto.Message) (<-chan *pb.FleetEvent, <-chan error)
}

var transports = []transport{{"gRPC", grpcFleet}, {"REST", restFleet}}

// fleetPaths are the REST mirror's paths of the fleet RPCs.
var fleetPaths = map[string]string{
	"RunFleetCommand": "/v1/fleet/command/run", "ResetFleet": "/v1/fleet/reset", "RebootFleet": "/v1/fleet/reboot",
	"BackupFleet": "/v1/fleet/backup", "InstallAppOnFleet": "/v1/fleet/app/install", "ListFleetApps": "/v1/fleet/app-list",
}

func grpcFleet(f *fleetEnv, ctx context.Context, rpc string, req proto.Message) (<-chan *pb.FleetEvent, <-chan error) {
	var s grpc.ServerStreamingClient[pb.FleetEvent]
	var err error
	switch r := req.(type) {
	case *pb.RunFleetCommandRequest:
		s, err = f.fleet.RunFleetCommand(ctx, r)
	case *pb.ResetFleetRequest:
		s, err = f.fleet.ResetFleet(ctx, r)
	case *pb.RebootFleetRequest:
		s, err = f.fleet.RebootFleet(ctx, r)
	case *pb.BackupFleetRequest:
		s, err = f.fleet.BackupFleet(ctx, r)
	case *pb.InstallAppOnFleetRequest:
		s, err = f.fleet.InstallAppOnFleet(ctx, r)
	case *pb.ListFleetAppsRequest:
		s, err = f.fleet.ListFleetApps(ctx, r)
	}
	if err != nil {
		f.t.Fatalf("%s: %v", rpc, err)
	}
	return recvAll(s)
}

// restFleet posts the request to the mirror and decodes each line of the streamed answer: a message alone, wrapped
// as {"result": …}, or after an SSE "data:" prefix; an {"error": …} line ends the stream with that status.
func restFleet(f *fleetEnv, ctx context.Context, rpc string, req proto.Message) (<-chan *pb.FleetEvent, <-chan error) {
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(req)
	if err != nil {
		f.t.Fatal(err)
	}
	hreq, _ := http.NewRequestWithContext(ctx, "POST", f.base+fleetPaths[rpc], strings.NewReader(string(body)))
	hreq.Header.Set("Content-Type", "application/json")
	msgs, end := make(chan *pb.FleetEvent, 4096), make(chan error, 1)
	go func() {
		defer close(msgs)
		res, err := f.http.Do(hreq)
		if err != nil {
			end <- err
			return
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(res.Body)
			end <- fmt.Errorf("HTTP %d: %s", res.StatusCode, b)
			return
		}
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "data:"))
			if line == "" || strings.HasPrefix(line, "event:") || strings.HasPrefix(line, ":") {
				continue
			}
			var wrapped map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &wrapped); err != nil {
				end <- fmt.Errorf("line %q: %v", line, err)
				return
			}
			if e, ok := wrapped["error"]; ok {
				end <- fmt.Errorf("in-band error: %s", e)
				return
			}
			raw := []byte(line)
			if r, ok := wrapped["result"]; ok && len(wrapped) == 1 {
				raw = r
			}
			ev := &pb.FleetEvent{}
			if err := protojson.Unmarshal(raw, ev); err != nil {
				end <- fmt.Errorf("line %q: %v", line, err)
				return
			}
			msgs <- ev
		}
		end <- sc.Err()
	}()
	return msgs, end
}

// collect drives the fake clock until the stream ends and returns its events and final error.
func (f *fleetEnv) collect(msgs <-chan *pb.FleetEvent, end <-chan error) ([]*pb.FleetEvent, error) {
	f.t.Helper()
	var got []*pb.FleetEvent
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case m, ok := <-msgs:
			if ok {
				got = append(got, m)
				continue
			}
			return got, <-end
		default:
		}
		if time.Now().After(deadline) {
			f.t.Fatal("fleet stream did not end")
		}
		f.clk.Advance(500 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}

// outcome is a fleet run, checked for shape: every phone once, batches of at most size, a final summary that
// adds up, and the upstream calls the simulator counted.
type outcome struct {
	results map[string]*pb.FleetPhoneResult
	batches []*pb.FleetBatch
	summary *pb.FleetSummary
}

func (f *fleetEnv) check(events []*pb.FleetEvent, want []string, size int) outcome {
	f.t.Helper()
	o := outcome{results: map[string]*pb.FleetPhoneResult{}}
	announced := map[int32]bool{}
	for i, ev := range events {
		switch {
		case ev.GetBatch() != nil:
			b := ev.GetBatch()
			if n := len(b.GetInstanceIds()); n == 0 || n > size {
				f.t.Fatalf("batch %d holds %d phones, want 1..%d", b.GetIndex(), n, size)
			}
			announced[b.GetIndex()] = true
			o.batches = append(o.batches, b)
		case ev.GetResult() != nil:
			r := ev.GetResult()
			if !announced[r.GetBatch()] {
				f.t.Fatalf("a result of batch %d before the batch was announced", r.GetBatch())
			}
			if o.results[r.GetInstanceId()] != nil {
				f.t.Fatalf("phone %s reported twice", r.GetInstanceId())
			}
			o.results[r.GetInstanceId()] = r
		case ev.GetSummary() != nil:
			if i != len(events)-1 {
				f.t.Fatal("summary is not the last message")
			}
			o.summary = ev.GetSummary()
		}
	}
	if len(o.results) != len(want) {
		f.t.Fatalf("%d results, want %d", len(o.results), len(want))
	}
	for _, id := range want {
		if o.results[id] == nil {
			f.t.Fatalf("no result for %s", id)
		}
	}
	c := o.summary.GetCounts()
	if o.summary == nil || int(c.GetTotal()) != len(want) || c.GetSucceeded()+c.GetFailed() != c.GetTotal() ||
		c.GetRunning() != 0 || c.GetPending() != 0 || int(c.GetBatchesTotal()) != (len(want)+size-1)/size {
		f.t.Fatalf("summary %v", o.summary)
	}
	return o
}

func all() *pb.FleetSelector { return &pb.FleetSelector{Filter: &pb.FleetFilter{All: true}} }

// run calls one fleet RPC over tr and checks the common shape; op is the KooPhone operation each batch calls.
func (f *fleetEnv) run(tr transport, rpc, op string, req proto.Message, want []string, size int) outcome {
	f.t.Helper()
	f.sim.ResetCalls()
	f.sim.ResetPeaks()
	events, err := f.collect(tr.call(f, f.ctx(), rpc, req))
	if err != nil {
		f.t.Fatalf("%s over %s: %v", rpc, tr.name, err)
	}
	o := f.check(events, want, size)
	batches := (len(want) + size - 1) / size
	if n := f.sim.Calls(op); n != int64(batches) {
		f.t.Fatalf("%s over %s: %d %s calls, want %d (one per batch)", rpc, tr.name, n, op, batches)
	}
	if p := f.sim.PeakInFlight(op); p > fleetConcurrency {
		f.t.Fatalf("%s over %s: %d %s calls at once, want at most %d", rpc, tr.name, p, op, fleetConcurrency)
	}
	return o
}

func TestFleetCommandOverBothTransports(t *testing.T) {
	f := newFleetEnv(t)
	for _, tr := range transports {
		for _, mode := range []pb.FleetCommandMode{pb.FleetCommandMode_FLEET_COMMAND_MODE_ASYNC, pb.FleetCommandMode_FLEET_COMMAND_MODE_SYNC} {
			op := map[pb.FleetCommandMode]string{pb.FleetCommandMode_FLEET_COMMAND_MODE_ASYNC: "AsyncCommand",
				pb.FleetCommandMode_FLEET_COMMAND_MODE_SYNC: "SyncCommand"}[mode]
			o := f.run(tr, "RunFleetCommand", op, &pb.RunFleetCommandRequest{Command: "getprop ro.serialno", Selector: all(), Mode: mode},
				f.ids, 100)
			for _, id := range f.ids {
				r := o.results[id]
				if slices.Contains(f.fail, id) {
					if r.GetOutcome() != pb.FleetOutcome_FLEET_OUTCOME_FAILED || r.GetErrorCode() == "" {
						t.Fatalf("%s %v: failing phone %s: %v", tr.name, mode, id, r)
					}
					continue
				}
				// The simulator's getprop ro.serialno prints the phone's own id: each output is its phone's.
				if r.GetOutcome() != pb.FleetOutcome_FLEET_OUTCOME_SUCCEEDED || r.GetExecuteMsg() != id ||
					r.GetStatus() != pb.JobStatus_JOB_STATUS_SUCCEEDED {
					t.Fatalf("%s %v: %s: %v", tr.name, mode, id, r)
				}
			}
			if c := o.summary.GetCounts(); c.GetFailed() != 2 || c.GetBatchesStarted() != 11 {
				t.Fatalf("%s %v: %v", tr.name, mode, o.summary)
			}
		}
	}
	waitIdle(f.env)
}

func TestFleetMaintenanceOverBothTransports(t *testing.T) {
	f := newFleetEnv(t)
	poolA := []string{}
	for i, id := range f.ids {
		if i%2 == 0 {
			poolA = append(poolA, id)
		}
	}
	opts := &pb.FleetOptions{BatchSize: 40}
	for _, tr := range transports {
		// Reboot the whole fleet by explicit ids (no listing), in batches of 40.
		o := f.run(tr, "RebootFleet", "BatchRebootInstance", &pb.RebootFleetRequest{
			Selector: &pb.FleetSelector{InstanceIds: f.ids}, Options: opts}, f.ids, 40)
		if o.summary.GetCounts().GetSucceeded() != fleetSize || f.sim.Calls("ListInstances") != 0 {
			t.Fatalf("%s reboot: %v, %d listings", tr.name, o.summary, f.sim.Calls("ListInstances"))
		}
		f.clk.Advance(5 * time.Second) // the reboots end

		// Reset node group pool-a (every other phone), resolved through ListInstances pages.
		o = f.run(tr, "ResetFleet", "BatchReset", &pb.ResetFleetRequest{
			Selector: &pb.FleetSelector{Filter: &pb.FleetFilter{PoolName: "pool-a"}}}, poolA, 100)
		if n := f.sim.Calls("ListInstances"); n != 6 { // 525 phones in pool-a: 6 pages of 100
			t.Fatalf("%s reset: %d ListInstances calls, want 6", tr.name, n)
		}
		for _, id := range poolA {
			want := pb.FleetOutcome_FLEET_OUTCOME_SUCCEEDED
			if slices.Contains(f.fail, id) {
				want = pb.FleetOutcome_FLEET_OUTCOME_FAILED
			}
			if r := o.results[id]; r.GetOutcome() != want || !strings.HasPrefix(r.GetTaskId(), "RM_") {
				t.Fatalf("%s reset %s: %v", tr.name, id, r)
			}
		}

		// Back up the whole fleet.
		o = f.run(tr, "BackupFleet", "BatchBackupInstances", &pb.BackupFleetRequest{Selector: all()}, f.ids, 100)
		if o.summary.GetCounts().GetFailed() != 2 {
			t.Fatalf("%s backup: %v", tr.name, o.summary)
		}
	}
	waitIdle(f.env)
}

func TestFleetAppsOverBothTransports(t *testing.T) {
	f := newFleetEnv(t)
	install := func(version string) *pb.InstallAppOnFleetRequest {
		return &pb.InstallAppOnFleetRequest{Selector: &pb.FleetSelector{Filter: &pb.FleetFilter{NamePrefix: "sim-00"}},
			ObjectName: "com.example.fleet", FileName: "fleet.apk", ObjectVersion: version, ObjectSize: "12",
			BizType: "apk", ContentType: "application/octet-stream", InstallPackageUrl: "https://obs.example.com/fleet.apk"}
	}
	first := f.ids[:999] // sim-00001 .. sim-00999
	for i, tr := range transports {
		version := fmt.Sprintf("1.0.%d", i)
		o := f.run(tr, "InstallAppOnFleet", "InstallApp", install(version), first, 100)
		if o.summary.GetCounts().GetFailed() != 2 {
			t.Fatalf("%s install: %v", tr.name, o.summary)
		}
	}
	// Which phones have the app, at which version? ListFleetApps reads each phone (one ListInstanceApp call per
	// phone, within the same concurrency bound).
	for _, tr := range transports {
		f.sim.ResetCalls()
		f.sim.ResetPeaks()
		events, err := f.collect(tr.call(f, f.ctx(), "ListFleetApps", &pb.ListFleetAppsRequest{Selector: all(), Package: "com.example.fleet"}))
		if err != nil {
			t.Fatal(err)
		}
		o := f.check(events, f.ids, 100)
		if n := f.sim.Calls("ListInstanceApp"); n != fleetSize {
			t.Fatalf("%s: %d ListInstanceApp calls, want one per phone", tr.name, n)
		}
		if p := f.sim.PeakInFlight("ListInstanceApp"); p > fleetConcurrency {
			t.Fatalf("%s: %d ListInstanceApp calls at once", tr.name, p)
		}
		for i, id := range f.ids {
			app := o.results[id].GetApp()
			has := i < 999 && !slices.Contains(f.fail, id)
			if has != (app != nil) || has && app.GetAppVersion() != "1.0.1" {
				t.Fatalf("%s phone %d: %v", tr.name, i, o.results[id])
			}
		}
	}
	waitIdle(f.env)
}

// TestFleetFailingBatchAmongGoodOnes: KooPhone refuses one batch (HTTP 500 KOOPHONE.API.9999): its phones are
// reported as BATCH_FAILED, the batch is not sent again, and every other batch runs to the end.
func TestFleetFailingBatchAmongGoodOnes(t *testing.T) {
	f := newFleetEnv(t)
	for _, tr := range transports {
		if err := f.sim.SetFaults([]sim.Fault{{Kind: sim.FaultError, Ops: []string{"AsyncCommand"}, Count: 1}}); err != nil {
			t.Fatal(err)
		}
		o := f.run(tr, "RunFleetCommand", "AsyncCommand", &pb.RunFleetCommandRequest{Command: "ls", Selector: all()}, f.ids, 100)
		var failed *pb.FleetBatch
		for _, b := range o.batches {
			if !b.GetStarted() {
				if failed != nil {
					t.Fatalf("%s: two failed batches", tr.name)
				}
				failed = b
			}
		}
		if failed == nil || failed.GetErrorCode() != "KOOPHONE.API.9999" {
			t.Fatalf("%s: batches %v", tr.name, o.batches)
		}
		for _, id := range failed.GetInstanceIds() {
			if r := o.results[id]; r.GetOutcome() != pb.FleetOutcome_FLEET_OUTCOME_BATCH_FAILED || r.GetErrorCode() != "KOOPHONE.API.9999" {
				t.Fatalf("%s: %v", tr.name, r)
			}
		}
		c := o.summary.GetCounts()
		wantFailed := int32(len(failed.GetInstanceIds()))
		for _, id := range f.fail {
			if !slices.Contains(failed.GetInstanceIds(), id) {
				wantFailed++
			}
		}
		if c.GetBatchesStarted() != 10 || o.summary.GetBatchesFailed() != 1 || c.GetFailed() != wantFailed {
			t.Fatalf("%s: %v", tr.name, o.summary)
		}
	}
	waitIdle(f.env)
}

// TestFleetCancelMidway: with concurrency 2 and the clock standing still, two batches start and the rest wait;
// the caller cancels after seeing both batches announced. No further batch starts, and the server lets go of
// every poller.
func TestFleetCancelMidway(t *testing.T) {
	f := newFleetEnv(t)
	for _, tr := range transports {
		f.sim.ResetCalls()
		ctx, cancel := context.WithCancel(f.ctx())
		msgs, end := tr.call(f, ctx, "ResetFleet", &pb.ResetFleetRequest{Selector: all(), Options: &pb.FleetOptions{Concurrency: 2}})
		var started []*pb.FleetBatch
		deadline := time.After(20 * time.Second)
		for len(started) < 2 {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("%s: stream ended: %v", tr.name, <-end)
				}
				if b := m.GetBatch(); b != nil {
					started = append(started, b)
				}
			case <-deadline:
				t.Fatalf("%s: batches not announced", tr.name)
			}
		}
		cancel()
		for range msgs {
		}
		err := <-end
		if tr.name == "gRPC" && status.Code(err) != codes.Canceled {
			t.Fatalf("%s: %v", tr.name, err)
		}
		waitIdle(f.env)
		// Let the jobs of the started batches end: nothing else may start.
		f.clk.Advance(10 * time.Second)
		if n := f.sim.Calls("BatchReset"); n != 2 {
			t.Fatalf("%s: %d BatchReset calls, want the 2 announced", tr.name, n)
		}
		for _, b := range started {
			if !b.GetStarted() || !strings.HasPrefix(b.GetTaskId(), "RM_") {
				t.Fatalf("%s: %v", tr.name, b)
			}
		}
	}
}

// TestFleetListingResumes: a listing cut short over gRPC resumes over REST from the last cursor received; both
// parts make the fleet, in order, once.
func TestFleetListingResumes(t *testing.T) {
	f := newFleetEnv(t)
	ctx, cancel := context.WithCancel(f.ctx())
	s, err := f.fleet.ListAllInstances(ctx, &pb.ListAllInstancesRequest{Selector: all()})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var cursor string
	for len(got) < 437 {
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.GetInstance().GetInstanceId())
		cursor = m.GetCursor()
	}
	cancel()

	body := fmt.Sprintf(`{"selector":{"filter":{"all":true}},"cursor":%q}`, cursor)
	req, _ := http.NewRequestWithContext(f.ctx(), "POST", f.base+"/v1/fleet/instances/list", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var wrapped map[string]json.RawMessage
		if err := json.Unmarshal(line, &wrapped); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if r, ok := wrapped["result"]; ok && len(wrapped) == 1 {
			line = r
		}
		m := &pb.ListAllInstancesResponse{}
		if err := protojson.Unmarshal(line, m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, m.GetInstance().GetInstanceId())
	}
	if !slices.Equal(got, f.ids) {
		t.Fatalf("resumed listing: %d phones, want the fleet of %d in order", len(got), len(f.ids))
	}

	// A cursor is bound to its selector: the stream's first Recv says so.
	other, err := f.fleet.ListAllInstances(f.ctx(), &pb.ListAllInstancesRequest{
		Selector: &pb.FleetSelector{Filter: &pb.FleetFilter{PoolName: "pool-a"}}, Cursor: cursor})
	if err == nil {
		_, err = other.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("cursor of another selector: %v", err)
	}
}

// TestFleetShutdown: a server shutting down stops every fleet call from starting batches and ends it with
// UNAVAILABLE (SERVER_SHUTTING_DOWN) after the batches it announced.
func TestFleetShutdown(t *testing.T) {
	f := newFleetEnv(t)
	msgs, end := grpcFleet(f, f.ctx(), "RunFleetCommand", &pb.RunFleetCommandRequest{Command: "ls", Selector: all(),
		Options: &pb.FleetOptions{Concurrency: 2}})
	announced := 0
	for announced < 2 {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("stream ended: %v", <-end)
			}
			if m.GetBatch() != nil {
				announced++
			}
		case <-time.After(20 * time.Second):
			t.Fatal("batches not announced")
		}
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- f.shutdown(ctx)
	}()
	for range msgs {
	}
	err := <-end
	if status.Code(err) != codes.Unavailable || errorInfoReason(err) != service.ReasonShuttingDown {
		t.Fatalf("stream ended with %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if n := f.sim.Calls("AsyncCommand"); n != 2 {
		t.Fatalf("%d AsyncCommand calls, want the 2 announced", n)
	}
}

// TestFleetSharesPollersWithWatchTask: a fleet operation follows its batches' tasks through the WatchTask hub, so
// a WatchTask caller of the same task joins the same poller.
func TestFleetSharesPollersWithWatchTask(t *testing.T) {
	f := newFleetEnv(t)
	msgs, end := grpcFleet(f, f.ctx(), "RunFleetCommand", &pb.RunFleetCommandRequest{Command: "ls",
		Selector: &pb.FleetSelector{InstanceIds: f.ids[:3]}})
	var batch *pb.FleetBatch
	select {
	case m := <-msgs:
		if batch = m.GetBatch(); batch == nil || !batch.GetStarted() {
			t.Fatalf("first message %v", m)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no batch")
	}
	watchMsgs, watchEnd := watchTask(f.env, batch.GetTaskId())
	deadline := time.Now().Add(10 * time.Second)
	for {
		tasks, _ := f.srv.services.WatchStats()
		if tasks.Watchers == 2 {
			if tasks.Pollers != 1 {
				t.Fatalf("%d pollers for one task watched twice", tasks.Pollers)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watchers never met: %+v", tasks)
		}
		time.Sleep(5 * time.Millisecond)
	}
	events, err := f.collect(msgs, end)
	if err != nil {
		t.Fatal(err)
	}
	f.check(append([]*pb.FleetEvent{{Event: &pb.FleetEvent_Batch{Batch: batch}}}, events...), f.ids[:3], 100)
	for range watchMsgs {
	}
	if err := <-watchEnd; err != nil {
		t.Fatal(err)
	}
	waitIdle(f.env)
}
