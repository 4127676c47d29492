package telemetry

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

type restMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// series: a request costs a map read instead of two label lookups in the vectors and formatting the code. The
	// labels are bounded (methods folded to "other", routes the muxes' patterns, HTTP status codes).
	series *seriesCache[restLabels, restSeries]
}

type restLabels struct {
	method, route string
	code          int
}

type restSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newRESTMetrics() *restMetrics {
	m := &restMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "http", Name: "requests_total",
			Help: "REST mirror requests, by method, route pattern (never the path itself: it holds ids) and HTTP status."},
			[]string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help: "REST mirror request durations, by method and route pattern.", Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"method", "route"}),
	}
	m.series = newSeriesCache(func(l restLabels) restSeries {
		return restSeries{requests: m.requests.WithLabelValues(l.method, l.route, strconv.Itoa(l.code)), duration: m.duration.WithLabelValues(l.method, l.route)}
	})
	return m
}

func (m *restMetrics) register(reg prometheus.Registerer) error {
	return errors.Join(reg.Register(m.requests), reg.Register(m.duration))
}

// routeKey holds a *string the gateway's route middleware fills in with the matched pattern.
type routeKey struct{}

// HTTPMiddleware counts and times each request of next by route. fixed names routes served outside the
// grpc-gateway mux (health, metrics); other requests take the pattern RouteMiddleware records, or "unmatched".
func (t *Telemetry) HTTPMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := new(string)
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		start := time.Now()
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, route))
		next.ServeHTTP(rec, r)
		name := *route
		if name == "" {
			name = r.Pattern // a route of the server's own mux (health, metrics), which it sets on r
		}
		if name == "" || name == "/" {
			name = "unmatched"
		}
		method := r.Method
		switch method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
		default:
			method = "other" // a client may send any method name: keep the label bounded
		}
		s := t.rest.series.get(restLabels{method, name, rec.code})
		s.requests.Inc()
		s.duration.Observe(time.Since(start).Seconds())
	})
}

// RouteMiddleware is a grpc-gateway middleware that records the matched route pattern for HTTPMiddleware, and
// names the request's span by it with http.route (otelhttp cannot: it sees only the server mux's catch-all "/").
func RouteMiddleware(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p, ok := runtime.HTTPPattern(r.Context()); ok {
			if route, ok := r.Context().Value(routeKey{}).(*string); ok {
				*route = p.String()
			}
			if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
				route := routeTemplate(p.String())
				span.SetAttributes(semconv.HTTPRoute(route))
				span.SetName("REST " + r.Method + " " + route)
			}
		}
		next(w, r, params)
	}
}

// captureRe matches a capture as grpc-gateway renders a pattern: {task_id=*}.
var captureRe = regexp.MustCompile(`\{([^=}]+)=\*\}`)

// routeTemplate is the contract's path template of a grpc-gateway pattern: /v1/instances/tasks/{task_id}, as
// OpenTelemetry's http.route wants it (the metric label keeps grpc-gateway's rendering, which dashboards use).
func routeTemplate(pattern string) string { return captureRe.ReplaceAllString(pattern, "{$1}") }

// statusRecorder remembers the status written; it passes Flush on, which the streaming routes need.
type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
