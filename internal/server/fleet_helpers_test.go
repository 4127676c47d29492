package server

// Helpers of the fleet tests (fleet_test.go): a gateway on a 1,050-phone simulator, each fleet RPC over either
// transport, and the checks every fleet run must pass.

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
	"google.golang.org/grpc/credentials/insecure"
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

// fleetEnv is newEnv with a fleet of 1,050 phones in two node groups and the simulator's two regions (525 phones
// each), and fleet concurrency 3.
type fleetEnv struct {
	*env
	fleet  pb.FleetServiceClient
	ids    []string          // the simulator's phones in creation order
	fail   []string          // phones whose every job fails
	region map[string]string // each phone's region
}

// newFleetEnv starts the gateway on a 1,050-phone simulator; flags add to (or override) its configuration.
func newFleetEnv(t *testing.T, flags ...string) *fleetEnv {
	t.Helper()
	return startFleetEnv(t, fleetSize, nil, flags...)
}

// startFleetEnv starts the gateway on a simulator of size phones spread over regions (nil: the simulator's
// default two). A fleet of more than 777 phones has two failing phones (the 6th and the 778th).
func startFleetEnv(t *testing.T, size int, regions []string, flags ...string) *fleetEnv {
	t.Helper()
	cfg, err := config.Load(append([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--audit-log=off",
		fmt.Sprintf("--sim-fleet=%d", size), fmt.Sprintf("--fleet-concurrency=%d", fleetConcurrency)}, flags...),
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.NewFake(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	simCfg := func(c *sim.Config) {
		c.FleetSize = size
		c.Regions = regions
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
	var fail []string
	if size > 777 {
		fail = []string{ids[5], ids[777]}
	}
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
	conn, err := grpc.NewClient(srv.GRPCAddr(), append(checkErrorInfos(t), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
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
	return &fleetEnv{env: e, fleet: pb.NewFleetServiceClient(conn), ids: ids, fail: fail, region: regionsOf(e.sim)}
}

// regionsOf maps each phone of s to its region.
func regionsOf(s *sim.Server) map[string]string {
	out := map[string]string{}
	for _, reg := range []string{"cn-north-7", "cn-north-208", "cn-southwest-252"} {
		for _, id := range s.InstancesIn(reg) {
			out[id] = reg
		}
	}
	return out
}

// batchesFor is how many batches of at most size the phones ids make: KooPhone takes one region per batch, so
// each region's phones are cut apart.
func batchesFor(region map[string]string, ids []string, size int) int {
	per := map[string]int{}
	for _, id := range ids {
		if reg, ok := region[id]; ok { // an id KooPhone does not know joins no batch
			per[reg]++
		}
	}
	n := 0
	for _, k := range per {
		n += (k + size - 1) / size
	}
	return n
}

// transport runs one fleet RPC to its end and returns its events and final status.
type transport struct {
	name string
	call func(f *fleetEnv, ctx context.Context, rpc string, req proto.Message) (<-chan *pb.FleetEvent, <-chan error)
}

var transports = []transport{{"gRPC", (*fleetEnv).grpcFleet}, {"REST", (*fleetEnv).restFleet}}

// fleetPaths are the REST mirror's paths of the fleet RPCs.
var fleetPaths = map[string]string{
	"RunFleetCommand": "/v1/fleet/command/run", "ResetFleet": "/v1/fleet/reset", "RebootFleet": "/v1/fleet/reboot",
	"BackupFleet": "/v1/fleet/backup", "InstallAppOnFleet": "/v1/fleet/app/install", "ListFleetApps": "/v1/fleet/app-list",
}

func (f *fleetEnv) grpcFleet(ctx context.Context, rpc string, req proto.Message) (<-chan *pb.FleetEvent, <-chan error) {
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
func (f *fleetEnv) restFleet(ctx context.Context, rpc string, req proto.Message) (<-chan *pb.FleetEvent, <-chan error) {
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
		defer func() { _ = res.Body.Close() }()
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
	return checkFleet(f.t, f.region, events, want, size)
}

// checkFleet checks a fleet run's events: batches of 1..size phones of one region each (region says each phone's),
// every phone of want reported once with its region after its batch was announced, and a final summary whose
// counts, and each region's counts, add up.
func checkFleet(t *testing.T, region map[string]string, events []*pb.FleetEvent, want []string, size int) outcome {
	t.Helper()
	o := outcome{results: map[string]*pb.FleetPhoneResult{}}
	announced := map[int32]bool{}
	for i, ev := range events {
		switch {
		case ev.GetBatch() != nil:
			b := ev.GetBatch()
			if n := len(b.GetInstanceIds()); n == 0 || n > size {
				t.Fatalf("batch %d holds %d phones, want 1..%d", b.GetIndex(), n, size)
			}
			for _, id := range b.GetInstanceIds() {
				if region[id] != b.GetRegion() {
					t.Fatalf("batch %d of region %q holds %s of region %q", b.GetIndex(), b.GetRegion(), id, region[id])
				}
			}
			announced[b.GetIndex()] = true
			o.batches = append(o.batches, b)
		case ev.GetResult() != nil:
			r := ev.GetResult()
			notFound := r.GetOutcome() == pb.FleetOutcome_FLEET_OUTCOME_NOT_FOUND
			if notFound != (r.GetBatch() == -1) || !notFound && !announced[r.GetBatch()] {
				t.Fatalf("a result of batch %d before the batch was announced: %v", r.GetBatch(), r)
			}
			if r.GetRegion() != region[r.GetInstanceId()] {
				t.Fatalf("result of %s in region %q, want %q", r.GetInstanceId(), r.GetRegion(), region[r.GetInstanceId()])
			}
			if o.results[r.GetInstanceId()] != nil {
				t.Fatalf("phone %s reported twice", r.GetInstanceId())
			}
			o.results[r.GetInstanceId()] = r
		case ev.GetSummary() != nil:
			if i != len(events)-1 {
				t.Fatal("summary is not the last message")
			}
			o.summary = ev.GetSummary()
		}
	}
	if len(o.results) != len(want) {
		t.Fatalf("%d results, want %d", len(o.results), len(want))
	}
	for _, id := range want {
		if o.results[id] == nil {
			t.Fatalf("no result for %s", id)
		}
	}
	c := o.summary.GetCounts()
	if o.summary == nil || int(c.GetTotal()) != len(want) || c.GetSucceeded()+c.GetFailed() != c.GetTotal() ||
		c.GetRunning() != 0 || c.GetPending() != 0 || int(c.GetBatchesTotal()) != batchesFor(region, want, size) {
		t.Fatalf("summary %v", o.summary)
	}
	// Each region's counts: its phones, its batches, and the whole once summed.
	perRegion := map[string]int32{}
	for _, id := range want {
		if reg, ok := region[id]; ok {
			perRegion[reg]++
		}
	}
	var sum pb.FleetRegionProgress
	for _, rc := range c.GetRegions() {
		if rc.GetTotal() != perRegion[rc.GetRegion()] || rc.GetSucceeded()+rc.GetFailed() != rc.GetTotal() {
			t.Fatalf("region %v, want %d phones", rc, perRegion[rc.GetRegion()])
		}
		sum.Total += rc.GetTotal()
		sum.Succeeded += rc.GetSucceeded()
		sum.BatchesTotal += rc.GetBatchesTotal()
		sum.BatchesStarted += rc.GetBatchesStarted()
	}
	if len(c.GetRegions()) != len(perRegion) || sum.Total+c.GetNotFound() != c.GetTotal() || sum.Succeeded != c.GetSucceeded() ||
		sum.BatchesTotal != c.GetBatchesTotal() || sum.BatchesStarted != c.GetBatchesStarted() {
		t.Fatalf("regions do not add up: %v", o.summary)
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
	batches := batchesFor(f.region, want, size)
	if n := f.sim.Calls(op); n != int64(batches) {
		f.t.Fatalf("%s over %s: %d %s calls, want %d (one per batch)", rpc, tr.name, n, op, batches)
	}
	if n := f.sim.Answered("KOOPHONE.API.1002"); n != 0 {
		f.t.Fatalf("%s over %s: KooPhone refused %d batches that spanned regions", rpc, tr.name, n)
	}
	if p := f.sim.PeakInFlight(op); p > fleetConcurrency {
		f.t.Fatalf("%s over %s: %d %s calls at once, want at most %d", rpc, tr.name, p, op, fleetConcurrency)
	}
	return o
}
