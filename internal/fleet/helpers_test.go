package fleet_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
	"github.com/koophone-gateway/koophone-gateway/internal/fleet"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const jobDuration = 2 * time.Second

// env is the simulator on a loopback port, the real client, and a real stream hub, all on one fake clock.
type env struct {
	t   *testing.T
	sim *sim.Server
	clk *clock.Fake
	up  *upstream.Client
	hub *stream.Local[taskState]
}

func newEnv(t *testing.T, mod func(*sim.Config)) *env {
	t.Helper()
	clk := clocktest.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	cfg := sim.DefaultConfig()
	cfg.Clock, cfg.JobDuration = clk, jobDuration
	if mod != nil {
		mod(&cfg)
	}
	s := sim.New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	creds := s.Credentials()
	tr := upstream.NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	up, err := upstream.New(upstream.Config{
		Endpoint: srv.URL, Auth: upstream.NewAKSK(creds.AK, creds.SK, creds.ProjectID),
		HTTPClient: &http.Client{Transport: tr}, Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	hub := stream.NewLocal[taskState](stream.Config{
		Clock: clk, FirstInterval: 500 * time.Millisecond, MaxInterval: time.Second, PollTimeout: 24 * time.Hour,
		Rand: func() float64 { return 0.5 },
	})
	t.Cleanup(hub.Close)
	return &env{t: t, sim: s, clk: clk, up: up, hub: hub}
}

// taskState is what the test hub carries (the service's hub carries the contract's WatchTaskResponse instead).
type taskState struct {
	jobs     []upstream.JobDetail
	terminal bool
}

// follower follows tasks through the hub, as the service's adapter does.
type follower struct{ e *env }

func (f follower) Follow(ctx context.Context, taskID string) (fleet.TaskWatch, error) {
	sub, err := f.e.hub.Watch(ctx, stream.Key{Identity: f.e.up.Identity(), Kind: "task", ID: taskID}, stream.Source[taskState]{
		Poll: func(ctx context.Context) (taskState, error) {
			ts, err := f.e.up.GetTask(ctx, taskID)
			if err != nil {
				return taskState{}, err
			}
			st := taskState{jobs: ts.Jobs, terminal: true}
			for _, j := range ts.Jobs {
				if j.Status == 1 {
					st.terminal = false
				}
			}
			return st, nil
		},
		Terminal: func(s taskState) bool { return s.terminal },
		Equal: func(a, b taskState) bool {
			if a.terminal != b.terminal || len(a.jobs) != len(b.jobs) {
				return false
			}
			for i := range a.jobs {
				if a.jobs[i] != b.jobs[i] {
					return false
				}
			}
			return true
		},
	})
	if err != nil {
		return nil, err
	}
	return watch{sub}, nil
}

type watch struct {
	sub stream.Subscription[taskState]
}

func (w watch) Next(ctx context.Context) ([]upstream.JobDetail, bool, error) {
	s, err := w.sub.Next(ctx)
	if err != nil {
		return nil, false, err
	}
	return s.Value.jobs, s.Terminal, nil
}

func (w watch) Close() { w.sub.Close() }

// recorder collects a run's events.
type recorder struct {
	mu      sync.Mutex
	events  []fleet.Event
	batches chan fleet.BatchEvent // every batch event, for tests that act on them
}

func newRecorder() *recorder { return &recorder{batches: make(chan fleet.BatchEvent, 10_000)} }

func (r *recorder) emit(ev fleet.Event) error {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	if ev.Batch != nil {
		r.batches <- *ev.Batch
	}
	return nil
}

func (r *recorder) results() map[string]fleet.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]fleet.Result{}
	for _, ev := range r.events {
		if ev.Result != nil {
			out[ev.Result.InstanceID] = *ev.Result
		}
	}
	return out
}

func (r *recorder) count(pred func(fleet.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if pred(ev) {
			n++
		}
	}
	return n
}

// fleet is every phone of the simulator with its region, in creation order (one ListInstances call per 100).
func (e *env) fleet() []fleet.Phone {
	e.t.Helper()
	ps, err := fleet.NewResolver(e.up, fleet.ResolverConfig{}).Resolve(context.Background(), fleet.Selector{Filter: &fleet.Filter{All: true}})
	if err != nil {
		e.t.Fatal(err)
	}
	return ps
}

// runInBackground runs the engine and moves the fake clock along (in real time, bounded) until it returns.
func (e *env) run(ctx context.Context, eng *fleet.Engine, ids []fleet.Phone, op fleet.Op, batch, conc int, rec *recorder) (fleet.Counts, error) {
	e.t.Helper()
	type out struct {
		c   fleet.Counts
		err error
	}
	done := make(chan out, 1)
	go func() {
		c, err := eng.Run(ctx, ids, op, batch, conc, rec.emit)
		done <- out{c, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case o := <-done:
			return o.c, o.err
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatal("fleet run did not end")
		}
		e.clk.Advance(250 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}
