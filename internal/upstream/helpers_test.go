package upstream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testToken = "static-token-SECRET-1f0e"

var epoch = clocktest.Start(time.Date(2025, 11, 20, 8, 0, 0, 0, time.UTC))

// seen is one request as the fake upstream received it.
type seen struct {
	Method   string
	Path     string // decoded
	RawPath  string // as sent (escaped)
	RawQuery string
	Host     string
	Header   http.Header
	Body     []byte
}

// fakeUpstream is an httptest server that records every request and answers through handle (n counts from 1).
type fakeUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []seen
	handle func(w http.ResponseWriter, r *http.Request, n int)
}

func newUpstream(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{handle: handle}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			Host: r.Host, Header: r.Header.Clone(), Body: body,
		})
		n := len(u.reqs)
		u.mu.Unlock()
		u.handle(w, r, n)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *fakeUpstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func (u *fakeUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// newClient returns a client of u with a static token, on a fake clock unless mods say otherwise.
func newClient(t *testing.T, endpoint string, mods ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{Endpoint: endpoint, Auth: NewStaticToken(testToken), Clock: clock.NewFake(epoch)}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

const okBody = `{"error_code":"0","error_msg":"ok"}`

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "responses", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// drive runs fn and, whenever fn waits on fc (a retry backoff), advances fc by step, until fn returns.
func drive(fc *clock.Fake, step time.Duration, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	for fc.WaitForTimers(1, done) {
		fc.Advance(step)
	}
	<-done
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
	e, ok := AsError(err)
	if !ok {
		t.Fatalf("want *Error, got %T: %v", err, err)
	}
	return e
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
