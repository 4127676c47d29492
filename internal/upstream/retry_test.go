package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// dropConnection closes the connection after the request was read: the upstream got it, we get no answer.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	_ = conn.Close()
}

func fakeClockClient(t *testing.T, endpoint string, mods ...func(*Config)) (*Client, *clock.Fake) {
	fc := clock.NewFake(epoch)
	c := newClient(t, endpoint, append([]func(*Config){func(cfg *Config) { cfg.Clock = fc }}, mods...)...)
	return c, fc
}

func TestReadsRetried(t *testing.T) {
	cases := []struct {
		name string
		fail func(w http.ResponseWriter)
	}{
		{"503", func(w http.ResponseWriter) { reply(w, 503, `<html>busy</html>`) }},
		{"502", func(w http.ResponseWriter) { reply(w, 502, ``) }},
		{"504 with envelope", func(w http.ResponseWriter) { reply(w, 504, `{"error_code":"APIG.0201","error_msg":"timeout"}`) }},
		{"429", func(w http.ResponseWriter) { reply(w, 429, `{"error_code":"APIG.0308","error_msg":"throttled"}`) }},
		{"KOOPHONE.API.9001", func(w http.ResponseWriter) { reply(w, 200, `{"error_code":"KOOPHONE.API.9001","error_msg":"Redis"}`) }},
		{"KOOPHONE.API.9003", func(w http.ResponseWriter) { reply(w, 500, `{"error_code":"KOOPHONE.API.9003","error_msg":"3rd"}`) }},
		{"KOOPHONE.API.4999", func(w http.ResponseWriter) { reply(w, 400, `{"error_code":"KOOPHONE.API.4999","error_msg":"3rd"}`) }},
		{"reset connection", dropConnection},
		{"body cut short", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, `{"error_code":"0"`)
			w.(http.Flusher).Flush()
			dropConnection(w)
		}},
	}
	reads := []struct {
		name string
		call func(c *Client) error
	}{
		{"GetTask", func(c *Client) error { _, err := c.GetTask(context.Background(), "t"); return err }},
		{"ListInstances", func(c *Client) error {
			_, err := c.ListInstances(context.Background(), ListInstancesRequest{PageNo: 1, PageSize: 10})
			return err
		}},
		{"BatchQueryStatus", func(c *Client) error {
			_, err := c.BatchQueryStatus(context.Background(), InstanceIDsRequest{InstanceIDs: []string{"a"}})
			return err
		}},
		{"ShowProgress", func(c *Client) error {
			_, err := c.ShowProgress(context.Background(), ProgressRequest{UserID: "u", InstanceID: "a"})
			return err
		}},
		{"BatchShowSku", func(c *Client) error { _, err := c.BatchShowSku(context.Background(), "0"); return err }},
	}
	for _, tc := range cases {
		for _, rd := range reads {
			t.Run(tc.name+"/"+rd.name, func(t *testing.T) {
				u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
					if n < 3 {
						tc.fail(w)
						return
					}
					reply(w, 200, okBody)
				})
				c, fc := fakeClockClient(t, u.URL)
				var err error
				drive(fc, 2*time.Second, func() { err = rd.call(c) })
				if err != nil {
					t.Fatal(err)
				}
				if u.count() != 3 {
					t.Fatalf("upstream saw %d requests, want 3", u.count())
				}
			})
		}
	}
}

func TestReadGivesUpAfterMaxAttempts(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 503, "") })
	c, fc := fakeClockClient(t, u.URL)
	var err error
	drive(fc, 2*time.Second, func() { _, err = c.GetTask(context.Background(), "t") })
	e := asError(t, err)
	if e.Kind != KindHTTP || e.HTTPStatus != 503 || e.Attempts != 3 || u.count() != 3 {
		t.Fatalf("got %#v after %d requests", e, u.count())
	}
	// One request id for the whole call, on every attempt and in the error.
	if _, perr := uuid.Parse(e.RequestID); perr != nil {
		t.Fatalf("request id %q", e.RequestID)
	}
	for _, r := range u.requests() {
		if r.Header.Get("x-request-id") != e.RequestID {
			t.Fatalf("attempt sent id %q, error says %q", r.Header.Get("x-request-id"), e.RequestID)
		}
	}
}

func TestReadNotRetriedOnBusinessError(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
		_, _ = w.Write(fixture(t, "error-200-business.json"))
	})
	c, _ := fakeClockClient(t, u.URL)
	_, err := c.GetTask(context.Background(), "t")
	if e := asError(t, err); e.Attempts != 1 || u.count() != 1 {
		t.Fatalf("got %#v after %d requests", e, u.count())
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	var fc *clock.Fake
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		at = append(at, fc.Now())
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "3")
			reply(w, 429, `{"error_code":"APIG.0308","error_msg":"throttled"}`)
			return
		}
		reply(w, 200, okBody)
	})
	var c *Client
	c, fc = fakeClockClient(t, u.URL)
	done := make(chan error, 1)
	go func() {
		_, err := c.ShowProgress(context.Background(), ProgressRequest{UserID: "u", InstanceID: "a"})
		done <- err
	}()
	fc.WaitForTimers(1, nil)
	fc.Advance(2999 * time.Millisecond)
	if fc.Pending() != 1 || u.count() != 1 {
		t.Fatalf("retried before Retry-After: pending timers %d, requests %d", fc.Pending(), u.count())
	}
	fc.Advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 || at[1].Sub(at[0]) < 3*time.Second {
		t.Fatalf("requests at %v", at)
	}
}

// Retry-After beyond the caller's deadline: answer at once, with RetryAfter, instead of waiting in vain.
func TestRetryAfterBeyondDeadline(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "10")
		reply(w, 503, ``)
	})
	c, fc := fakeClockClient(t, u.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.GetTask(ctx, "t")
	e := asError(t, err)
	if e.Kind != KindHTTP || e.RetryAfter != 10*time.Second || e.Attempts != 1 || u.count() != 1 || fc.Pending() != 0 {
		t.Fatalf("got %#v after %d requests", e, u.count())
	}
	if time.Since(start) > time.Second {
		t.Fatal("waited although the deadline could not be met")
	}
}

func TestWritesNotRetried(t *testing.T) {
	cases := []struct {
		name string
		fail func(w http.ResponseWriter)
		kind Kind
	}{
		{"503", func(w http.ResponseWriter) { reply(w, 503, ``) }, KindHTTP},
		{"429", func(w http.ResponseWriter) { reply(w, 429, ``) }, KindHTTP},
		{"9003", func(w http.ResponseWriter) { reply(w, 500, `{"error_code":"KOOPHONE.API.9003"}`) }, KindAPI},
		{"connection dropped after the request was sent", dropConnection, KindTransport},
	}
	writes := map[string]func(c *Client) error{
		"CreateInstance": func(c *Client) error {
			_, err := c.CreateInstance(context.Background(), CreateInstanceRequest{Count: 1})
			return err
		},
		"SyncCommand": func(c *Client) error {
			_, err := c.SyncCommand(context.Background(), CommandRequest{Command: "ls"})
			return err
		},
		"BatchPrepareInstances": func(c *Client) error {
			_, err := c.BatchPrepareInstances(context.Background(), PrepareRequest{UserID: "u"})
			return err
		},
		"GetDeviceToken": func(c *Client) error { _, err := c.GetDeviceToken(context.Background(), "a"); return err },
	}
	for _, tc := range cases {
		for name, call := range writes {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { tc.fail(w) })
				c, fc := fakeClockClient(t, u.URL)
				var err error
				drive(fc, 2*time.Second, func() { err = call(c) })
				e := asError(t, err)
				if e.Kind != tc.kind || e.Attempts != 1 || u.count() != 1 {
					t.Fatalf("got %#v; upstream saw %d requests, want 1", e, u.count())
				}
			})
		}
	}
}

// A write whose connection could not even be opened never reached KooPhone: it is safe to send it again.
func TestWriteRetriedWhenDialFails(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { _, _ = w.Write(fixture(t, "create.json")) })
	var dials atomic.Int32
	tr := NewTransport()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	hc := &http.Client{Transport: tr}
	c, fc := fakeClockClient(t, u.URL, func(cfg *Config) { cfg.HTTPClient = hc })
	var order *Order
	var err error
	drive(fc, 2*time.Second, func() { order, err = c.CreateInstance(context.Background(), CreateInstanceRequest{Count: 1}) })
	if err != nil {
		t.Fatal(err)
	}
	if order.OrderID == "" || dials.Load() != 2 || u.count() != 1 {
		t.Fatalf("order %+v, dials %d, requests %d", order, dials.Load(), u.count())
	}
}

// Against a port nobody listens on, a write is tried as often as the policy allows: none of it reached anyone.
func TestWriteRetriedOnConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c, fc := fakeClockClient(t, "http://"+addr)
	drive(fc, 2*time.Second, func() { _, err = c.CreateInstance(context.Background(), CreateInstanceRequest{Count: 1}) })
	e := asError(t, err)
	if e.Kind != KindTransport || e.Attempts != 3 || !isDialError(err) {
		t.Fatalf("got %#v", e)
	}
}

func TestDeadlineRespected(t *testing.T) {
	t.Run("hanging upstream", func(t *testing.T) {
		u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { <-r.Context().Done() })
		c, _ := fakeClockClient(t, u.URL)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.GetTask(ctx, "t")
		e := asError(t, err)
		if e.Kind != KindTransport || !errors.Is(err, context.DeadlineExceeded) || e.Attempts != 1 {
			t.Fatalf("got %#v", e)
		}
	})
	t.Run("cancelled during backoff", func(t *testing.T) {
		u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 503, ``) })
		c, fc := fakeClockClient(t, u.URL)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := c.GetTask(ctx, "t"); done <- err }()
		fc.WaitForTimers(1, nil)
		cancel()
		err := <-done
		e := asError(t, err)
		if e.Kind != KindTransport || !errors.Is(err, context.Canceled) || u.count() != 1 {
			t.Fatalf("got %#v after %d requests", e, u.count())
		}
	})
	t.Run("backoff longer than the time left", func(t *testing.T) {
		u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 503, ``) })
		c, fc := fakeClockClient(t, u.URL, func(cfg *Config) {
			cfg.Retry = RetryPolicy{MaxAttempts: 5, BaseDelay: time.Hour, MaxDelay: time.Hour}
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var err error
		drive(fc, time.Hour, func() { _, err = c.GetTask(ctx, "t") })
		// The jittered wait may be short enough for one or two more tries, never an hour of real time.
		if e := asError(t, err); e.Kind != KindHTTP || e.HTTPStatus != 503 {
			t.Fatalf("got %#v", e)
		}
	})
}

func TestBackoffBounds(t *testing.T) {
	p := RetryPolicy{}.withDefaults()
	if p.MaxAttempts != 3 || p.BaseDelay != 100*time.Millisecond || p.MaxDelay != 2*time.Second {
		t.Fatalf("defaults %+v", p)
	}
	for n := 1; n <= 10; n++ {
		ceiling := min(p.BaseDelay<<(n-1), p.MaxDelay)
		for range 200 {
			if d := p.backoff(n); d < 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %v, ceiling %v", n, d, ceiling)
			}
		}
	}
}

// A failure before any connection was obtained (here: the proxy lookup) also means nothing was sent.
func TestWriteRetriedWhenNoConnectionWasObtained(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, okBody) })
	var lookups atomic.Int32
	tr := NewTransport()
	tr.Proxy = func(*http.Request) (*url.URL, error) {
		if lookups.Add(1) == 1 {
			return nil, errors.New("proxy configuration unavailable")
		}
		return nil, nil
	}
	c, fc := fakeClockClient(t, u.URL, func(cfg *Config) { cfg.HTTPClient = &http.Client{Transport: tr} })
	var err error
	drive(fc, 2*time.Second, func() {
		err = c.DeleteInstance(context.Background(), DeleteInstanceRequest{InstanceIDList: []string{"a"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if lookups.Load() != 2 || u.count() != 1 {
		t.Fatalf("proxy lookups %d, requests %d", lookups.Load(), u.count())
	}
}
