package stream

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks run on the real clock. Run them with
//
//	go test -run '^$' -bench . -benchmem ./internal/stream/
//
// They report figures, they assert nothing: machines are shared and noisy.

var benchShapes = []struct{ watchers, keys int }{
	{1, 1}, {100, 1}, {1000, 1}, {10000, 1},
	{100, 100}, {1000, 100}, {10000, 100},
}

// bval carries when the upstream produced it, so a watcher can tell how late it heard of the change.
type bval struct {
	N  int64
	At int64 // UnixNano when Poll returned this value
}

// gatedSource changes on every poll, but each poll (after the first) waits for the benchmark to release it:
// one release is one upstream change, and the benchmark can time its fan-out.
type gatedSource struct {
	n   int64 // touched only by the poller goroutine
	rel chan struct{}
}

func (g *gatedSource) source() Source[bval] {
	return Source[bval]{
		Poll: func(ctx context.Context) (bval, error) {
			if g.n > 0 {
				select {
				case <-g.rel:
				case <-ctx.Done():
					return bval{}, ctx.Err()
				}
			}
			g.n++
			return bval{N: g.n, At: time.Now().UnixNano()}, nil
		},
		Equal: func(a, b bval) bool { return a.N == b.N },
	}
}

// setup makes a hub and its subscriptions. report, called after the timed loop (ResetTimer drops metrics
// reported before it), reports what they cost: heap bytes and goroutines per watcher, measured after a GC
// around the Watch calls, pollers of the keys included.
func setup[T any](b *testing.B, watchers, keys int, cfg Config, src func(k int) Source[T]) (h *Local[T], subs []Subscription[T], report func()) {
	subs = make([]Subscription[T], watchers)
	sources := make([]Source[T], keys)
	for k := range sources {
		sources[k] = src(k)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	h = NewLocal[T](cfg)
	for i := range subs {
		s, err := h.Watch(b.Context(), Key{"bench", "task", fmt.Sprint(i % keys)}, sources[i%keys])
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = s
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(watchers)
	goroutines := float64(runtime.NumGoroutine()-g0) / float64(watchers)
	return h, subs, func() {
		b.ReportMetric(heap, "heapB/watcher")
		b.ReportMetric(goroutines, "goroutines/watcher")
	}
}

// BenchmarkFanout: one op is one upstream change on every key, timed until the last watcher has received it.
// Each watcher is a goroutine calling Next, as a gRPC stream handler would be.
func BenchmarkFanout(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(fmt.Sprintf("watchers=%d/keys=%d", sh.watchers, sh.keys), func(b *testing.B) {
			benchFanout(b, sh.watchers, sh.keys)
		})
	}
}

func benchFanout(b *testing.B, watchers, keys int) {
	srcs := make([]*gatedSource, keys)
	for k := range srcs {
		srcs[k] = &gatedSource{rel: make(chan struct{})}
	}
	// A 1µs wait between polls: the pace is set by the releases, not the policy.
	cfg := Config{FirstInterval: time.Microsecond, MaxInterval: time.Microsecond, Jitter: -1}
	h, subs, report := setup(b, watchers, keys, cfg, func(k int) Source[bval] { return srcs[k].source() })

	var (
		got      atomic.Int64 // watchers that received the current round
		maxDelay atomic.Int64 // ns from a change to a watcher receiving it, worst of the round
		done     = make(chan struct{}, 1)
		wg       sync.WaitGroup
	)
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				snap, err := s.Next(context.Background())
				if err != nil {
					return
				}
				d := time.Now().UnixNano() - snap.Value.At
				for cur := maxDelay.Load(); d > cur; cur = maxDelay.Load() {
					if maxDelay.CompareAndSwap(cur, d) {
						break
					}
				}
				if got.Add(1) == int64(watchers) {
					done <- struct{}{}
				}
			}
		}()
	}
	<-done // everyone has the first snapshot

	delays := make([]time.Duration, 0, b.N)
	polls0 := h.Stats().Polls
	b.ResetTimer()
	for range b.N {
		got.Store(0)
		maxDelay.Store(0)
		for _, s := range srcs {
			s.rel <- struct{}{}
		}
		<-done
		delays = append(delays, time.Duration(maxDelay.Load()))
	}
	b.StopTimer()
	st := h.Stats()
	h.Close()
	wg.Wait()

	slices.Sort(delays)
	pct := func(p float64) float64 { return float64(delays[int(p*float64(len(delays)-1))].Microseconds()) }
	report()
	b.ReportMetric(float64(st.Polls-polls0)/float64(b.N*keys), "polls/change")
	b.ReportMetric(pct(0.5), "p50-last-us")
	b.ReportMetric(pct(0.99), "p99-last-us")
	b.ReportMetric(pct(1), "max-last-us")
}

// BenchmarkFreeRunning: pollers run on their own policy (1ms, value changes on every poll) while watchers
// read as fast as they can. One op is one poll of key 0. It shows the poll rate does not depend on how many
// watchers there are (nobody waits for them) and how much a crowd of watchers conflates.
func BenchmarkFreeRunning(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(fmt.Sprintf("watchers=%d/keys=%d", sh.watchers, sh.keys), func(b *testing.B) {
			benchFreeRunning(b, sh.watchers, sh.keys)
		})
	}
}

func benchFreeRunning(b *testing.B, watchers, keys int) {
	tick := make(chan struct{}, 1)
	src := func(k int) Source[int64] {
		var n int64
		return Source[int64]{Poll: func(context.Context) (int64, error) {
			n++
			if k == 0 {
				select {
				case tick <- struct{}{}:
				default:
				}
			}
			return n, nil
		}, Equal: func(a, b int64) bool { return a == b }}
	}
	cfg := Config{FirstInterval: time.Millisecond, MaxInterval: time.Millisecond, Jitter: -1}
	h, subs, report := setup(b, watchers, keys, cfg, src)
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := s.Next(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	<-tick
	st0 := h.Stats()
	start := time.Now()
	b.ResetTimer()
	for range b.N {
		<-tick
	}
	b.StopTimer()
	elapsed := time.Since(start)
	st := h.Stats()
	h.Close()
	wg.Wait()

	report()
	delivered, conflated := st.Delivered-st0.Delivered, st.Conflated-st0.Conflated
	b.ReportMetric(float64(st.Polls-st0.Polls)/elapsed.Seconds(), "polls/s")
	b.ReportMetric(float64(delivered)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(100*float64(conflated)/float64(max(delivered+conflated, 1)), "conflated-%")
}
