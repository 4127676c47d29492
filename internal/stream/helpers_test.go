package stream

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = clocktest.Start(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

// testPollTimeout is long and odd so its timers (the per-poll watchdog) are told apart from the poller's waits.
const testPollTimeout = 7 * time.Hour

// waitBound bounds how long a test waits for the code under test before failing: it catches hangs, it asserts no
// speed.
const waitBound = 20 * time.Second

// recClock is a fake clock that also reports every timer it arms, in order, so a test can wait until the poller
// armed its next wait (and learn its length) before advancing: no sleeps, no races.
type recClock struct {
	*clock.Fake
	arms chan time.Duration
}

func newRecClock() *recClock {
	return &recClock{Fake: clock.NewFake(t0), arms: make(chan time.Duration, 1<<16)}
}

// NewTimer arms first, then reports, so whoever reads the report can advance past the timer.
func (c *recClock) NewTimer(d time.Duration) clock.Timer {
	t := c.Fake.NewTimer(d)
	c.arms <- d
	return t
}

// nextArm returns the length of the next timer armed, watchdogs included.
func (c *recClock) nextArm(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.arms:
		return d
	case <-time.After(waitBound):
		t.Fatal("no timer armed")
		return 0
	}
}

// nextWait returns the length of the next wait the poller armed (a sleep between polls or a cache TTL),
// skipping per-poll watchdogs. When it returns, the poll before that wait has finished and been published.
func (c *recClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	for {
		if d := c.nextArm(t); d != testPollTimeout {
			return d
		}
	}
}

// step lets the armed wait pass, which starts the next poll.
func (c *recClock) step(t *testing.T) time.Duration {
	t.Helper()
	d := c.nextWait(t)
	c.Advance(d)
	return d
}

// val is the watched value in tests.
type val struct {
	N    int
	Done bool
}

// testSource counts its polls and answers with whatever the test set last.
type testSource struct {
	polls atomic.Int64
	mu    sync.Mutex
	v     val
	err   error
}

func newSource(v val) *testSource { return &testSource{v: v} }

func (s *testSource) set(v val, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v, s.err = v, err
}

func (s *testSource) source() Source[val] {
	return Source[val]{
		Poll: func(context.Context) (val, error) {
			s.polls.Add(1)
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.v, s.err
		},
		Terminal: func(v val) bool { return v.Done },
		Equal:    func(a, b val) bool { return a == b },
	}
}

// newHub returns a hub on a recording fake clock, without jitter unless cfg asks for it, closed at the end.
func newHub(t *testing.T, cfg Config) (*Local[val], *recClock) {
	clk := newRecClock()
	cfg.Clock = clk
	cfg.PollTimeout = testPollTimeout
	if cfg.Jitter == 0 {
		cfg.Jitter = -1
	}
	h := NewLocal[val](cfg)
	t.Cleanup(h.Close)
	return h, clk
}

var testKey = Key{Identity: "id", Kind: "task", ID: "t1"}

func watch(t *testing.T, h *Local[val], src *testSource) Subscription[val] {
	t.Helper()
	sub, err := h.Watch(context.Background(), testKey, src.source())
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// next returns the next snapshot, failing the test on an error.
func next(t *testing.T, sub Subscription[val]) Snapshot[val] {
	t.Helper()
	snap, err := nextErr(sub)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return snap
}

func nextErr(sub Subscription[val]) (Snapshot[val], error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	return sub.Next(ctx)
}

// pending reports, without blocking, whether Next would return something at once.
func pending(sub Subscription[val]) bool {
	s := sub.(*subscription[val])
	st := s.p.state.Load()
	return st.snap.Seq > s.seen || st.end != nil
}

// eventually waits for cond, for effects that happen on another goroutine by design (a ctx's AfterFunc).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testsupport.Eventually(t, waitBound, what, cond)
}
