package server

// Fleet RPCs end to end: the whole gateway on loopback ports, the embedded simulator with 1,050 phones, every
// fleet RPC over gRPC and over the REST mirror, checked against what the simulator counted.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

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
			if c := o.summary.GetCounts(); c.GetFailed() != 2 || c.GetBatchesStarted() != 12 { // 525 phones per region: 6 + 6 batches
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
		// Reboot the whole fleet by explicit ids, in batches of 40 of one region each. The ids' regions come from
		// listing the fleet (11 pages of 100: fewer calls than 1,050 lookups of one id each).
		o := f.run(tr, "RebootFleet", "BatchRebootInstance", &pb.RebootFleetRequest{
			Selector: &pb.FleetSelector{InstanceIds: f.ids}, Options: opts}, f.ids, 40)
		if o.summary.GetCounts().GetSucceeded() != fleetSize || f.sim.Calls("ListInstances") != 11 {
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
		wantFailed := len(failed.GetInstanceIds())
		for _, id := range f.fail {
			if !slices.Contains(failed.GetInstanceIds(), id) {
				wantFailed++
			}
		}
		if c.GetBatchesStarted() != 11 || o.summary.GetBatchesFailed() != 1 || int(c.GetFailed()) != wantFailed {
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
	defer func() { _ = res.Body.Close() }()
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
	msgs, end := f.grpcFleet(f.ctx(), "RunFleetCommand", &pb.RunFleetCommandRequest{Command: "ls", Selector: all(),
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
	if d := errorInfoDomain(err); d != errcat.Domain { // the gateway's own reason, not KooPhone's
		t.Errorf("ErrorInfo domain %q, want %q", d, errcat.Domain)
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
	msgs, end := f.grpcFleet(f.ctx(), "RunFleetCommand", &pb.RunFleetCommandRequest{Command: "ls",
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

// TestFleetHoldsTheRateLimit: a fleet operation's batch starts go through the gateway's write budget toward
// KooPhone like any other write. With 1 write/s and a burst of 2, 28 reboot batches (14 of 40 phones in each
// region) are sampled at the simulator
// all along (on the one fake clock): never more than the burst plus one per elapsed second, and all of them done.
func TestFleetHoldsTheRateLimit(t *testing.T) {
	const rate, burst = 1, 2
	f := newFleetEnv(t, fmt.Sprintf("--upstream-write-rate=%d", rate), fmt.Sprintf("--upstream-write-burst=%d", burst))
	for _, tr := range transports {
		f.clk.Advance(time.Minute) // a full bucket for each transport
		start := f.clk.Now()
		stop := make(chan struct{})
		over := make(chan string, 1)
		go func() {
			for {
				select {
				case <-stop:
					close(over)
					return
				case <-time.After(200 * time.Microsecond):
				}
				elapsed := f.clk.Now().Sub(start) // read before the count: the bound is never too tight
				calls := f.sim.Calls("BatchRebootInstance")
				// +1: a sample may land just after the clock moved on but before it is read again.
				if limit := int64(burst + rate*elapsed.Seconds() + 1); calls > limit {
					select {
					case over <- fmt.Sprintf("%d calls after %v, limit %d", calls, elapsed, limit):
					default:
					}
				}
			}
		}()
		o := f.run(tr, "RebootFleet", "BatchRebootInstance", &pb.RebootFleetRequest{
			Selector: &pb.FleetSelector{InstanceIds: f.ids}, Options: &pb.FleetOptions{BatchSize: 40}}, f.ids, 40)
		close(stop)
		if msg, ok := <-over; ok {
			t.Fatalf("%s: the write rate was exceeded at the simulator: %s", tr.name, msg)
		}
		if o.summary.GetCounts().GetSucceeded() != fleetSize || f.clk.Now().Sub(start) < 24*time.Second {
			t.Fatalf("%s: %v after %v", tr.name, o.summary, f.clk.Now().Sub(start))
		}
		f.clk.Advance(5 * time.Second) // the reboots end
	}
	waitIdle(f.env)
}
