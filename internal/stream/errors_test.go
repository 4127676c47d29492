package stream

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

var (
	errBusy  = errors.New("busy, retry after 3s") // RESOURCE_EXHAUSTED with Retry-After, say
	errFlaky = errors.New("unavailable")          // UNAVAILABLE
	errGone  = errors.New("not found")            // permanent
)

func classify(err error) (bool, time.Duration) {
	switch {
	case errors.Is(err, errBusy):
		return true, 3 * time.Second
	case errors.Is(err, errFlaky):
		return true, 0
	}
	return false, 0
}

func TestTransientErrorsAreSurvivedAndRetryAfterHonoured(t *testing.T) {
	h, clk := newHub(t, Config{Classify: classify})
	src := newSource(val{N: 1})
	sub := watch(t, h, src)
	next(t, sub)

	src.set(val{}, errBusy)
	clk.step(t) // 500ms
	if d := clk.nextWait(t); d != 3*time.Second {
		t.Fatalf("wait after a Retry-After of 3s = %v, want 3s (more than the 800ms backoff)", d)
	}
	if pending(sub) {
		t.Fatal("a transient error reached the watcher")
	}
	src.set(val{}, errFlaky)
	clk.Advance(3 * time.Second)
	if d := clk.nextWait(t); d != 1280*time.Millisecond {
		t.Fatalf("wait after the second error = %v, want the grown backoff 1.28s", d)
	}
	src.set(val{N: 2}, nil)
	clk.Advance(1280 * time.Millisecond)
	if got := next(t, sub); got.Value.N != 2 || got.Seq != 2 {
		t.Fatalf("after recovery got %+v", got)
	}
	if d := clk.nextWait(t); d != 500*time.Millisecond {
		t.Fatalf("wait after the change = %v, want 500ms", d)
	}
	if st := h.Stats(); st.PollErrors != 2 || st.Polls != 4 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestConsecutiveErrorBudgetEndsStreams(t *testing.T) {
	h, clk := newHub(t, Config{Classify: classify, MaxConsecutiveErrors: 3, MaxOutage: -1})
	src := newSource(val{N: 1})
	a, b := watch(t, h, src), watch(t, h, src)
	next(t, a)
	next(t, b)
	src.set(val{}, errFlaky)
	clk.step(t)
	clk.step(t)
	clk.nextWait(t) // the second failure is handled and a retry is armed
	if pending(a) {
		t.Fatal("stream ended inside the budget")
	}
	clk.Advance(time.Hour)
	for _, s := range []Subscription[val]{a, b} {
		_, err := nextErr(s)
		if !errors.Is(err, ErrRetryBudget) || !errors.Is(err, errFlaky) {
			t.Fatalf("Next = %v, want ErrRetryBudget wrapping the last error", err)
		}
	}
	if st := h.Stats(); st.Polls != 4 || st.PollErrors != 3 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestSuccessResetsErrorBudget(t *testing.T) {
	h, clk := newHub(t, Config{Classify: classify, MaxConsecutiveErrors: 2, MaxOutage: -1})
	src := newSource(val{N: 1})
	sub := watch(t, h, src)
	next(t, sub)
	// Each nextWait proves the poll before it was handled, so each value is read by exactly one poll.
	for range 3 {
		d := clk.nextWait(t)
		src.set(val{}, errFlaky)
		clk.Advance(d)
		d = clk.nextWait(t) // the failure is handled (one of two allowed)
		src.set(val{N: 1}, nil)
		clk.Advance(d)
	}
	clk.nextWait(t)
	if pending(sub) {
		t.Fatal("stream ended although no two failures were consecutive")
	}
}

func TestOutageBudgetEndsStreams(t *testing.T) {
	h, clk := newHub(t, Config{Classify: classify, MaxConsecutiveErrors: -1, MaxOutage: 5 * time.Second})
	src := newSource(val{N: 1})
	sub := watch(t, h, src)
	next(t, sub)
	src.set(val{}, errFlaky)
	// Good poll at 0; failures at 0.5s, 1.3s, 2.58s and 4.628s; the retry after that would start at 7.9s,
	// past the 5s budget, so the fourth failure ends the streams at once instead of waiting for it.
	for range 4 {
		clk.step(t)
	}
	if _, err := nextErr(sub); !errors.Is(err, ErrRetryBudget) || !errors.Is(err, errFlaky) {
		t.Fatalf("Next = %v, want ErrRetryBudget", err)
	}
	if got, want := clk.Now().Sub(t0), 4628*time.Millisecond; got != want {
		t.Fatalf("failed at %v, want %v", got, want)
	}
	if st := h.Stats(); st.Polls != 5 || st.PollErrors != 4 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestPermanentErrorEndsEveryWatcherAndIsCachedBriefly(t *testing.T) {
	h, clk := newHub(t, Config{Classify: classify})
	src := newSource(val{N: 1})
	a, b, lagging := watch(t, h, src), watch(t, h, src), watch(t, h, src)
	for _, s := range []Subscription[val]{a, b, lagging} {
		next(t, s)
	}
	src.set(val{N: 2}, nil)
	clk.step(t)
	next(t, a)
	next(t, b)
	src.set(val{}, errGone)
	clk.step(t)
	for _, s := range []Subscription[val]{a, b} {
		if _, err := nextErr(s); !errors.Is(err, errGone) {
			t.Fatalf("Next = %v, want the permanent error", err)
		}
	}
	// A watcher that has not seen the newest snapshot gets it first, then the error, then the error again.
	if got := next(t, lagging); got.Value.N != 2 {
		t.Fatalf("lagging watcher got %+v, want the newest snapshot before the error", got)
	}
	for range 2 {
		if _, err := nextErr(lagging); !errors.Is(err, errGone) {
			t.Fatalf("Next = %v, want the permanent error", err)
		}
	}

	if d := clk.nextWait(t); d != 5*time.Second {
		t.Fatalf("armed %v after the error, want the 5s error TTL", d)
	}
	late := watch(t, h, src)
	next(t, late)
	if _, err := nextErr(late); !errors.Is(err, errGone) {
		t.Fatalf("late joiner: %v, want the cached error", err)
	}
	if n := src.polls.Load(); n != 3 {
		t.Fatalf("polls = %d, want 3: the cached error must serve the late joiner", n)
	}

	clk.Advance(5 * time.Second)
	eventually(t, "error cache expired", func() bool { return h.Stats().Cached == 0 })
	src.set(val{N: 7}, nil)
	if got := next(t, watch(t, h, src)); got.Value.N != 7 || got.Seq != 1 {
		t.Fatalf("after the error TTL got %+v", got)
	}
}

func TestErrorCacheCanBeDisabled(t *testing.T) {
	h, _ := newHub(t, Config{ErrorTTL: -1})
	src := newSource(val{})
	src.set(val{}, errGone)
	if _, err := nextErr(watch(t, h, src)); !errors.Is(err, errGone) {
		t.Fatalf("Next = %v", err)
	}
	eventually(t, "failed poller removed", func() bool { st := h.Stats(); return st.Pollers == 0 && st.Cached == 0 })
	src.set(val{N: 1}, nil)
	if got := next(t, watch(t, h, src)); got.Value.N != 1 {
		t.Fatalf("got %+v", got)
	}
}

func TestPollTimeoutIsTransient(t *testing.T) {
	// No Classify: every error a poll returns is permanent, but not our own timeout. No outage limit: the test's
	// poll timeout is hours long.
	h, clk := newHub(t, Config{MaxOutage: -1})
	var calls atomic.Int64
	type seen struct {
		deadline time.Time
		err      error
	}
	saw := make(chan seen, 1)
	src := Source[val]{Poll: func(ctx context.Context) (val, error) {
		switch calls.Add(1) {
		case 2:
			<-ctx.Done()
			d, _ := ctx.Deadline()
			saw <- seen{d, ctx.Err()}
			return val{}, ctx.Err()
		case 3:
			return val{N: 2}, nil
		}
		return val{N: 1}, nil
	}}
	sub, err := h.Watch(context.Background(), testKey, src)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	next(t, sub)
	clk.step(t)
	if d := clk.nextArm(t); d != testPollTimeout {
		t.Fatalf("armed %v during the poll, want the poll timeout", d)
	}
	clk.Advance(testPollTimeout)
	got := <-saw
	if want := t0.Add(500*time.Millisecond + testPollTimeout); !got.deadline.Equal(want) || got.err != context.DeadlineExceeded {
		t.Fatalf("poll saw deadline %v err %v; want %v, DeadlineExceeded", got.deadline, got.err, want)
	}
	if d := clk.nextWait(t); d != 800*time.Millisecond {
		t.Fatalf("wait after the timeout = %v, want a backed-off retry", d)
	}
	clk.Advance(800 * time.Millisecond)
	if snap := next(t, sub); snap.Value.N != 2 {
		t.Fatalf("after the timed-out poll got %+v", snap)
	}
}

func TestPollPanicEndsWatchersNotProcess(t *testing.T) {
	h, _ := newHub(t, Config{})
	sub, err := h.Watch(context.Background(), testKey, Source[val]{Poll: func(context.Context) (val, error) {
		panic("boom")
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := nextErr(sub); !errors.Is(err, ErrPollPanic) {
		t.Fatalf("Next = %v, want ErrPollPanic", err)
	}
	if _, err := nextErr(sub); err == io.EOF {
		t.Fatal("a failed watch reported a normal end")
	}
}
