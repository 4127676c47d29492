package upstream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// gateLimiter lets one Wait through per token the test sends, and says who got through: the test decides when
// each turn ends, so the order of admissions is exact and no timing is asserted.
type gateLimiter struct {
	gate     chan struct{}
	admitted chan string
}

func newGate() *gateLimiter {
	return &gateLimiter{gate: make(chan struct{}), admitted: make(chan string, 1000)}
}

func (g *gateLimiter) Wait(ctx context.Context, _ bool) error {
	select {
	case <-g.gate:
		g.admitted <- label(ctx)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gateLimiter) HoldUntil(time.Time) {}

func label(ctx context.Context) string {
	if k, _ := ctx.Value(fairKeyCtx{}).(fairKey); k.poll {
		return "poll"
	}
	return FairnessKey(ctx)
}

// queued waits until a caller has the turn and n more are queued, failing with what it saw.
func queued(t *testing.T, f *fairLimiter, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q := f.kinds[0]
		q.mu.Lock()
		got, busy := q.waiting+len(q.polls), q.busy
		q.mu.Unlock()
		if got == n && busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fair queue holds %d waiters, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// admit lets n waits through, one at a time, and returns who got each turn.
func admit(t *testing.T, g *gateLimiter, n int) []string {
	t.Helper()
	var order []string
	for range n {
		select {
		case g.gate <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatalf("nobody waited for turn %d; admitted so far %v", len(order)+1, order)
		}
		order = append(order, <-g.admitted)
	}
	return order
}

// start runs Wait for ctx on its own goroutine; errs gets its result.
func start(ctx context.Context, f *fairLimiter, errs chan<- error) {
	go func() { errs <- f.Wait(ctx, false) }()
}

func TestFairQueueServesKeysRoundRobin(t *testing.T) {
	g := newGate()
	f := newFairLimiter(g, 0)
	errs := make(chan error, 100)
	bg := context.Background()
	// The flooder's first call holds the turn; 20 more queue behind it, then one call of another caller.
	start(WithFairnessKey(bg, "flood"), f, errs)
	queued(t, f, 0)
	for i := range 20 {
		start(WithFairnessKey(bg, "flood"), f, errs)
		queued(t, f, i+1)
	}
	start(WithFairnessKey(bg, "other"), f, errs)
	queued(t, f, 21)
	order := admit(t, g, 3)
	// FIFO would serve "other" 22nd; round robin serves it right after the flooder's turn and its next one.
	if order[0] != "flood" || (order[1] != "other" && order[2] != "other") {
		t.Fatalf("admission order %v: the other caller waited behind the flood", order)
	}
	admit(t, g, 19)
	for range 22 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if s := (&Client{limiter: f}).Queue(); s != (QueueStats{}) {
		t.Fatalf("queue after all turns: %+v", s)
	}
}

func TestFairQueueKeepsPollShare(t *testing.T) {
	g := newGate()
	f := newFairLimiter(g, 0.2)
	errs := make(chan error, 200)
	bg := context.Background()
	start(WithFairnessKey(bg, "flood"), f, errs)
	queued(t, f, 0)
	n := 0
	for i := range 40 {
		start(WithFairnessKey(bg, fmt.Sprintf("caller-%d", i%4)), f, errs)
		n++
		queued(t, f, n)
	}
	for range 20 {
		start(WithPollClass(bg), f, errs)
		n++
		queued(t, f, n)
	}
	order := admit(t, g, 51) // the holder's turn, then 50 more
	polls := 0
	for _, who := range order[1:] {
		if who == "poll" {
			polls++
		}
	}
	// One turn in five while callers wait: 10 of 50.
	if polls != 10 {
		t.Fatalf("polls got %d of 50 contended turns, want 10 (a 0.2 share): %v", polls, order)
	}
	admit(t, g, 10)
	for range 61 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestFairQueueWaiterThatLeaves(t *testing.T) {
	g := newGate()
	f := newFairLimiter(g, 0)
	errs := make(chan error, 10)
	bg := context.Background()
	start(WithFairnessKey(bg, "a"), f, errs)
	queued(t, f, 0)
	ctx, cancel := context.WithTimeout(WithFairnessKey(bg, "b"), time.Hour)
	start(ctx, f, errs)
	queued(t, f, 1)
	start(WithFairnessKey(bg, "c"), f, errs)
	queued(t, f, 2)
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled waiter got %v", err)
	}
	queued(t, f, 1)
	if order := admit(t, g, 2); order[0] != "a" || order[1] != "c" {
		t.Fatalf("order %v", order)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// A queued caller whose deadline passes is refused as by the rate limit: nothing was sent.
	start(WithFairnessKey(bg, "a"), f, errs)
	queued(t, f, 0)
	dctx, dcancel := context.WithTimeout(WithFairnessKey(bg, "d"), 20*time.Millisecond)
	defer dcancel()
	if err := f.Wait(dctx, false); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("a waiter past its deadline got %v, want ErrRateLimited", err)
	}
	admit(t, g, 1)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
