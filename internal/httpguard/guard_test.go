package httpguard

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve starts a real HTTP server with the guard in front of h.
func serve(t *testing.T, cfg Config, h http.Handler) *httptest.Server {
	t.Helper()
	g, err := Wrap(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv
}

func TestContentTypes(t *testing.T) {
	var reached atomic.Int32
	srv := serve(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	for _, c := range []struct {
		ct, body string
		want     int
	}{
		{"application/json", "{}", 200},
		{"application/json; charset=utf-8", "{}", 200},
		{"Application/JSON", "{}", 200},
		{"", "", 200}, // no body at all: nothing to parse
		{"text/plain", "{}", 415},
		{"text/plain", "", 415},
		{"application/x-www-form-urlencoded", "a=b", 415},
		{"multipart/form-data; boundary=x", "--x--", 415},
		{"", "{}", 415},
		{"application/jsonp", "{}", 415},
		{"application/json;;", "{}", 415},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/x", strings.NewReader(c.body))
		if c.ct != "" {
			req.Header.Set("Content-Type", c.ct)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%q %q: %d %s, want %d", c.ct, c.body, res.StatusCode, b, c.want)
		}
		if c.want == 415 && !strings.Contains(string(b), `{"error":{"code":3`) {
			t.Errorf("%q: error body %s", c.ct, b)
		}
	}
	if n := reached.Load(); n != 4 {
		t.Errorf("%d requests reached the handler, want 4", n)
	}
}

func TestBadCORSOrigin(t *testing.T) {
	if _, err := Wrap(Config{CORSOrigins: []string{"not a url"}}, http.NotFoundHandler()); err == nil {
		t.Error("a malformed CORS origin was accepted")
	}
}

// The body deadline bounds reading the body only: a response that streams for longer than the deadline after the
// body was read goes on to its end.
func TestBodyDeadlineSparesStreams(t *testing.T) {
	const deadline = 100 * time.Millisecond
	srv := serve(t, Config{BodyTimeout: deadline}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for i := range 4 {
			fmt.Fprintf(w, "line %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(deadline) // the stream outlives the body deadline several times over
		}
	}))
	res, err := http.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || strings.Count(string(b), "line") != 4 {
		t.Fatalf("stream cut: %q %v", b, err)
	}
}

// A body that stalls is cut off: the handler's read fails and the connection closes.
func TestBodyDeadlineCutsStalledBody(t *testing.T) {
	readErr := make(chan error, 1)
	srv := serve(t, Config{BodyTimeout: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}))
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	if err := <-readErr; err == nil {
		t.Fatal("the stalled body was read to the end")
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // only keeps a broken server from hanging the test
	_, err = io.Copy(io.Discard, bufio.NewReader(c))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the connection stayed open")
	}
}

// Headers are untrusted: no Content-Type, Origin or Host value makes the guard panic or let a non-JSON body by.
func FuzzGuardHeaders(f *testing.F) {
	f.Add("text/plain", "http://evil.example", "x")
	f.Add("application/json; charset=utf-8", "", "gateway.internal")
	g, err := Wrap(Config{Hosts: []string{"gateway.internal"}, CORSOrigins: []string{"https://console.example"}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mt := strings.ToLower(strings.TrimSpace(strings.SplitN(r.Header.Get("Content-Type"), ";", 2)[0]))
			if r.ContentLength != 0 && mt != "application/json" {
				panic("a non-JSON body got through: " + r.Header.Get("Content-Type"))
			}
		}))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ct, origin, host string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/instances/batch-reset", strings.NewReader("{}"))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Origin", origin)
		req.Host = host
		g.ServeHTTP(httptest.NewRecorder(), req)
	})
}
