package server

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/koophone-gateway/koophone-gateway/internal/telemetry"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/share"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Wiring of the operating concerns: the limits toward KooPhone, metrics, tracing of the REST mirror, the count of
// calls in progress and the drain at shutdown. The logic lives in internal/telemetry and internal/upstream.

// upstreamLimits puts the configured limits, breaker and metrics hooks on the KooPhone client's configuration.
func (s *Server) upstreamLimits(c *upstream.Config) {
	cfg := s.cfg
	c.Observer = s.tel.Upstream
	c.Rates = upstream.Rates{
		ReadPerSec: cfg.UpstreamReadRate, ReadBurst: cfg.UpstreamReadBurst,
		WritePerSec: cfg.UpstreamWriteRate, WriteBurst: cfg.UpstreamWriteBurst,
	}
	c.PollShare = cfg.UpstreamPollShare
	c.Budget = upstream.RetryBudget{Ratio: cfg.UpstreamRetryBudget, MinPerSec: cfg.UpstreamRetryMin}
	if cfg.UpstreamRetryBudget == 0 {
		c.Budget.Ratio = math.SmallestNonzeroFloat64 // 0 configured: only the per-second minimum (0 in Config means the default)
	}
	//nolint:gosec // G115: config bounds BreakerFailures to 1..1,000,000
	c.Breaker = upstream.BreakerConfig{Failures: uint32(cfg.BreakerFailures), OpenFor: cfg.BreakerOpenFor}
	c.MaxConnsPerHost = cfg.UpstreamMaxConns
	c.MaxInFlight = cfg.UpstreamMaxInFlight
	c.Traced = s.tel.Tracing()
}

type streamStats = stream.Stats

// registerHubs exports the watch hubs' counters.
func (s *Server) registerHubs() error {
	if err := s.tel.RegisterHub("task", func() streamStats { t, _ := s.services.WatchStats(); return t }); err != nil {
		return err
	}
	return s.tel.RegisterHub("prepare", func() streamStats { _, p := s.services.WatchStats(); return p })
}

// instrumentHTTP traces and counts every request of the HTTP port except the probes and scrapes, which
// arrive every few seconds and say nothing about callers.
// Without a trace exporter, requests are only joined to their caller's trace (for the logs), as gRPC calls are.
func (s *Server) instrumentHTTP(h http.Handler) http.Handler {
	if !s.tel.Tracing() {
		return telemetry.ExtractHTTPTrace(s.tel.HTTPMiddleware(h))
	}
	traced := otelhttp.NewHandler(s.tel.HTTPMiddleware(h), "rest",
		otelhttp.WithTracerProvider(s.tel.Tracer),
		otelhttp.WithFilter(func(r *http.Request) bool { return !isProbe(r.URL.Path) }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "REST " + r.Method }),
	)
	return traced
}

func isProbe(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics"
}

// startMetrics serves /metrics alone on --metrics-addr, for scrapers kept off the API port.
func (s *Server) startMetrics() error {
	lis, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen on --metrics-addr %s: %w", s.cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.tel.Handler())
	s.metricsAddr = lis.Addr().String()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: sideReadHeaderTimeout}
	s.serve("metrics", func() error { return srv.Serve(lis) })
	s.closers.push("metrics listener", ignoreCtx(srv.Close))
	return nil
}

// MetricsAddr is the address of the /metrics-only listener, "" without --metrics-addr.
func (s *Server) MetricsAddr() string { return s.metricsAddr }

// drain keeps taking calls for the drain delay after health turned NOT_SERVING, so load balancers and
// Kubernetes endpoints stop routing here before the listeners close.
func (s *Server) drain(ctx context.Context) {
	if s.cfg.ShutdownDrainDelay <= 0 {
		return
	}
	s.log.Info("draining: NOT_SERVING, still taking calls", "delay", s.cfg.ShutdownDrainDelay)
	clock.Sleep(clock.Real{}, s.cfg.ShutdownDrainDelay, ctx.Done())
}

// shareConfig is the per-caller shares of the config table.
func shareConfig(cfg *config.Config) share.Config {
	return share.Config{File: cfg.ShareFile, Defaults: share.Limits{
		RequestsPerSecond:   cfg.ShareRate,
		Burst:               cfg.ShareBurst,
		ConcurrentCalls:     cfg.ShareConcurrentCalls,
		OpenStreams:         cfg.ShareOpenStreams,
		ConcurrentFleetRuns: cfg.ShareConcurrentFleetRuns,
	}}
}
