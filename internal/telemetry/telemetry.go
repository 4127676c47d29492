// Package telemetry is what operators see: Prometheus metrics (gRPC server, REST mirror, KooPhone client,
// watch hubs) on one registry, OpenTelemetry tracing configured by the standard OTEL_* variables, and trace ids
// in log lines. Every metric label is bounded: method and route names, codes, operation names, result classes;
// never an id, a token or a payload.
package telemetry

import (
	"context"
	"errors"
	"net/http"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
)

// Namespace prefixes the gateway's own metrics.
const Namespace = "koophone"

// Telemetry holds the registry, the gRPC server metrics and the tracer provider of one server.
type Telemetry struct {
	Registry *prometheus.Registry
	GRPC     *grpcprom.ServerMetrics
	Tracer   trace.TracerProvider
	Upstream *UpstreamMetrics

	rest     *restMetrics
	shutdown func(context.Context) error
}

// New builds the metrics and the tracer provider; getenv reads the OTEL_* variables. Shutdown flushes spans.
func New(ctx context.Context, getenv func(string) string) (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	t := &Telemetry{
		Registry: reg,
		GRPC: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}),
		)),
		Upstream: newUpstreamMetrics(),
		rest:     newRESTMetrics(),
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		t.GRPC,
		buildInfo(),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	if err := errors.Join(t.Upstream.register(reg), t.rest.register(reg)); err != nil {
		return nil, err
	}
	tp, shutdown, err := newTracerProvider(ctx, getenv)
	if err != nil {
		return nil, err
	}
	t.Tracer, t.shutdown = tp, shutdown
	return t, nil
}

// Tracing reports whether spans are exported (an OTLP endpoint is configured).
func (t *Telemetry) Tracing() bool { return t.shutdown != nil }

// Handler serves the registry in the Prometheus text format.
func (t *Telemetry) Handler() http.Handler {
	return promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry})
}

// Shutdown flushes and stops the tracer provider.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}
