package server

// KooPhone refuses a batch whose phones are in more than one region (KOOPHONE.API.1002). These tests run fleet
// operations over three regions, by filter and by an explicit id list that mixes them, on both transports, and
// count the simulator's 1002 answers: there must be none.

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

const code1002 = "KOOPHONE.API.1002"

func TestFleetOverThreeRegionsNeverMixesThem(t *testing.T) {
	// 21 phones, 7 in each of three regions (sim-00001..07, 08..14, 15..21); then two more are bought in
	// cn-north-208 through the gateway, as in the issue that found the bug (they come last in the listing).
	regions := []string{"cn-north-7", "cn-north-208", "cn-southwest-252"}
	f := startFleetEnv(t, 21, regions)
	req := createReq(goodSku, 2)
	req.RegionId = "cn-north-208"
	if _, err := f.order.CreateInstance(f.ctx(), req); err != nil {
		t.Fatal(err)
	}
	f.ids, f.region = f.sim.InstanceIDs(), regionsOf(f.sim)
	if len(f.ids) != 23 || len(f.sim.InstancesIn("cn-north-208")) != 9 || f.region[f.ids[22]] != "cn-north-208" {
		t.Fatalf("fleet %d phones: %v", len(f.ids), f.region)
	}
	wantRegions := map[string]int32{"cn-north-7": 7, "cn-north-208": 9, "cn-southwest-252": 7}
	checkRegions := func(name string, o outcome, want map[string]int32) {
		t.Helper()
		var got []string
		for _, rc := range o.summary.GetCounts().GetRegions() {
			got = append(got, rc.GetRegion())
			if rc.GetTotal() != want[rc.GetRegion()] || rc.GetSucceeded() != rc.GetTotal() || rc.GetBatchesStarted() != rc.GetBatchesTotal() {
				t.Fatalf("%s: region %v, want %d phones all succeeded", name, rc, want[rc.GetRegion()])
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: regions %v, want %d", name, got, len(want))
		}
	}

	for _, tr := range transports {
		// Every phone: one batch per region, in the listing's order of regions.
		o := f.run(tr, "RebootFleet", "BatchRebootInstance", &pb.RebootFleetRequest{Selector: all()}, f.ids, 100)
		checkRegions(tr.name+" reboot", o, wantRegions)
		if len(o.batches) != 3 {
			t.Fatalf("%s reboot: %d batches, want one per region", tr.name, len(o.batches))
		}
		regs := make([]string, 3) // batches start concurrently: their announcements come in any order
		for _, b := range o.batches {
			regs[b.GetIndex()] = b.GetRegion()
		}
		if !slices.Equal(regs, regions) {
			t.Fatalf("%s reboot: batches' regions %v", tr.name, regs)
		}
		f.clk.Advance(5 * time.Second) // the reboots end

		// Batches of 2 over all of them: 4 + 5 + 4 batches, never one that spans regions.
		o = f.run(tr, "RunFleetCommand", "AsyncCommand", &pb.RunFleetCommandRequest{Command: "getprop ro.serialno",
			Selector: all(), Options: &pb.FleetOptions{BatchSize: 2}}, f.ids, 2)
		checkRegions(tr.name+" command", o, wantRegions)

		// An explicit list that mixes the regions phone by phone, with a repeat and an id KooPhone does not know:
		// the known phones make one batch per region, the unknown id gets its own result and spoils no batch.
		ids := []string{f.ids[0], f.ids[7], f.ids[14], f.ids[22], f.ids[1], "nosuch01", f.ids[8], f.ids[0]}
		want := []string{f.ids[0], f.ids[7], f.ids[14], f.ids[22], f.ids[1], "nosuch01", f.ids[8]}
		o = f.run(tr, "RunFleetCommand", "AsyncCommand", &pb.RunFleetCommandRequest{Command: "getprop ro.serialno",
			Selector: &pb.FleetSelector{InstanceIds: ids}}, want, 100)
		checkRegions(tr.name+" ids", o, map[string]int32{"cn-north-7": 2, "cn-north-208": 3, "cn-southwest-252": 1})
		for _, id := range want[:5] {
			if r := o.results[id]; r.GetOutcome() != pb.FleetOutcome_FLEET_OUTCOME_SUCCEEDED || r.GetExecuteMsg() != id {
				t.Fatalf("%s ids: %s: %v", tr.name, id, r)
			}
		}
		if r := o.results["nosuch01"]; r.GetOutcome() != pb.FleetOutcome_FLEET_OUTCOME_NOT_FOUND || r.GetBatch() != -1 ||
			r.GetErrorCode() != "FLEET_NOT_FOUND" || o.summary.GetCounts().GetNotFound() != 1 || o.summary.GetCounts().GetFailed() != 1 {
			t.Fatalf("%s ids: unknown id %v, summary %v", tr.name, r, o.summary)
		}

		// One region by filter.
		south := f.sim.InstancesIn("cn-southwest-252")
		o = f.run(tr, "ResetFleet", "BatchReset", &pb.ResetFleetRequest{
			Selector: &pb.FleetSelector{Filter: &pb.FleetFilter{Region: "cn-southwest-252"}}}, south, 100)
		checkRegions(tr.name+" region filter", o, map[string]int32{"cn-southwest-252": 7})
	}
	waitIdle(f.env)

	// The control: the simulator does refuse, and count, a batch that spans regions.
	_, err := f.inst.BatchRebootInstance(f.ctx(), &pb.BatchRebootInstanceRequest{InstanceIds: []string{f.ids[0], f.ids[7]}})
	if status.Code(err) != codes.InvalidArgument || errorInfoReason(err) != code1002 || f.sim.Answered(code1002) != 1 {
		t.Fatalf("a batch over two regions: %v, %d answers 1002", err, f.sim.Answered(code1002))
	}
}
