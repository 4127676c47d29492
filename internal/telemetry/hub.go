package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/koophone-gateway/koophone-gateway/internal/stream"
)

// RegisterHub exports a watch hub's counters under hub=name, read at each scrape.
func (t *Telemetry) RegisterHub(name string, stats func() stream.Stats) error {
	labels := prometheus.Labels{"hub": name}
	gauge := func(n, help string, f func(stream.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "watch", Name: n, Help: help, ConstLabels: labels},
			func() float64 { return f(stats()) })
	}
	counter := func(n, help string, f func(stream.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "watch", Name: n, Help: help, ConstLabels: labels},
			func() float64 { return f(stats()) })
	}
	for _, c := range []prometheus.Collector{
		gauge("watchers", "Open watch streams.", func(s stream.Stats) float64 { return float64(s.Watchers) }),
		gauge("pollers", "Things polled now (one poller serves every watcher of a thing).", func(s stream.Stats) float64 { return float64(s.Pollers) }),
		gauge("cached", "Finished things kept for late watchers.", func(s stream.Stats) float64 { return float64(s.Cached) }),
		counter("polls_total", "Upstream polls started.", func(s stream.Stats) float64 { return float64(s.Polls) }),
		counter("poll_errors_total", "Polls that failed.", func(s stream.Stats) float64 { return float64(s.PollErrors) }),
		counter("delivered_total", "Snapshots delivered to watchers.", func(s stream.Stats) float64 { return float64(s.Delivered) }),
		counter("conflated_total", "Snapshots a slow watcher skipped because a newer one replaced them.", func(s stream.Stats) float64 { return float64(s.Conflated) }),
	} {
		if err := t.Registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}
