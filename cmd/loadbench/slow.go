package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

// burstResult is one burst of concurrent calls against a slow upstream.
type burstResult struct {
	path                      string
	calls, ok                 int
	elapsed                   time.Duration
	connsOpened               int64 // connections accepted by the simulator during the burst
	openBefore, peakOpen      int64 // connections open at the simulator before, and the most at once during it (all clients)
	bound                     int   // the gateway's bound on upstream calls in flight; 0: none (the bare proxy) or unknown
	idleRSS, peakRSS          int64 // VmRSS before, VmHWM after
	idleGoroutines, peakGorou int   // gateway only (through pprof)
	firstErr                  error
}

// burst fires n BatchQueryStatus calls at once at addr over a few connections and waits for them all, sampling
// the serving process' goroutines while they are in flight.
func burst(ctx context.Context, o *options, s *simulator, name, addr string, pid int, pprofAddr string, opts []grpc.CallOption) (burstResult, error) {
	r := burstResult{path: name, calls: o.slowCalls}
	pool, err := dialPool(addr, 16)
	if err != nil {
		return r, err
	}
	defer pool.close()
	r.idleRSS, _, _ = memStatus(pid)
	if pprofAddr != "" {
		if rt, err := readRuntime(pprofAddr); err == nil {
			r.idleGoroutines = rt.Goroutines
		}
	}
	c0, err := s.resetConnPeak()
	if err != nil {
		return r, err
	}
	r.openBefore = c0["open"]
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	if pprofAddr != "" {
		sampler.Go(func() {
			for {
				select {
				case <-stopSampling:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if rt, err := readRuntime(pprofAddr); err == nil {
					r.peakGorou = max(r.peakGorou, rt.Goroutines)
				}
			}
		})
	}
	var ok atomic.Int64
	var errOnce sync.Once
	req := &pb.BatchQueryStatusRequest{InstanceIds: s.ids[:10]}
	start := time.Now()
	var wg sync.WaitGroup
	for range o.slowCalls {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if _, err := pb.NewInstanceServiceClient(pool.pick()).BatchQueryStatus(cctx, req, opts...); err != nil {
				errOnce.Do(func() { r.firstErr = err })
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	close(stopSampling)
	sampler.Wait()
	r.ok = int(ok.Load())
	_, r.peakRSS, _ = memStatus(pid)
	c1, err := s.conns()
	r.connsOpened, r.peakOpen = c1["opened"]-c0["opened"], c1["peak"]
	return r, err
}
