package rest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
)

// serve starts a real HTTP server with the edge's checks in front of h.
func serve(t *testing.T, cfg EdgeConfig, h http.Handler) *httptest.Server {
	t.Helper()
	g, err := Edge(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv
}

func TestContentTypes(t *testing.T) {
	var reached atomic.Int32
	srv := serve(t, EdgeConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		_ = res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%q %q: %d %s, want %d", c.ct, c.body, res.StatusCode, b, c.want)
		}
		if c.want == 415 && !strings.Contains(string(b), `"reason":"HTTP_UNSUPPORTED_MEDIA_TYPE"`) {
			t.Errorf("%q: error body %s", c.ct, b)
		}
	}
	if n := reached.Load(); n != 4 {
		t.Errorf("%d requests reached the handler, want 4", n)
	}
}

func TestBadCORSOrigin(t *testing.T) {
	if _, err := Edge(EdgeConfig{CORSOrigins: []string{"not a url"}}, http.NotFoundHandler()); err == nil {
		t.Error("a malformed CORS origin was accepted")
	}
}

// The body deadline bounds reading the body only: a response that streams for longer than the deadline after the
// body was read goes on to its end.
func TestBodyDeadlineSparesStreams(t *testing.T) {
	const deadline = 100 * time.Millisecond
	srv := serve(t, EdgeConfig{BodyTimeout: deadline}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for i := range 4 {
			if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
				return // the client went away: the test fails on what it read
			}
			w.(http.Flusher).Flush()
			time.Sleep(deadline) // the stream outlives the body deadline several times over
		}
	}))
	res, err := http.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil || strings.Count(string(b), "line") != 4 {
		t.Fatalf("stream cut: %q %v", b, err)
	}
}

// A body that stalls is cut off: the handler's read fails and the connection closes.
func TestBodyDeadlineCutsStalledBody(t *testing.T) {
	readErr := make(chan error, 1)
	srv := serve(t, EdgeConfig{BodyTimeout: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}))
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	if err := <-readErr; err == nil {
		t.Fatal("the stalled body was read to the end")
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // only keeps a broken server from hanging the test
	_, err = io.Copy(io.Discard, bufio.NewReader(c))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the connection stayed open")
	}
}

// Headers are untrusted: no Content-Type, Origin or Host value makes the edge panic or let a non-JSON body by.
func FuzzEdgeHeaders(f *testing.F) {
	f.Add("text/plain", "http://evil.example", "x")
	f.Add("application/json; charset=utf-8", "", "gateway.internal")
	g, err := Edge(EdgeConfig{Hosts: []string{"gateway.internal"}, CORSOrigins: []string{"https://console.example"}},
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

// refusal is an answer of the edge as the caller sees it over HTTP.
type refusal struct {
	status    int
	requestID string
	st        *spb.Status
	info      *errdetails.ErrorInfo
	raw       string
}

// readRefusal decodes an answer that must be the mirror's one error shape: {"error": google.rpc.Status} with the
// gateway's ErrorInfo as its only detail.
func readRefusal(t *testing.T, res *http.Response) refusal {
	t.Helper()
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	r := refusal{status: res.StatusCode, requestID: res.Header.Get("X-Request-Id"), raw: string(b)}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%d: Content-Type %q", res.StatusCode, ct)
	}
	var env struct {
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil || env.Error == nil {
		t.Fatalf("%d: body is not {\"error\": …}: %s (%v)", res.StatusCode, b, err)
	}
	r.st = &spb.Status{}
	if err := protojson.Unmarshal(env.Error, r.st); err != nil {
		t.Fatalf("%d: error is not a google.rpc.Status: %s (%v)", res.StatusCode, env.Error, err)
	}
	if len(r.st.Details) != 1 {
		t.Fatalf("%d: details %v, want one ErrorInfo", res.StatusCode, r.st.Details)
	}
	r.info = &errdetails.ErrorInfo{}
	if err := r.st.Details[0].UnmarshalTo(r.info); err != nil {
		t.Fatalf("%d: detail is not an ErrorInfo: %v", res.StatusCode, err)
	}
	if r.info.Domain != errcat.Domain {
		t.Errorf("%d: ErrorInfo domain %q", res.StatusCode, r.info.Domain)
	}
	if _, ok := pb.ErrorReason_value[r.info.Reason]; !ok {
		t.Errorf("%d: reason %q is not a koophone.v1.ErrorReason", res.StatusCode, r.info.Reason)
	}
	return r
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Every refusal of the edge carries the one error shape, a reason and the request id: the caller's when it is a
// valid id, a new UUID otherwise. A refused body's message names the header to send.
func TestRefusalsCarryErrorShapeAndRequestID(t *testing.T) {
	var reached atomic.Int32
	srv := serve(t, EdgeConfig{Hosts: []string{"127.0.0.1"}, MaxBodyBytes: 64},
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	for _, c := range []struct {
		name       string
		header     []string
		body       string
		wantStatus int
		wantCode   codes.Code
		wantReason pb.ErrorReason
		wantMD     map[string]string
		wantInMsg  string
	}{
		{"curl -d (a form)", []string{"Content-Type", "application/x-www-form-urlencoded"}, "{}",
			415, codes.InvalidArgument, pb.ErrorReason_HTTP_UNSUPPORTED_MEDIA_TYPE,
			map[string]string{"content_type": "application/x-www-form-urlencoded"}, FixContentType},
		{"no content type", nil, "{}",
			415, codes.InvalidArgument, pb.ErrorReason_HTTP_UNSUPPORTED_MEDIA_TYPE,
			map[string]string{"content_type": "none"}, FixContentType},
		{"too large", []string{"Content-Type", "application/json"}, `{"x":"` + strings.Repeat("a", 100) + `"}`,
			413, codes.InvalidArgument, pb.ErrorReason_HTTP_BODY_TOO_LARGE,
			map[string]string{"max_body_bytes": "64"}, "larger than 64 bytes"},
		{"cross origin", []string{"Content-Type", "application/json", "Origin", "http://evil.example"}, "{}",
			403, codes.PermissionDenied, pb.ErrorReason_CROSS_ORIGIN_REFUSED,
			map[string]string{"origin": "http://evil.example"}, "--cors-origins"},
		{"cross-site fetch", []string{"Content-Type", "application/json", "Sec-Fetch-Site", "cross-site"}, "{}",
			403, codes.PermissionDenied, pb.ErrorReason_CROSS_ORIGIN_REFUSED, nil, "--cors-origins"},
		{"wrong host", []string{"Content-Type", "application/json", "Host", "evil.example"}, "{}",
			421, codes.PermissionDenied, pb.ErrorReason_HTTP_HOST_NOT_SERVED,
			map[string]string{"host": "evil.example"}, "evil.example"},
	} {
		for _, id := range []struct{ sent, want string }{{"", "new"}, {"caller-id-1", "caller-id-1"}, {"bad id;drop", "new"}} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/instances/batch-reset", strings.NewReader(c.body))
			for i := 0; i < len(c.header); i += 2 {
				if c.header[i] == "Host" {
					req.Host = c.header[i+1]
				} else {
					req.Header.Set(c.header[i], c.header[i+1])
				}
			}
			if id.sent != "" {
				req.Header.Set("X-Request-Id", id.sent)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r := readRefusal(t, res)
			code := status.FromProto(r.st).Code()
			if r.status != c.wantStatus || code != c.wantCode || r.info.Reason != c.wantReason.String() {
				t.Errorf("%s: %d %v %s, want %d %v %v", c.name, r.status, code, r.info.Reason, c.wantStatus, c.wantCode, c.wantReason)
			}
			if !maps.Equal(r.info.Metadata, c.wantMD) {
				t.Errorf("%s: metadata %v, want %v", c.name, r.info.Metadata, c.wantMD)
			}
			if !strings.Contains(r.st.Message, c.wantInMsg) {
				t.Errorf("%s: message %q does not say %q", c.name, r.st.Message, c.wantInMsg)
			}
			if id.want == "new" && !uuidRe.MatchString(r.requestID) || id.want != "new" && r.requestID != id.want {
				t.Errorf("%s: sent X-Request-Id %q, got %q", c.name, id.sent, r.requestID)
			}
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("%d refused requests reached the handler", n)
	}
}

// A body that turns out longer than its declared (or undeclared, chunked) length is cut at the limit.
func TestBodyLimitCutsUndeclaredLength(t *testing.T) {
	readErr := make(chan error, 1)
	srv := serve(t, EdgeConfig{MaxBodyBytes: 8}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}))
	req, _ := http.NewRequest(http.MethodPost, srv.URL, io.MultiReader(strings.NewReader(`{"x":"0123456789"}`))) // no length: chunked
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	var tooBig *http.MaxBytesError
	if err := <-readErr; !errors.As(err, &tooBig) {
		t.Fatalf("read %v, want a MaxBytesError", err)
	}
}
