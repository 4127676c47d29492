package rest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// onWorker reports whether the calling goroutine is one of NewWorkers' (its trace ends "created by …NewWorkers").
func onWorker() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "rest.NewWorkers")
}

// h2Server serves h over TLS with HTTP/2 (and HTTP/1.1 for clients that ask for it), closed at the test's end.
func h2Server(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func stopWorkers(t *testing.T, ws *Workers) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// HTTP/2 requests run on the workers; HTTP/1.1 requests on their connection's goroutine, as net/http runs them.
func TestWorkersServeHTTP2RequestsOnly(t *testing.T) {
	ws := NewWorkers(2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto+" worker="+map[bool]string{true: "yes", false: "no"}[onWorker()])
	}))
	srv := h2Server(t, ws)
	defer stopWorkers(t, ws)

	if body := get(t, srv.Client(), srv.URL); body != "HTTP/2.0 worker=yes" {
		t.Errorf("HTTP/2 request: %q, want it on a worker", body)
	}
	tlsConf := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsConf.NextProtos = []string{"http/1.1"}
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	if body := get(t, h1, srv.URL); body != "HTTP/1.1 worker=no" {
		t.Errorf("HTTP/1.1 request: %q, want it on the connection's goroutine", body)
	}
	h1.CloseIdleConnections()
}

// With every worker busy (a stream holds the only one), a request runs on its own goroutine instead of waiting;
// after Stop, requests still run, each on its own goroutine.
func TestWorkersNeverMakeARequestWait(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{})
	ws := NewWorkers(1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			close(held)
			<-release
		}
		_, _ = io.WriteString(w, map[bool]string{true: "worker", false: "own"}[onWorker()])
	}))
	srv := h2Server(t, ws)

	holdDone := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/hold", nil)
		res, err := srv.Client().Do(req)
		if err != nil {
			holdDone <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		holdDone <- string(b)
	}()
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the held request never reached the handler")
	}
	if body := get(t, srv.Client(), srv.URL+"/other"); body != "own" {
		t.Errorf("request while the only worker is busy: %q, want it served on its own goroutine", body)
	}
	close(release)
	select {
	case got := <-holdDone:
		if got != "worker" {
			t.Errorf("held request: %q, want it on the worker", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held request never ended")
	}

	stopWorkers(t, ws)
	if body := get(t, srv.Client(), srv.URL+"/after"); body != "own" {
		t.Errorf("request after Stop: %q, want it served on its own goroutine", body)
	}
}

// A handler's panic on a worker is raised again on the request's goroutine, where net/http recovers it (the
// stream is reset, the process lives, the worker serves the next request).
func TestWorkersPanicReachesNetHTTP(t *testing.T) {
	ws := NewWorkers(1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler) // net/http's way to abort a response without logging
		}
		_, _ = io.WriteString(w, map[bool]string{true: "worker", false: "own"}[onWorker()])
	}))
	srv := h2Server(t, ws)
	defer stopWorkers(t, ws)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/panic", nil)
	if res, err := srv.Client().Do(req); err == nil {
		b, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if err == nil {
			t.Errorf("a panicking handler's response read whole: %d %q", res.StatusCode, b)
		}
	}
	if body := get(t, srv.Client(), srv.URL+"/next"); body != "worker" {
		t.Errorf("request after a panic: %q, want it on the worker", body)
	}
}

// Stop waits for the requests the workers serve, or returns when its context ends first.
func TestWorkersStopWaitsForRequests(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{})
	ws := NewWorkers(1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(held)
		<-release
	}))
	srv := h2Server(t, ws)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if res, err := srv.Client().Do(req); err == nil {
			_ = res.Body.Close()
		}
	}()
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached the handler")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ws.Stop(ctx); err != context.DeadlineExceeded {
		t.Errorf("Stop with a request in progress and a short deadline: %v, want context.DeadlineExceeded", err)
	}
	close(release)
	stopWorkers(t, ws)
}
