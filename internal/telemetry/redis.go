package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/koophone-gateway/koophone-gateway/internal/coord"
)

// RegisterRedis exports a replica's view of Redis (internal/coord), read at each scrape: whether Redis answers,
// the degraded mode, its transitions, leases held, failed operations and calls that skipped Redis by op class.
func (t *Telemetry) RegisterRedis(status func() coord.Status) error {
	gauge := func(n, help string, f func(coord.Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "redis", Name: n, Help: help},
			func() float64 { return f(status()) })
	}
	counter := func(n, help string, labels prometheus.Labels, f func(coord.Status) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "redis", Name: n, Help: help, ConstLabels: labels},
			func() float64 { return f(status()) })
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	cs := []prometheus.Collector{
		gauge("up", "1 while Redis answers, 0 while it is found down (refused, timed out, hung).",
			func(s coord.Status) float64 { return b(!s.Degraded) }),
		gauge("degraded", "1 while the replica runs on local limits: own pollers, local quota and caller rate shares, keyed writes refused.",
			func(s coord.Status) float64 { return b(s.Degraded) }),
		gauge("leases", "Watched keys this replica polls for every replica.", func(s coord.Status) float64 { return float64(s.Leases) }),
		gauge("replicas", "Live replicas in this replica's view (its own heartbeat included).", func(s coord.Status) float64 { return float64(s.Replicas) }),
		gauge("keys_evictable", "1: maxmemory-policy may evict idempotency keys; 0: noeviction; -1: unknown (CONFIG GET refused).",
			func(s coord.Status) float64 { return float64(s.Evictable) }),
		counter("transitions_total", "Redis found down, or answering again.", prometheus.Labels{"to": "down"}, func(s coord.Status) float64 { return float64(s.Degradations) }),
		counter("transitions_total", "Redis found down, or answering again.", prometheus.Labels{"to": "up"}, func(s coord.Status) float64 { return float64(s.Recoveries) }),
		counter("probes_total", "Background probes of Redis.", nil, func(s coord.Status) float64 { return float64(s.Probes) }),
		counter("lease_takeovers_total", "Leases taken over from a replica that does not own the key.", nil, func(s coord.Status) float64 { return float64(s.Takeovers) }),
		counter("local_quota_total", "Upstream calls admitted by this replica's local share of the quota.", nil, func(s coord.Status) float64 { return float64(s.LocalQuota) }),
		counter("local_share_total", "Callers' calls admitted by this replica's local part of their requests_per_second share (Redis down).", nil,
			func(s coord.Status) float64 { return float64(s.LocalShare) }),
	}
	for i := range coord.NumOps {
		op := prometheus.Labels{"op": coord.OpName(i)}
		cs = append(cs,
			counter("errors_total", "Redis operations that failed, by op class.", op, func(s coord.Status) float64 { return float64(s.ErrorsBy[i]) }),
			counter("skipped_total", "Calls that took the local branch without asking Redis, known to be down, by op class.", op,
				func(s coord.Status) float64 { return float64(s.Skipped[i]) }),
		)
	}
	for _, c := range cs {
		if err := t.Registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}
