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

	// The series of every call's Attempt and LimiterWait, kept after first use (see seriesCache): operations,
	// result classes, HTTP statuses and attempt buckets are all bounded.
	attemptSeries *seriesCache[attemptLabels, prometheus.Counter]
	latencySeries *seriesCache[string, prometheus.Observer]
	waitSeries    *seriesCache[bool, prometheus.Observer]
}

type attemptLabels struct {
	op, result      string
	status, attempt int // attempt: 1, 2, or 3 for 3+
}

var _ upstream.Observer = (*UpstreamMetrics)(nil)

func newUpstreamMetrics() *UpstreamMetrics {
	const sub = "upstream"
	m := &UpstreamMetrics{
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
	m.attemptSeries = newSeriesCache(func(l attemptLabels) prometheus.Counter {
		n := strconv.Itoa(l.attempt)
		if l.attempt >= 3 {
			n = "3+"
		}
		return m.attempts.WithLabelValues(l.op, l.result, strconv.Itoa(l.status), n)
	})
	m.latencySeries = newSeriesCache(func(op string) prometheus.Observer { return m.latency.WithLabelValues(op) })
	m.waitSeries = newSeriesCache(func(write bool) prometheus.Observer { return m.limiterWait.WithLabelValues(class(write)) })
	return m
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
	m.attemptSeries.get(attemptLabels{op, result, status, min(attempt, 3)}).Inc()
	if status != 0 || result == "transport" {
		m.latencySeries.get(op).Observe(d.Seconds())
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
	m.waitSeries.get(write).Observe(d.Seconds())
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
