package fleet_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/fleet"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// The engine's edge cases, with batch starts and task follows the test controls.

type stubFollower struct {
	err  error                             // Follow fails with this
	jobs func(string) []upstream.JobDetail // else: one terminal snapshot per task
}

func (f stubFollower) Follow(_ context.Context, taskID string) (fleet.TaskWatch, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &stubWatch{jobs: f.jobs(taskID)}, nil
}

type stubWatch struct{ jobs []upstream.JobDetail }

func (w *stubWatch) Next(context.Context) ([]upstream.JobDetail, bool, error) {
	return w.jobs, true, nil
}
func (w *stubWatch) Close() {}

// phones are n phones of one region, p0, p1, ...
func phones(n int) []fleet.Phone {
	out := make([]fleet.Phone, n)
	for i := range out {
		out[i] = fleet.Phone{ID: "p" + strconv.Itoa(i), Region: "r1"}
	}
	return out
}

func idsOf(ps []fleet.Phone) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// startEvery starts a task per batch whose jobs are named after the phones; skip leaves one phone out of cmd_jobs.
func startEvery(skip string) fleet.Op {
	return fleet.Op{Name: "test", Start: func(_ context.Context, b fleet.Batch) (*fleet.Started, error) {
		st := &fleet.Started{TaskID: "t" + strconv.Itoa(b.Index)}
		for _, id := range b.IDs {
			if id != skip {
				st.Jobs = append(st.Jobs, upstream.CmdJob{InstanceID: id, JobID: "j-" + id})
			}
		}
		return st, nil
	}}
}

func jobsOf(ps []fleet.Phone, status int) func(string) []upstream.JobDetail {
	return func(string) []upstream.JobDetail {
		out := make([]upstream.JobDetail, len(ps))
		for i, p := range ps {
			out[i] = upstream.JobDetail{JobID: "j-" + p.ID, Status: status}
		}
		return out
	}
}

func TestPhoneWithoutAJobIsUnknown(t *testing.T) {
	ids := phones(5)
	eng := fleet.NewEngine(stubFollower{jobs: jobsOf(ids, 2)}, fleet.Config{})
	rec := newRecorder()
	c, err := eng.Run(context.Background(), ids, startEvery("p3"), 2, 1, rec.emit)
	if err != nil || c.Succeeded != 4 || c.Failed != 1 || c.Running != 0 {
		t.Fatalf("%v %+v", err, c)
	}
	if r := rec.results()["p3"]; r.Outcome != fleet.Unknown || r.ErrorCode != fleet.ReasonNoJob || r.TaskID != "t1" {
		t.Fatalf("%+v", r)
	}
}

func TestFollowFailureIsUnknownNotFailed(t *testing.T) {
	ids := phones(3)
	eng := fleet.NewEngine(stubFollower{err: errors.New("hub closed")}, fleet.Config{})
	rec := newRecorder()
	c, err := eng.Run(context.Background(), ids, startEvery(""), 0, 0, rec.emit)
	if err != nil || c.Failed != 3 || c.BatchesStarted != 1 {
		t.Fatalf("%v %+v", err, c)
	}
	for _, r := range rec.results() {
		if r.Outcome != fleet.Unknown || r.ErrorCode != fleet.ReasonFollowFailed {
			t.Fatalf("%+v", r)
		}
	}
}

func TestStartWithoutAnAnswerIsUnknown(t *testing.T) {
	op := fleet.Op{Name: "test", Start: func(context.Context, fleet.Batch) (*fleet.Started, error) {
		return nil, &upstream.Error{Kind: upstream.KindTransport, Message: "connection reset"}
	}}
	eng := fleet.NewEngine(stubFollower{}, fleet.Config{})
	rec := newRecorder()
	c, err := eng.Run(context.Background(), phones(2), op, 0, 0, rec.emit)
	if err != nil || c.BatchesFailed != 1 || c.Failed != 2 {
		t.Fatalf("%v %+v", err, c)
	}
	for _, r := range rec.results() {
		if r.Outcome != fleet.Unknown || r.ErrorCode != fleet.ReasonStartUnknown {
			t.Fatalf("a start that may have reached KooPhone must not read as refused: %+v", r)
		}
	}
}

func TestEmitErrorStopsTheRun(t *testing.T) {
	starts := 0
	op := startEvery("")
	start := op.Start
	op.Start = func(ctx context.Context, b fleet.Batch) (*fleet.Started, error) {
		starts++ // concurrency 1: one start at a time
		return start(ctx, b)
	}
	eng := fleet.NewEngine(stubFollower{jobs: jobsOf(phones(1000), 2)}, fleet.Config{})
	gone := errors.New("client gone")
	_, err := eng.Run(context.Background(), phones(1000), op, 10, 1, func(ev fleet.Event) error {
		if ev.Result != nil {
			return gone
		}
		return nil
	})
	if !errors.Is(err, gone) || starts > 2 {
		t.Fatalf("%v after %d starts", err, starts)
	}
}

func TestNothingSelected(t *testing.T) {
	eng := fleet.NewEngine(stubFollower{}, fleet.Config{})
	rec := newRecorder()
	c, err := eng.Run(context.Background(), nil, startEvery(""), 0, 0, rec.emit)
	if err != nil || c.Tally != (fleet.Tally{}) || c.NotFound != 0 || len(c.Regions) != 0 ||
		rec.count(func(ev fleet.Event) bool { return ev.Summary != nil }) != 1 {
		t.Fatalf("%v %+v", err, c)
	}
}

func TestLimitsNeverExceedTheConfiguration(t *testing.T) {
	eng := fleet.NewEngine(stubFollower{}, fleet.Config{BatchSize: 50, Concurrency: 3})
	for _, tc := range [][4]int{{0, 0, 50, 3}, {20, 2, 20, 2}, {100, 10, 50, 3}, {-1, -1, 50, 3}} {
		if b, c := eng.Limits(tc[0], tc[1]); b != tc[2] || c != tc[3] {
			t.Fatalf("Limits(%d, %d) = %d, %d", tc[0], tc[1], b, c)
		}
	}
	if b, _ := fleet.NewEngine(stubFollower{}, fleet.Config{BatchSize: 500}).Limits(0, 0); b != fleet.MaxBatch {
		t.Fatalf("batch size %d above KooPhone's limit", b)
	}
}

// Phones of three regions and two unknown ids: every batch is of one region, the unknown ids get NotFound results
// of their own (before any batch), and the counts add up per region.
func TestRegionsCountedApartAndUnknownIDsAlone(t *testing.T) {
	regions := []string{"cn-north-7", "cn-north-208", "cn-southwest-252"}
	var ps []fleet.Phone
	for i := range 25 {
		ps = append(ps, fleet.Phone{ID: "p" + strconv.Itoa(i), Region: regions[i%3]})
	}
	ps = append(ps[:5], append([]fleet.Phone{{ID: "gone1", Missing: true}}, ps[5:]...)...)
	ps = append(ps, fleet.Phone{ID: "gone2", Missing: true})
	regionOf := map[string]string{}
	for _, p := range ps {
		regionOf[p.ID] = p.Region
	}
	op := startEvery("")
	start := op.Start
	op.Start = func(ctx context.Context, b fleet.Batch) (*fleet.Started, error) {
		for _, id := range b.IDs {
			if regionOf[id] != b.Region {
				return nil, &upstream.Error{Code: "KOOPHONE.API.1002", Message: "instance not in the same region"}
			}
		}
		if b.Region == "cn-southwest-252" && b.Index == 4 { // that region's first batch is refused
			return nil, &upstream.Error{Code: "KOOPHONE.API.9999", Message: "internal"}
		}
		return start(ctx, b)
	}
	eng := fleet.NewEngine(stubFollower{jobs: jobsOf(ps, 2)}, fleet.Config{})
	rec := newRecorder()
	c, err := eng.Run(context.Background(), ps, op, 5, 2, rec.emit)
	if err != nil {
		t.Fatal(err)
	}
	// 9, 8 and 8 phones in batches of 5: 2 + 2 + 2 batches.
	if c.Total != 27 || c.NotFound != 2 || c.Succeeded != 20 || c.Failed != 7 || c.Pending != 0 || c.Running != 0 ||
		c.BatchesTotal != 6 || c.BatchesStarted != 5 || c.BatchesFailed != 1 {
		t.Fatalf("counts %+v", c.Tally)
	}
	want := []fleet.RegionCounts{
		{Region: "cn-north-7", Tally: fleet.Tally{Total: 9, Succeeded: 9, BatchesStarted: 2, BatchesTotal: 2}},
		{Region: "cn-north-208", Tally: fleet.Tally{Total: 8, Succeeded: 8, BatchesStarted: 2, BatchesTotal: 2}},
		{Region: "cn-southwest-252", Tally: fleet.Tally{Total: 8, Succeeded: 3, Failed: 5, BatchesStarted: 1, BatchesFailed: 1, BatchesTotal: 2}},
	}
	if !slices.Equal(c.Regions, want) {
		t.Fatalf("regions %+v", c.Regions)
	}
	res := rec.results()
	for _, id := range []string{"gone1", "gone2"} {
		if r := res[id]; r.Outcome != fleet.NotFound || r.Batch != fleet.NoBatch || r.ErrorCode != fleet.ReasonNotFound || r.Region != "" {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	for id, r := range res {
		if r.Outcome != fleet.NotFound && r.Region != regionOf[id] {
			t.Fatalf("%s: region %q, want %q", id, r.Region, regionOf[id])
		}
	}
	// The unknown ids are told first, before any batch.
	rec.mu.Lock()
	first := rec.events[:2]
	rec.mu.Unlock()
	for _, ev := range first {
		if ev.Result == nil || ev.Result.Outcome != fleet.NotFound {
			t.Fatalf("first events %+v", first)
		}
	}
}
