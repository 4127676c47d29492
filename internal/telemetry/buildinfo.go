package telemetry

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	koophonegateway "github.com/koophone-gateway/koophone-gateway"
)

// buildInfo is koophone_build_info{version,go_version,revision} 1: which release each replica runs, for dashboards
// that join it to other series and for alerts on a fleet running mixed versions.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "build_info",
		Help:      "The gateway's version (VERSION), the Go release it was built with and its VCS revision; always 1.",
	}, []string{"version", "go_version", "revision"})
	g.WithLabelValues(koophonegateway.Version, runtime.Version(), koophonegateway.Revision()).Set(1)
	return g
}
