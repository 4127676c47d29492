package fleet_test

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/fleet"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

func TestRunAsyncCommandOnAThousandPhones(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.FleetSize = 1000 })
	ids := e.fleet() // 500 phones in each of the simulator's two regions
	eng := fleet.NewEngine(follower{e}, fleet.Config{Concurrency: 3, Clock: e.clk})
	e.sim.ResetCalls()
	rec := newRecorder()
	ctx := requestid.With(context.Background(), "caller-1")
	counts, err := e.run(ctx, eng, ids, fleet.AsyncCommand(e.up, "getprop ro.serialno"), 0, 0, rec)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Total != 1000 || counts.Succeeded != 1000 || counts.Failed != 0 || counts.Running != 0 ||
		counts.Pending != 0 || counts.BatchesStarted != 10 || counts.BatchesTotal != 10 {
		t.Fatalf("counts %+v", counts)
	}
	res := rec.results()
	if len(res) != 1000 {
		t.Fatalf("%d results", len(res))
	}
	for _, p := range ids {
		r := res[p.ID]
		// The simulator's getprop ro.serialno prints the phone's own id: each output belongs to its phone.
		if r.Outcome != fleet.Succeeded || r.Output != p.ID || r.Region != p.Region || r.TaskID == "" || r.JobID == "" {
			t.Fatalf("%s: %+v", p.ID, r)
		}
	}
	if len(counts.Regions) != 2 || counts.Regions[0].Succeeded != 500 || counts.Regions[1].BatchesStarted != 5 {
		t.Fatalf("regions %+v", counts.Regions)
	}
	if n := e.sim.Answered("KOOPHONE.API.1002"); n != 0 {
		t.Fatalf("KooPhone refused %d batches for spanning regions", n)
	}
	if n := e.sim.Calls("AsyncCommand"); n != 10 {
		t.Fatalf("%d AsyncCommand calls, want 10", n)
	}
	if p := e.sim.PeakInFlight("AsyncCommand"); p > 3 {
		t.Fatalf("%d AsyncCommand calls at once, want at most 3", p)
	}
	// Each batch start carried its own deterministic request id: the caller's and the batch's number.
	if last, _ := e.sim.Last("AsyncCommand"); !regexp.MustCompile(`^caller-1-b[0-9]$`).MatchString(last.RequestID) {
		t.Fatalf("batch request id %q", last.RequestID)
	}
	if n := rec.count(func(ev fleet.Event) bool { return ev.Summary != nil }); n != 1 {
		t.Fatalf("%d summaries", n)
	}
	// Progress came on the clock, and every one adds up.
	progress := rec.count(func(ev fleet.Event) bool {
		if p := ev.Progress; p != nil {
			if p.Succeeded+p.Failed+p.Running+p.Pending != 1000 || p.Running > 300 {
				t.Errorf("progress %+v", *p)
			}
			return true
		}
		return false
	})
	if progress == 0 {
		t.Fatal("no progress messages")
	}
}

func TestBatchSizeAndFailingBatch(t *testing.T) {
	// One region: the point here is the batch size and a refused batch.
	e := newEnv(t, func(c *sim.Config) { c.FleetSize, c.Regions = 250, []string{sim.DefaultRegion} })
	ids := e.fleet()
	eng := fleet.NewEngine(follower{e}, fleet.Config{BatchSize: 100, Concurrency: 2, Clock: e.clk})
	// The second BatchReset call KooPhone receives fails with HTTP 500 KOOPHONE.API.9999.
	op := fleet.Reset(e.up)
	if err := e.sim.SetFaults([]sim.Fault{{Kind: sim.FaultError, Ops: []string{"BatchReset"}, Count: 1}}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	counts, err := e.run(context.Background(), eng, ids, op, 50, 0, rec)
	if err != nil {
		t.Fatal(err)
	}
	if counts.BatchesTotal != 5 || counts.BatchesStarted != 4 || counts.BatchesFailed != 1 ||
		counts.Succeeded != 200 || counts.Failed != 50 {
		t.Fatalf("counts %+v", counts)
	}
	// Never retried: exactly one call per batch.
	if n := e.sim.Calls("BatchReset"); n != 5 {
		t.Fatalf("%d BatchReset calls, want 5 (one per batch of 50, none repeated)", n)
	}
	failed := 0
	for _, r := range rec.results() {
		if r.Outcome == fleet.BatchFailed {
			failed++
			if r.ErrorCode != "KOOPHONE.API.9999" {
				t.Fatalf("%+v", r)
			}
		}
	}
	if failed != 50 {
		t.Fatalf("%d phones of the failed batch reported, want 50", failed)
	}
}

func TestCancelStopsStartingBatches(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.FleetSize = 1000 })
	ids := e.fleet()
	eng := fleet.NewEngine(follower{e}, fleet.Config{Concurrency: 2, Clock: e.clk})
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type out struct {
		c   fleet.Counts
		err error
	}
	done := make(chan out, 1)
	go func() {
		c, err := eng.Run(ctx, ids, fleet.AsyncCommand(e.up, "ls"), 0, 0, rec.emit)
		done <- out{c, err}
	}()
	// Two batches start at once (the concurrency); the others wait for them, and the clock stands still, so
	// their jobs never end: cancel now.
	for range 2 {
		select {
		case b := <-rec.batches:
			if !b.Started {
				t.Fatalf("%+v", b)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no batch started")
		}
	}
	cancel()
	var o out
	select {
	case o = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !errors.Is(o.err, context.Canceled) || o.c.BatchesStarted != 2 || o.c.Pending != 800 {
		t.Fatalf("%v %+v", o.err, o.c)
	}
	if n := e.sim.Calls("AsyncCommand"); n != 2 {
		t.Fatalf("%d AsyncCommand calls after cancel, want 2", n)
	}
	if n := rec.count(func(ev fleet.Event) bool { return ev.Summary != nil }); n != 0 {
		t.Fatal("a summary after cancel")
	}
}

func TestRebootSyncAndFindApp(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.FleetSize = 120 })
	ids := e.fleet()
	eng := fleet.NewEngine(follower{e}, fleet.Config{Clock: e.clk})

	rec := newRecorder()
	c, err := e.run(context.Background(), eng, ids, fleet.Reboot(e.up), 0, 0, rec)
	if err != nil || c.Succeeded != 120 || e.sim.Calls("BatchRebootInstance") != 2 {
		t.Fatalf("reboot: %v %+v", err, c)
	}
	e.clk.Advance(5 * time.Second) // the reboots end

	rec = newRecorder()
	c, err = e.run(context.Background(), eng, ids, fleet.SyncCommand(e.up, "getprop ro.serialno"), 0, 0, rec)
	if err != nil || c.Succeeded != 120 {
		t.Fatalf("sync: %v %+v", err, c)
	}
	for id, r := range rec.results() {
		if r.Output != id || r.RawStatus != 2 {
			t.Fatalf("%s: %+v", id, r)
		}
	}

	// Install on the first 30 phones, then ask the whole fleet.
	rec = newRecorder()
	req := upstream.InstallAppRequest{ObjectName: "com.example.fleet", FileName: "fleet.apk", ObjectVersion: "1.2.3",
		ObjectSize: "10", BizType: "apk", ContentType: "application/octet-stream",
		InstallPackageURL: "https://obs.example.com/fleet.apk"}
	if c, err = e.run(context.Background(), eng, ids[:30], fleet.Install(e.up, req), 0, 0, rec); err != nil || c.Succeeded != 30 {
		t.Fatalf("install: %v %+v", err, c)
	}
	rec = newRecorder()
	if c, err = e.run(context.Background(), eng, ids, fleet.FindApp(e.up, "com.example.fleet"), 0, 0, rec); err != nil || c.Succeeded != 120 {
		t.Fatalf("find: %v %+v", err, c)
	}
	res := rec.results()
	for i, p := range ids {
		app := res[p.ID].App
		if (i < 30) != (app != nil) || app != nil && app.AppVersion != "1.2.3" {
			t.Fatalf("phone %d: %+v", i, res[p.ID])
		}
	}
}
