package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
