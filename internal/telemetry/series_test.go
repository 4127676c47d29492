package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkHTTPMiddleware is the REST metrics' cost per request: a route of the server's own mux, answered 200.
func BenchmarkHTTPMiddleware(b *testing.B) {
	tel, err := New(context.Background(), env(nil))
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/instances/batch-query-status", func(http.ResponseWriter, *http.Request) {})
	h := tel.HTTPMiddleware(mux)
	req := httptest.NewRequest(http.MethodPost, "/v1/instances/batch-query-status", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

// TestHTTPMiddlewareSeries: each label set counts in its own series, the code included.
func TestHTTPMiddlewareSeries(t *testing.T) {
	tel, err := New(context.Background(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("GET /gone", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
	h := tel.HTTPMiddleware(mux)
	for _, p := range []string{"/ok", "/ok", "/gone", "/ok"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	got := map[string]float64{}
	series := 0
	mfs, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case Namespace + "_http_requests_total":
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				got[strings.Join(labels, ",")] = m.GetCounter().GetValue()
			}
		case Namespace + "_http_request_duration_seconds":
			series = len(mf.GetMetric())
		}
	}
	want := map[string]float64{"code=200,method=GET,route=GET /ok": 3, "code=410,method=GET,route=GET /gone": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) || series != 2 {
		t.Fatalf("requests %v, want %v; %d duration series, want 2", got, want, series)
	}
}

// BenchmarkUpstreamObserver is what the upstream client records per attempt: the limiter's wait and the attempt.
func BenchmarkUpstreamObserver(b *testing.B) {
	m := newUpstreamMetrics()
	b.ReportAllocs()
	for b.Loop() {
		m.LimiterWait(false, time.Millisecond, false)
		m.Attempt("BatchQueryStatus", "ok", 200, 1, time.Millisecond)
	}
}

// TestUpstreamAttemptSeries: attempts count by their labels, the third and later together as 3+.
func TestUpstreamAttemptSeries(t *testing.T) {
	m := newUpstreamMetrics()
	reg := prometheus.NewRegistry()
	if err := m.register(reg); err != nil {
		t.Fatal(err)
	}
	for _, a := range []int{1, 1, 2, 3, 4} {
		m.Attempt("GetTask", "server", 503, a, time.Millisecond)
	}
	m.Attempt("GetTask", "transport", 0, 1, time.Millisecond)
	m.LimiterWait(true, time.Millisecond, false)
	got := map[string]float64{}
	var latency, waits uint64
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			switch mf.GetName() {
			case Namespace + "_upstream_attempts_total":
				var labels []string
				for _, l := range mt.GetLabel() {
					labels = append(labels, l.GetValue())
				}
				got[strings.Join(labels, ",")] = mt.GetCounter().GetValue()
			case Namespace + "_upstream_attempt_duration_seconds":
				latency += mt.GetHistogram().GetSampleCount()
			case Namespace + "_upstream_limiter_wait_seconds":
				waits += mt.GetHistogram().GetSampleCount()
			}
		}
	}
	want := map[string]float64{"1,GetTask,server,503": 2, "2,GetTask,server,503": 1, "3+,GetTask,server,503": 2, "1,GetTask,transport,0": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) || latency != 6 || waits != 1 {
		t.Fatalf("attempts %v, want %v; %d latencies, want 6; %d waits, want 1", got, want, latency, waits)
	}
}
