package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// callFunc makes one call; a non-nil error counts as a failed call.
type callFunc func(ctx context.Context) error

// sample is what one load segment measured.
type sample struct {
	calls, errs int64
	firstErr    error
	lat         []time.Duration // successful calls only
	elapsed     time.Duration
}

func (s *sample) add(o sample) {
	s.calls += o.calls
	s.errs += o.errs
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
	s.lat = append(s.lat, o.lat...)
	s.elapsed += o.elapsed
}

func (s *sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.calls-s.errs) / s.elapsed.Seconds()
}

// quantile of the successful calls' latencies (sorts in place).
func (s *sample) quantile(q float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	slices.Sort(s.lat)
	return s.lat[min(len(s.lat)-1, int(q*float64(len(s.lat))))]
}

// recorder collects latencies from many goroutines.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	calls    atomic.Int64
	errs     atomic.Int64
	firstErr atomic.Value
}

func (r *recorder) record(start time.Time, err error) {
	d := time.Since(start)
	r.calls.Add(1)
	if err != nil {
		r.errs.Add(1)
		r.firstErr.CompareAndSwap(nil, err)
		return
	}
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.mu.Unlock()
}

func (r *recorder) sample(elapsed time.Duration) sample {
	s := sample{calls: r.calls.Load(), errs: r.errs.Load(), lat: r.lat, elapsed: elapsed}
	if e, ok := r.firstErr.Load().(error); ok {
		s.firstErr = e
	}
	return s
}

// closedLoop runs conc callers back to back for d (saturation), or until maxCalls calls when maxCalls > 0.
func closedLoop(ctx context.Context, conc int, d time.Duration, maxCalls int64, call callFunc) sample {
	var r recorder
	var issued atomic.Int64
	// Ended by cancellation, not a deadline: a deadline would travel with each call (grpc-timeout) and the server
	// would fail the last calls of the segment with DEADLINE_EXCEEDED before the client noticed the end.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	time.AfterFunc(d, cancel)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for ctx.Err() == nil && (maxCalls <= 0 || issued.Add(1) <= maxCalls) {
				t := time.Now()
				err := call(ctx)
				if ctx.Err() != nil && err != nil {
					return // cut by the end of the segment: not a failure of the path
				}
				r.record(t, err)
			}
		})
	}
	wg.Wait()
	return r.sample(time.Since(start))
}

// openLoop starts rate calls per second for d whatever the answers do, so a slow path cannot slow the load down
// (no coordinated omission): latency counts from the call's scheduled time. At most maxInFlight calls run at once;
// a call that finds no room counts as failed.
func openLoop(ctx context.Context, rate int, d time.Duration, maxInFlight int, call callFunc) sample {
	var r recorder
	interval := time.Second / time.Duration(rate)
	n := int(d / interval)
	slots := make(chan struct{}, maxInFlight)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			r.record(at, errOverload)
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			r.record(at, call(cctx))
		})
	}
	wg.Wait()
	return r.sample(time.Since(start))
}

type overloadError struct{}

func (overloadError) Error() string { return "too many calls in flight" }

var errOverload error = overloadError{}
