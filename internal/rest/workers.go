package rest

import (
	"context"
	"net/http"
	"sync"
)

// Workers runs the handlers of HTTP/2 requests on a fixed set of long-lived goroutines, as grpc.NumStreamWorkers
// does for gRPC calls. Why: Go's HTTP/2 server starts a fresh goroutine for every request, whose 2 KiB stack then
// grows (copied, frame by frame) to 16 KiB through the mirror's handlers and the interceptor chain on every call;
// runtime.newstack was ~15% of the REST port's CPU over HTTP/2 (TLS with h2, as browsers and curl speak it). A
// worker's stack has grown already. HTTP/1.1 needs none of this: a connection's one goroutine serves its requests
// one after another and keeps its stack.
//
// A request finds a worker or runs where it arrived, as before: when every worker is busy (long streams hold
// theirs) or the pool has stopped, nothing waits.
type Workers struct {
	jobs chan *job
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	next http.Handler
}

type job struct {
	w     http.ResponseWriter
	r     *http.Request
	done  chan struct{}
	panic any // what the handler panicked with, raised again on the request's own goroutine
}

var jobs = sync.Pool{New: func() any { return &job{done: make(chan struct{}, 1)} }}

// NewWorkers starts n workers serving next's HTTP/2 requests; Stop ends them.
func NewWorkers(n int, next http.Handler) *Workers {
	ws := &Workers{jobs: make(chan *job), stop: make(chan struct{}), next: next}
	ws.wg.Add(n)
	for range n {
		go ws.work()
	}
	return ws
}

// ServeHTTP hands an HTTP/2 request to an idle worker and waits for it; anything else, or a request that finds
// no idle worker, is served on its own goroutine.
func (ws *Workers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		ws.next.ServeHTTP(w, r)
		return
	}
	j := jobs.Get().(*job)
	j.w, j.r = w, r
	select {
	case ws.jobs <- j:
	default: // every worker busy, or stopped
		j.w, j.r = nil, nil
		jobs.Put(j)
		ws.next.ServeHTTP(w, r)
		return
	}
	<-j.done
	p := j.panic
	j.w, j.r, j.panic = nil, nil, nil
	jobs.Put(j)
	if p != nil {
		// net/http recovers a handler's panic (and http.ErrAbortHandler aborts the stream) only on the request's
		// goroutine: a panic left on the worker would end the process.
		panic(p)
	}
}

func (ws *Workers) work() {
	defer ws.wg.Done()
	for {
		select {
		case j := <-ws.jobs:
			ws.serve(j)
		case <-ws.stop:
			return
		}
	}
}

func (ws *Workers) serve(j *job) {
	defer func() {
		j.panic = recover()
		j.done <- struct{}{}
	}()
	ws.next.ServeHTTP(j.w, j.r)
}

// Stop ends the workers once the requests they serve have ended, or returns ctx's error when it ends first (the
// workers still serving then end with their requests); later requests run on their own goroutines.
func (ws *Workers) Stop(ctx context.Context) error {
	ws.once.Do(func() { close(ws.stop) })
	done := make(chan struct{})
	go func() { ws.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
