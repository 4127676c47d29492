package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

// watchResult is N idle WatchTask streams over 100 tasks on one fresh gateway.
type watchResult struct {
	watchers, tasks            int
	jobDuration                time.Duration
	openTime                   time.Duration
	idleRSS, rss               int64
	idleHeap, heap             int64
	idleStack, stack           int64
	idleGoroutines, goroutines int
	pollsPerSec                float64
	cpuPerSecond               time.Duration // gateway CPU per second while the watchers idle
	delays                     []time.Duration
	terminal, failed           int64
	firstErr                   error
}

func (w *watchResult) perWatcher(total, idle int64) float64 {
	return float64(total-idle) / float64(w.watchers)
}

// streamsPerConn keeps each connection well under the gateway's default 10,000 concurrent streams.
const streamsPerConn = 5000

// watchers opens n idle watchers on g and measures them; with jobDuration 0, g is the bare watcher floor, which
// never polls: only the memory is measured.
func watchers(ctx context.Context, o *options, s *simulator, g *gateway, n int, jobDuration time.Duration, opts []grpc.CallOption) (*watchResult, error) {
	r := &watchResult{watchers: n, tasks: o.tasks, jobDuration: jobDuration}
	time.Sleep(time.Second) // let the fresh gateway settle before the idle reading
	rt, err := readRuntime(g.pprofAddr)
	if err != nil {
		return nil, err
	}
	r.idleHeap, r.idleStack, r.idleGoroutines = rt.HeapAlloc, rt.StackInuse, rt.Goroutines
	idleSpans := rt.HeapInuse
	r.idleRSS, _, _ = memStatus(g.pid())

	pool, err := dialPool(g.grpcAddr, (n+streamsPerConn-1)/streamsPerConn)
	if err != nil {
		return nil, err
	}
	defer pool.close()
	client := pb.NewInstanceServiceClient(pool.conns[0])
	taskIDs := make([]string, o.tasks)
	ends := make([]time.Time, o.tasks) // when each task's jobs finish, at the latest
	for i := range o.tasks {
		sent := time.Now()
		res, err := client.AsyncCommand(ctx, &pb.AsyncCommandRequest{Command: "ls", InstanceIds: []string{s.ids[i]}}, opts...)
		if err != nil {
			return nil, fmt.Errorf("AsyncCommand: %w", err)
		}
		taskIDs[i], ends[i] = res.GetTaskId(), sent.Add(jobDuration)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var established, terminal, failed atomic.Int64
	last := make([]atomic.Int64, o.tasks) // unix nanos of the latest terminal message per task
	var errOnce sync.Once
	opening := make(chan struct{}, 256) // streams being opened at once
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		task := i % o.tasks
		opening <- struct{}{}
		wg.Go(func() {
			fail := func(err error) {
				failed.Add(1)
				errOnce.Do(func() { r.firstErr = err })
			}
			stream, err := pb.NewInstanceServiceClient(pool.conns[i%len(pool.conns)]).WatchTask(ctx,
				&pb.WatchTaskRequest{TaskId: taskIDs[task]}, opts...)
			if err != nil {
				<-opening
				fail(err)
				return
			}
			first := true
			for {
				msg, err := stream.Recv()
				if first {
					<-opening
					established.Add(1)
					first = false
				}
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				if msg.GetTerminal() {
					now := time.Now().UnixNano()
					for {
						old := last[task].Load()
						if now <= old || last[task].CompareAndSwap(old, now) {
							break
						}
					}
					terminal.Add(1)
					return
				}
			}
		})
	}
	for established.Load()+failed.Load() < int64(n) {
		time.Sleep(50 * time.Millisecond)
	}
	r.openTime = time.Since(start)
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%d of %d watchers failed, first: %v", f, n, r.firstErr)
	}
	if terminal.Load() > 0 {
		return nil, fmt.Errorf("tasks ended before the %d watchers were idle: raise -job-duration", n)
	}
	logf("%d watchers open in %v", n, r.openTime.Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	if rt, err = readRuntime(g.pprofAddr); err != nil {
		return nil, err
	}
	r.heap, r.stack, r.goroutines = rt.HeapAlloc, rt.StackInuse, rt.Goroutines
	r.rss, _, _ = memStatus(g.pid())
	// In bytes, for comparing builds finer than the table's tenths of a KB; heap spans in use beyond the live heap
	// are holes left by garbage between live objects.
	logf("%s: per watcher RSS %.0f B, heap %.0f B (spans in use %.0f B), stack %.0f B", g.name, r.perWatcher(r.rss, r.idleRSS),
		r.perWatcher(r.heap, r.idleHeap), r.perWatcher(rt.HeapInuse, idleSpans), r.perWatcher(r.stack, r.idleStack))
	if o.heapProfile != "" {
		prefix := o.heapProfile
		if jobDuration == 0 {
			prefix += "floor-"
		}
		if err := save("http://"+g.pprofAddr+"/debug/pprof/heap", fmt.Sprintf("%s%d.pprof", prefix, n)); err != nil {
			return nil, err
		}
		if err := save("http://"+g.pprofAddr+"/debug/pprof/goroutine?debug=2", fmt.Sprintf("%s%d.goroutines.txt", prefix, n)); err != nil {
			return nil, err
		}
	}

	if jobDuration == 0 {
		cancel()
		wg.Wait()
		return r, nil
	}

	calls0, err := s.calls()
	if err != nil {
		return nil, err
	}
	cpu0, t0 := cpuOrZero(g.pid()), time.Now()
	time.Sleep(o.pollWindow)
	calls1, err := s.calls()
	if err != nil {
		return nil, err
	}
	window := time.Since(t0)
	r.pollsPerSec = float64(calls1["GetTask"]-calls0["GetTask"]) / window.Seconds()
	r.cpuPerSecond = time.Duration(float64(cpuOrZero(g.pid())-cpu0) / window.Seconds())
	if time.Now().After(ends[0]) {
		return nil, fmt.Errorf("tasks ended during the idle reading: raise -job-duration above %v", time.Since(start)+o.pollWindow)
	}

	// Wait for the tasks to end and every watcher to hear it (bounded: the gateway polls at most every
	// --watch-max-interval, 10s by default).
	deadline := ends[len(ends)-1].Add(2 * time.Minute)
	for terminal.Load()+failed.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	r.terminal, r.failed = terminal.Load(), failed.Load()
	for i := range o.tasks {
		if ns := last[i].Load(); ns > 0 {
			r.delays = append(r.delays, time.Unix(0, ns).Sub(ends[i]))
		}
	}
	slices.Sort(r.delays)
	cancel()
	wg.Wait()
	return r, nil
}
