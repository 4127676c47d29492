package telemetry

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Metrics are Prometheus's; the OTel instrumentation records none of its own.
var noopMeter = metricnoop.NewMeterProvider()

// UpstreamMetrics implements upstream.Observer with Prometheus series.
type UpstreamMetrics struct {
	attempts    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	transitions *prometheus.CounterVec
	limiterWait *prometheus.HistogramVec
	limited     *prometheus.CounterVec
	inFlight    prometheus.Gauge
	breaker     *prometheus.GaugeVec
}

var _ upstream.Observer = (*UpstreamMetrics)(nil)

func newUpstreamMetrics() *UpstreamMetrics {
	const sub = "upstream"
	return &UpstreamMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub, Name: "attempts_total",
			Help: "Requests sent to KooPhone (or refused before sending), by operation, result class, HTTP status (0: none) and attempt (1, 2, 3+)."},
			[]string{"op", "result", "status", "attempt"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub, Name: "attempt_duration_seconds",
			Help: "Time from sending a request to KooPhone to its answer, by operation.", Buckets: prometheus.DefBuckets},
			[]string{"op"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub, Name: "retries_total",
			Help: "Retries of failed reads, by operation and whether the shared retry budget allowed them."},
			[]string{"op", "budget"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub, Name: "token_refreshes_total",
			Help: "IAM token fetches, by result (ok, error)."}, []string{"result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub, Name: "breaker_transitions_total",
			Help: "Circuit breaker state changes, by new state."}, []string{"state"}),
		limiterWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub, Name: "limiter_wait_seconds",
			Help:    "Time an attempt waited for the rate limiter and the in-flight bound, by class (read, write).",
			Buckets: []float64{0.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"class"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub, Name: "rate_limited_total",
			Help: "Calls refused because the rate limit's next slot was after their deadline, by class."}, []string{"class"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub, Name: "in_flight",
			Help: "Requests to KooPhone in flight now."}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub, Name: "breaker_state",
			Help: "1 for the circuit breaker's current state (closed, half-open, open), 0 for the others."}, []string{"state"}),
	}
}

func (m *UpstreamMetrics) register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.attempts, m.latency, m.retries, m.refreshes, m.transitions, m.limiterWait, m.limited, m.inFlight, m.breaker} {
		errs = append(errs, reg.Register(c))
	}
	m.setBreaker(upstream.BreakerClosed)
	for _, r := range []string{"ok", "error"} {
		m.refreshes.WithLabelValues(r)
	}
	return errors.Join(errs...)
}

func class(write bool) string {
	if write {
		return "write"
	}
	return "read"
}

// Attempt implements upstream.Observer.
func (m *UpstreamMetrics) Attempt(op, result string, status, attempt int, d time.Duration) {
	n := strconv.Itoa(attempt)
	if attempt >= 3 {
		n = "3+"
	}
	m.attempts.WithLabelValues(op, result, strconv.Itoa(status), n).Inc()
	if status != 0 || result == "transport" {
		m.latency.WithLabelValues(op).Observe(d.Seconds())
	}
}

// Retry implements upstream.Observer.
func (m *UpstreamMetrics) Retry(op string, allowed bool) {
	b := "allowed"
	if !allowed {
		b = "denied"
	}
	m.retries.WithLabelValues(op, b).Inc()
}

// LimiterWait implements upstream.Observer.
func (m *UpstreamMetrics) LimiterWait(write bool, d time.Duration, limited bool) {
	if limited {
		m.limited.WithLabelValues(class(write)).Inc()
		return
	}
	m.limiterWait.WithLabelValues(class(write)).Observe(d.Seconds())
}

// BreakerChange implements upstream.Observer.
func (m *UpstreamMetrics) BreakerChange(_, to string) {
	m.setBreaker(to)
	m.transitions.WithLabelValues(to).Inc()
}

func (m *UpstreamMetrics) setBreaker(state string) {
	for _, s := range []string{upstream.BreakerClosed, upstream.BreakerHalfOpen, upstream.BreakerOpen} {
		v := 0.0
		if s == state {
			v = 1
		}
		m.breaker.WithLabelValues(s).Set(v)
	}
}

// TokenRefresh implements upstream.Observer.
func (m *UpstreamMetrics) TokenRefresh(err error) {
	r := "ok"
	if err != nil {
		r = "error"
	}
	m.refreshes.WithLabelValues(r).Inc()
}

// InFlight implements upstream.Observer.
func (m *UpstreamMetrics) InFlight(delta int) { m.inFlight.Add(float64(delta)) }
