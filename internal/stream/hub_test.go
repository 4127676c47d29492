package stream

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

func TestFirstAndLateJoinerGetSnapshotAtOnce(t *testing.T) {
	h, clk := newHub(t, Config{})
	src := newSource(val{N: 1})
	first := watch(t, h, src)
	if got := next(t, first); got.Value.N != 1 || got.Seq != 1 || got.Terminal {
		t.Fatalf("first watcher got %+v", got)
	}
	clk.nextWait(t) // the first poll is done
	late := watch(t, h, src)
	if got := next(t, late); got.Value.N != 1 || got.Seq != 1 {
		t.Fatalf("late joiner got %+v", got)
	}
	if n := src.polls.Load(); n != 1 {
		t.Fatalf("polls = %d, want 1 (the late joiner must be served from the latest snapshot)", n)
	}
	if st := h.Stats(); st.Watchers != 2 || st.Pollers != 1 || st.Delivered != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestChangeSendsOneMessagePerWatcher(t *testing.T) {
	h, clk := newHub(t, Config{})
	src := newSource(val{N: 1})
	subs := []Subscription[val]{watch(t, h, src), watch(t, h, src), watch(t, h, src)}
	for _, s := range subs {
		next(t, s)
	}
	src.set(val{N: 2}, nil)
	clk.step(t)
	clk.nextWait(t) // the poll after the step is published
	for i, s := range subs {
		if got := next(t, s); got.Value.N != 2 || got.Seq != 2 {
			t.Fatalf("watcher %d got %+v", i, got)
		}
		if pending(s) {
			t.Fatalf("watcher %d has a second message for one change", i)
		}
	}
	if st := h.Stats(); st.Delivered != 6 || st.Conflated != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestFirstSourceWins(t *testing.T) {
	h, _ := newHub(t, Config{})
	a, b := newSource(val{N: 1}), newSource(val{N: 99})
	sa := watch(t, h, a)
	sb := watch(t, h, b)
	if got := next(t, sb); got.Value.N != 1 {
		t.Fatalf("second watcher got %+v, want the first Source's value", got)
	}
	next(t, sa)
	if b.polls.Load() != 0 {
		t.Fatal("the second Source was polled")
	}
}

func TestKeysArePolledSeparately(t *testing.T) {
	h, _ := newHub(t, Config{})
	a, b := newSource(val{N: 1}), newSource(val{N: 2})
	sa, err := h.Watch(context.Background(), Key{"id", "task", "a"}, a.source())
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := h.Watch(context.Background(), Key{"other-principal", "task", "a"}, b.source())
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if next(t, sa).Value.N != 1 || next(t, sb).Value.N != 2 {
		t.Fatal("keys differing only by identity shared a poller")
	}
	if st := h.Stats(); st.Pollers != 2 {
		t.Fatalf("pollers = %d", st.Pollers)
	}
}

func TestTerminalIsCachedThenExpires(t *testing.T) {
	h, clk := newHub(t, Config{TerminalTTL: time.Minute})
	src := newSource(val{N: 1})
	sub := watch(t, h, src)
	next(t, sub)
	src.set(val{N: 2, Done: true}, nil)
	clk.step(t)
	got := next(t, sub)
	if !got.Terminal || got.Value.N != 2 || got.Seq != 2 {
		t.Fatalf("final snapshot = %+v", got)
	}
	if _, err := nextErr(sub); err != io.EOF {
		t.Fatalf("Next after terminal = %v, want io.EOF", err)
	}
	if d := clk.nextWait(t); d != time.Minute {
		t.Fatalf("armed %v after terminal, want the 1m cache TTL", d)
	}
	if st := h.Stats(); st.Pollers != 0 || st.Cached != 1 {
		t.Fatalf("stats after terminal = %+v", st)
	}
	sub.Close() // the cache outlives its watchers

	clk.Advance(time.Minute - time.Nanosecond)
	late := watch(t, h, src)
	if got := next(t, late); !got.Terminal || got.Value.N != 2 {
		t.Fatalf("late joiner got %+v", got)
	}
	if _, err := nextErr(late); err != io.EOF {
		t.Fatalf("late joiner after terminal: %v", err)
	}
	if n := src.polls.Load(); n != 2 {
		t.Fatalf("polls = %d, want 2: the cache must serve the late joiner", n)
	}
	late.Close()

	clk.Advance(time.Nanosecond) // TTL over
	eventually(t, "expired entry removed", func() bool { return h.Stats().Cached == 0 })
	src.set(val{N: 3}, nil)
	fresh := watch(t, h, src)
	if got := next(t, fresh); got.Value.N != 3 || got.Seq != 1 || got.Terminal {
		t.Fatalf("after expiry got %+v, want a fresh poll", got)
	}
	if n := src.polls.Load(); n != 3 {
		t.Fatalf("polls = %d, want 3", n)
	}
}

// A watch right after expiry polls afresh, whether or not the cache's goroutine has removed the entry yet
// (Watch checks the clock itself).
func TestExpiredCacheIsNotServed(t *testing.T) {
	h, clk := newHub(t, Config{TerminalTTL: time.Second})
	src := newSource(val{N: 1, Done: true})
	sub := watch(t, h, src)
	next(t, sub)
	clk.nextWait(t)
	clk.Advance(2 * time.Second)
	src.set(val{N: 2}, nil)
	if got := next(t, watch(t, h, src)); got.Value.N != 2 {
		t.Fatalf("got %+v from an expired cache", got)
	}
}

func TestManyWatchersCostOnePoller(t *testing.T) {
	run := func(watchers int) int64 {
		h, clk := newHub(t, Config{})
		defer h.Close()
		src := newSource(val{N: 1})
		var joined, done sync.WaitGroup
		errs := make(chan error, watchers)
		for range watchers {
			joined.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				sub, err := h.Watch(context.Background(), testKey, src.source())
				if err != nil {
					joined.Done()
					errs <- err
					return
				}
				defer sub.Close()
				joined.Done()
				var last Snapshot[val]
				for {
					snap, err := nextErr(sub)
					if err == io.EOF {
						break
					}
					if err != nil {
						errs <- err
						return
					}
					last = snap
				}
				if !last.Terminal || last.Value.N != 5 {
					errs <- errors.New("did not end on the terminal snapshot")
				}
			}()
		}
		joined.Wait()
		for n := 2; n <= 5; n++ {
			d := clk.nextWait(t) // the previous poll is done: the next one reads n
			src.set(val{N: n, Done: n == 5}, nil)
			clk.Advance(d)
		}
		done.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return src.polls.Load()
	}
	one, many := run(1), run(1000)
	if one != 5 || many != one {
		t.Fatalf("polls: 1 watcher %d, 1000 watchers %d; want 5 and 5", one, many)
	}
}

// 10,000 watchers over 10 keys, served by 50 goroutines: a watcher needs no goroutine of its own. (Under -race
// a goroutine per watcher would exceed the race detector's limit of 8128 live goroutines.)
func TestTenThousandWatchers(t *testing.T) {
	const watchers, keys, workers = 10000, 10, 50
	h, clk := newHub(t, Config{MaxInterval: 500 * time.Millisecond}) // every poller waits 500ms: one step serves all
	srcs := make([]*testSource, keys)
	for k := range srcs {
		srcs[k] = newSource(val{N: 1})
	}
	subs := make([]Subscription[val], watchers)
	for i := range subs {
		s, err := h.Watch(context.Background(), Key{"id", "task", string(rune('a' + i%keys))}, srcs[i%keys].source())
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	drain := func(want int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var bad []Snapshot[val]
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < watchers; i += workers {
					if snap, err := nextErr(subs[i]); err != nil || snap.Value.N != want {
						mu.Lock()
						bad = append(bad, snap)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if len(bad) > 0 {
			t.Fatalf("%d watchers did not get %d, e.g. %+v", len(bad), want, bad[0])
		}
	}
	drain(1)
	if st := h.Stats(); st.Watchers != watchers || st.Pollers != keys {
		t.Fatalf("stats = %+v", st)
	}
	for n := 2; n <= 3; n++ {
		for _, s := range srcs {
			s.set(val{N: n}, nil)
		}
		for range keys {
			clk.nextWait(t)
		}
		clk.Advance(500 * time.Millisecond)
		drain(n)
	}
	for _, s := range subs {
		s.Close()
	}
	if st := h.Stats(); st.Watchers != 0 || st.Pollers != 0 || st.Delivered != 3*watchers {
		t.Fatalf("stats after leaving = %+v", st)
	}
	h.Close()
	for k, s := range srcs {
		if n := s.polls.Load(); n != 3 {
			t.Fatalf("key %d polled %d times, want 3", k, n)
		}
	}
}

func TestSlowWatcherGetsNewestAndDoesNotHoldOthers(t *testing.T) {
	h, clk := newHub(t, Config{})
	src := newSource(val{N: 1})
	fast, slow := watch(t, h, src), watch(t, h, src)
	next(t, fast)
	next(t, slow)
	for n := 2; n <= 6; n++ {
		src.set(val{N: n}, nil)
		clk.step(t)
		if got := next(t, fast); got.Value.N != n {
			t.Fatalf("fast watcher got %+v, want %d", got, n)
		}
	}
	got := next(t, slow)
	if got.Value.N != 6 || got.Seq != 6 {
		t.Fatalf("slow watcher got %+v, want the newest (6)", got)
	}
	if pending(slow) {
		t.Fatal("slow watcher has a backlog")
	}
	if st := h.Stats(); st.Conflated != 4 {
		t.Fatalf("conflated = %d, want 4", st.Conflated)
	}
}

func TestCancelEndsOnlyThatWatch(t *testing.T) {
	h, clk := newHub(t, Config{})
	src := newSource(val{N: 1})
	ctx, cancel := context.WithCancel(context.Background())
	mine, err := h.Watch(ctx, testKey, src.source())
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	other := watch(t, h, src)
	next(t, mine)
	next(t, other)

	res := make(chan error)
	go func() {
		_, err := mine.Next(ctx)
		res <- err
	}()
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel = %v", err)
	}
	// The Watch ctx bounds the subscription: it leaves by itself, and Next keeps saying why.
	eventually(t, "cancelled watcher left", func() bool { return h.Stats().Watchers == 1 })
	if _, err := mine.Next(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("later Next = %v", err)
	}

	src.set(val{N: 2}, nil)
	clk.step(t)
	if got := next(t, other); got.Value.N != 2 {
		t.Fatalf("other watcher got %+v", got)
	}
	if _, err := h.Watch(ctx, testKey, src.source()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch with a done ctx = %v", err)
	}
}

// A subscription made with a ctx that never ends (the services' way: they Close themselves) is ended by Next's
// own ctx and left by Close, as one bound by its Watch ctx is.
func TestOwnedSubscriptionEndsByNextCtxAndClose(t *testing.T) {
	h, _ := newHub(t, Config{})
	src := newSource(val{N: 1})
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := h.Watch(context.WithoutCancel(ctx), testKey, src.source())
	if err != nil {
		t.Fatal(err)
	}
	next(t, sub)
	res := make(chan error)
	go func() {
		_, err := sub.Next(ctx)
		res <- err
	}()
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel = %v", err)
	}
	if w := h.Stats().Watchers; w != 1 {
		t.Fatalf("%d watchers before Close, want 1: only Close leaves", w)
	}
	sub.Close()
	sub.Close() // idempotent
	if w := h.Stats().Watchers; w != 0 {
		t.Fatalf("%d watchers after Close", w)
	}
	if _, err := sub.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
}

func TestNextDeadline(t *testing.T) {
	h, _ := newHub(t, Config{})
	src := newSource(val{N: 1})
	sub := watch(t, h, src)
	next(t, sub)
	// A real deadline on Next (nothing changes on the fake clock, so Next can only end by it).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, err := sub.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next = %v, want DeadlineExceeded", err)
	}
	// A Next deadline ends that call, not the subscription.
	if st := h.Stats(); st.Watchers != 1 || st.Pollers != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestLastWatcherLeavingStopsPoller(t *testing.T) {
	h, clk := newHub(t, Config{})
	src := newSource(val{N: 1})
	a, b := watch(t, h, src), watch(t, h, src)
	next(t, a)
	clk.nextWait(t)
	a.Close()
	if st := h.Stats(); st.Pollers != 1 {
		t.Fatalf("poller stopped with a watcher left: %+v", st)
	}
	b.Close()
	b.Close() // idempotent
	if st := h.Stats(); st.Pollers != 0 || st.Watchers != 0 {
		t.Fatalf("stats after the last left = %+v", st)
	}
	clk.Advance(time.Hour)
	h.Close() // waits for the poller goroutine to end, so no late poll can slip past the check
	if n := src.polls.Load(); n != 1 {
		t.Fatalf("polls = %d after the last watcher left, want 1", n)
	}
	if _, err := b.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
}

func TestRejoinAfterLeavingPollsAgainAtOnce(t *testing.T) {
	h, clk := newHub(t, Config{})
	src := newSource(val{N: 1})
	a := watch(t, h, src)
	next(t, a)
	clk.nextWait(t)
	a.Close()
	src.set(val{N: 2}, nil)
	if got := next(t, watch(t, h, src)); got.Value.N != 2 || got.Seq != 1 {
		t.Fatalf("rejoin got %+v", got)
	}
}

func TestHubCloseEndsEveryNext(t *testing.T) {
	h, _ := newHub(t, Config{})
	src := newSource(val{N: 1})
	const n = 100
	res := make(chan error, n)
	for range n {
		sub := watch(t, h, src)
		next(t, sub)
		go func() {
			_, err := sub.Next(context.Background())
			res <- err
		}()
	}
	// One watcher with a snapshot waiting (it joined and never called Next): Close still wins.
	lagging := watch(t, h, src)
	if !pending(lagging) {
		t.Fatal("late joiner has nothing pending")
	}

	h.Close()
	for range n {
		if err := <-res; !errors.Is(err, ErrClosed) {
			t.Fatalf("Next = %v, want ErrClosed", err)
		}
	}
	if _, err := lagging.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next with a pending snapshot after Close = %v", err)
	}
	if _, err := h.Watch(context.Background(), testKey, src.source()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Close = %v", err)
	}
	if st := h.Stats(); st.Pollers != 0 || st.Cached != 0 {
		t.Fatalf("stats after Close = %+v", st)
	}
}

func TestWatchRejectsSourceWithoutPoll(t *testing.T) {
	h, _ := newHub(t, Config{})
	if _, err := h.Watch(context.Background(), testKey, Source[val]{}); err == nil {
		t.Fatal("Watch accepted a Source without Poll")
	}
}
