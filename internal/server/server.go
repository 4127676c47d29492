// Package server wires the gateway together: the KooPhone client (or the embedded simulator it talks to), the
// gRPC server with its interceptors, reflection and health, the REST/JSON mirror, readiness, and the shutdown
// order.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/koophone-gateway/koophone-gateway/internal/apidocs"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/coord"
	"github.com/koophone-gateway/koophone-gateway/internal/pprofserver"
	"github.com/koophone-gateway/koophone-gateway/internal/rest"
	"github.com/koophone-gateway/koophone-gateway/internal/server/grpcopts"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/share"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/telemetry"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
	"github.com/koophone-gateway/koophone-gateway/internal/webrpc"
)

// mirrorStreamConns is how many in-memory connections carry the REST mirror's streams (one HTTP/2 connection
// serialises its streams through one reader and one writer); each admits --max-concurrent-streams held REST
// watches. Unary REST calls need none: they run in process.
const mirrorStreamConns = 4

// mirrorMaxRecvBytes is the largest answer the REST mirror's stream connections take from the gRPC server: far
// above any message of the contract, so the mirror never refuses what the gRPC side sent.
const mirrorMaxRecvBytes = 64 << 20

// sideReadHeaderTimeout bounds request headers on the side listeners the gateway serves for itself (the embedded
// simulator, --metrics-addr); the REST port has --http-read-header-timeout.
const sideReadHeaderTimeout = 10 * time.Second

// restWorkers is how many goroutines serve the REST port's HTTP/2 requests (rest.Workers), as many as the gRPC
// server's stream workers; each idle one holds its grown stack (16 KiB).
const restWorkers = 256

// telemetryFlushTimeout is how long the last spans and metrics may take to leave at shutdown, whatever is left of
// the grace period.
const telemetryFlushTimeout = 5 * time.Second

// Server is a running gateway.
type Server struct {
	cfg     *config.Config
	log     *slog.Logger
	opts    options
	closers closers // the lifecycle (lifecycle.go)

	sim      *sim.Server // the embedded simulator, nil against a real endpoint
	up       *upstream.Client
	coord    *coord.Coord // Redis coordination (KOOPHONE_REDIS_URL), nil without it
	services *service.Services
	sec      *security
	tel      *telemetry.Telemetry
	grpc     *grpc.Server
	health   *healthService
	inproc   *rest.InProcRegistrar // the services as the REST mirror's unary calls reach them, in process
	unary    []grpc.UnaryServerInterceptor
	http     *http.Server
	active   atomic.Int64           // calls in progress, both transports, for the count of calls cut at shutdown
	refused  *prometheus.CounterVec // connections refused by the per-source bound, per listener

	grpcAddr, httpAddr, metricsAddr string
	upstreamOK                      atomic.Bool    // KooPhone answers the readiness probe
	stopping                        atomic.Bool    // Shutdown began: health stays NOT_SERVING
	servingMu                       sync.Mutex     // orders health updates from the probe and the credential files
	wg                              sync.WaitGroup // serving and probing goroutines
	shutdownOnce                    sync.Once
	shutdownErr                     error
	cutErr                          error // calls cut at the end of the grace period
}

// Option adjusts what Start builds; tests use them to put the simulator and the streams on a fake clock.
type Option func(*options)

type options struct {
	clock    clock.Clock
	sim      func(*sim.Config)
	watch    func(*service.WatchOptions)
	upstream func(*upstream.Config)
	simConn  func(net.Conn, http.ConnState) // tests count the connections to the simulator
	closing  func(name string)              // tests see each closer of the lifecycle as it runs
}

// WithClock runs every time-dependent part Start builds (the embedded simulator, the IAM token cache, the KooPhone
// client's signing and back-off, the streams' polling) on c, so a test's fake clock is the only time they see.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithUpstreamConfig lets f adjust the KooPhone client's configuration (clock, breaker, limits) before it is built.
func WithUpstreamConfig(f func(*upstream.Config)) Option { return func(o *options) { o.upstream = f } }

// WithSimConfig lets f adjust the embedded simulator's configuration before it starts.
func WithSimConfig(f func(*sim.Config)) Option { return func(o *options) { o.sim = f } }

// WithWatchOptions lets f adjust the streams' polling policy.
func WithWatchOptions(f func(*service.WatchOptions)) Option { return func(o *options) { o.watch = f } }

// clock is the one clock every part runs on: the wall clock unless a test injected its own.
func (o *options) clockOrReal() clock.Clock {
	if o.clock == nil {
		return clock.Real{}
	}
	return o.clock
}

// Start builds everything from cfg, listens on both ports and serves in the background. Health reports
// NOT_SERVING until KooPhone (or the simulator) has answered a probe. When a part fails, the parts built before it
// are closed again (lifecycle.go).
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (*Server, error) {
	s := &Server{cfg: cfg, log: log}
	for _, o := range opts {
		o(&s.opts)
	}
	s.closers.ran = s.opts.closing
	if err := s.start(ctx); err != nil {
		// Nothing was served yet worth a grace period: the drains end at once, cutting whatever started.
		stop, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancel()
		_ = s.closers.unwind(stop)
		s.wg.Wait()
		return nil, err
	}
	return s, nil
}

// start builds the parts in the order of the lifecycle; each pushes its closer as it is built.
func (s *Server) start(ctx context.Context) error {
	for _, build := range []func(context.Context) error{
		s.startTelemetry,  // first: every other part reports to it
		s.openCoord,       // before the client and the hubs, which may share its quota and pollers
		s.startUpstream,   // the simulator (embedded default) and the KooPhone client
		s.buildServices,   // handlers, watch hubs, fleet engine; the credential files and the audit log
		s.serveGRPC,       // the interceptor chain, registration, health, reflection, the gRPC listener
		s.serveREST,       // the REST mirror on the HTTP listener, calling the same chain in process
		s.startOperators,  // --metrics-addr, --pprof-addr
		s.startProbes,     // readiness: health turns SERVING once KooPhone answers
		s.announceStreams, // last built, first unwound: streams are told to end before the drains
	} {
		if err := build(ctx); err != nil {
			return err
		}
	}
	s.log.Info("serving", "grpc", s.grpcAddr, "http", s.httpAddr, "upstream", s.upstreamName(),
		"tls", s.sec.tls != nil, "authentication", s.sec.guard.Enabled())
	return nil
}

func (s *Server) startTelemetry(ctx context.Context) error {
	tel, err := telemetry.New(ctx, s.cfg.Env) // the standard OTEL_* variables, from the environment config read
	if err != nil {
		return err
	}
	s.tel = tel
	s.closers.push("telemetry", func(stop context.Context) error {
		// Its own time: the grace period may be spent by now.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(stop), telemetryFlushTimeout)
		defer cancel()
		return s.tel.Shutdown(ctx)
	})
	return nil
}

// startUpstream creates the KooPhone client; without an endpoint it first starts the simulator on loopback and
// points the client at it over real HTTP, so the embedded default exercises the production client.
func (s *Server) startUpstream(context.Context) error {
	endpoint, auth, err := s.upstreamAuth()
	if err != nil {
		return err
	}
	upCfg := upstream.Config{
		Endpoint:  endpoint,
		Auth:      auth,
		Logger:    s.log.With("component", "upstream"),
		UserAgent: "koophone-gateway",
		Clock:     s.opts.clockOrReal(),
	}
	s.upstreamLimits(&upCfg)
	if err := s.sharedQuota(&upCfg); err != nil {
		return err
	}
	if s.opts.upstream != nil {
		s.opts.upstream(&upCfg)
	}
	up, err := upstream.New(upCfg)
	if err != nil {
		return fmt.Errorf("KooPhone client: %w", err)
	}
	s.up = up
	s.closers.push("KooPhone client", quiet(up.Close))
	return nil
}

// upstreamAuth returns KooPhone's address and the gateway's credential toward it: the embedded simulator's (which
// it starts) without an endpoint, else the one credential the configuration names.
func (s *Server) upstreamAuth() (string, upstream.Authenticator, error) {
	cfg := s.cfg
	iam := upstream.IAMConfig{
		Endpoint: cfg.IAMEndpoint, Domain: cfg.IAMDomain, User: cfg.IAMUser, Password: cfg.IAMPassword, Project: cfg.Project,
		Clock: s.opts.clockOrReal(), Logger: s.log.With("component", "iam"), OnRefresh: s.tel.Upstream.TokenRefresh,
	}
	switch {
	case cfg.Simulated():
		endpoint, creds, err := s.startSim()
		if err != nil {
			return "", nil, err
		}
		iam.Endpoint, iam.Domain, iam.User, iam.Password, iam.Project = endpoint, creds.Domain, creds.User, creds.Password, creds.ProjectName
		return endpoint, upstream.NewIAMPassword(iam), nil
	case cfg.AuthToken != "":
		return cfg.Endpoint, upstream.NewStaticToken(cfg.AuthToken), nil
	case cfg.AK != "":
		return cfg.Endpoint, upstream.NewAKSK(cfg.AK, cfg.SK, cfg.ProjectID), nil
	}
	return cfg.Endpoint, upstream.NewIAMPassword(iam), nil
}

// startSim serves the embedded simulator on a loopback port and returns its address and credentials.
func (s *Server) startSim() (string, sim.Credentials, error) {
	simCfg := sim.DefaultConfig()
	simCfg.FleetSize = s.cfg.SimFleet
	simCfg.JobDuration = s.cfg.SimJobDuration
	simCfg.PrepareStep = s.cfg.SimPrepareStep
	simCfg.Logger = s.log.With("component", "sim")
	simCfg.Clock = s.opts.clockOrReal()
	if s.opts.sim != nil {
		s.opts.sim(&simCfg)
	}
	s.sim = sim.New(simCfg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", sim.Credentials{}, fmt.Errorf("listen for the embedded simulator: %w", err)
	}
	srv := &http.Server{Handler: s.sim, ReadHeaderTimeout: sideReadHeaderTimeout, ConnState: s.opts.simConn}
	s.serve("sim", func() error { return srv.Serve(lis) })
	s.closers.push("simulator", ignoreCtx(srv.Close))
	endpoint := "http://" + lis.Addr().String()
	s.log.Warn("no KOOPHONE_ENDPOINT set: running on the embedded KooPhone simulator, not the real service",
		"simulator", endpoint, "phones", simCfg.FleetSize)
	return endpoint, s.sim.Credentials(), nil
}

// buildServices builds the handlers (with their watch hubs and fleet engine) and the security in front of them.
func (s *Server) buildServices(context.Context) error {
	cfg := s.cfg
	watch := service.WatchOptions{
		FirstInterval: cfg.WatchFirstInterval,
		MaxInterval:   cfg.WatchMaxInterval,
		TerminalTTL:   cfg.WatchTerminalTTL,
		PollTimeout:   cfg.WatchPollTimeout,
		StepTimeout:   cfg.WatchStepTimeout,
		MaxPollers:    cfg.WatchMaxPollers,
		Clock:         s.opts.clockOrReal(),
		Tracer:        s.tel.Exporting(), // polls link to the watches they serve
	}
	if s.coord != nil { // set only when Redis is configured: the replicas share their pollers
		watch.Peer = s.coord
	}
	if s.opts.watch != nil {
		s.opts.watch(&watch)
	}
	fleet := service.FleetOptions{BatchSize: cfg.FleetBatchSize, Concurrency: cfg.FleetConcurrency, ProgressInterval: cfg.FleetProgressInterval}
	var err error
	s.services, err = service.New(service.Options{Upstream: s.up, Logger: s.log, Watch: watch, Fleet: fleet})
	if err != nil {
		return err
	}
	// The services' closer is announceStreams, pushed last: until something is served no stream can hold a hub.
	if err := s.registerHubs(); err != nil {
		return err
	}
	s.sec, err = newSecurity(cfg, s.log, s.opts.clockOrReal())
	if err != nil {
		return err
	}
	s.closers.push("audit log", ignoreCtx(s.sec.auditClose))
	return nil
}

// serveGRPC builds the gRPC server with the interceptor chain (chain.go), registers the contract's services,
// health and reflection on it, and serves its listener.
func (s *Server) serveGRPC(context.Context) error {
	cfg := s.cfg
	validator, err := service.NewValidator()
	if err != nil {
		return err
	}
	sc := shareConfig(cfg)
	sc.Limiter = s.shareLimiter()
	shares, err := share.New(sc, s.opts.clockOrReal(), s.tel.Registry)
	if err != nil {
		return err
	}
	c := chain{log: s.log, tel: s.tel, inFlight: &s.active, guard: s.sec.guard, shares: shares, validator: validator,
		defaultTimeout: cfg.DefaultCallTimeout, idempotency: s.idempotency()}
	s.unary = c.unary()
	opts := append(s.sec.grpcOptions(), grpcopts.Server(cfg)...)
	if s.tel.Tracing() {
		opts = append(opts, grpc.StatsHandler(s.tel.ServerHandler()))
	}
	s.grpc = grpc.NewServer(append(opts,
		newMarkingCodec(), // malformed requests become INVALID_ARGUMENT in validation
		grpc.ChainUnaryInterceptor(s.unary...),
		grpc.ChainStreamInterceptor(c.stream()...), //nolint:contextcheck // stream steps take their context from the stream
	)...)
	s.closers.push("gRPC server", s.stopGRPC)
	// Registered through the in-process registrar too, so the REST mirror can run their unary calls directly.
	s.inproc = rest.NewInProcRegistrar(s.grpc)
	if err := s.services.Register(s.inproc); err != nil {
		return err
	}
	if err := s.registerHealth(); err != nil {
		return err
	}
	if s.sec.reflection(cfg) {
		reflection.Register(s.grpc)
	}
	s.tel.GRPC.InitializeMetrics(s.grpc)
	lis, err := s.listen("grpc-addr", cfg.GRPCAddr, "grpc")
	if err != nil {
		return err
	}
	s.grpcAddr = lis.Addr().String()
	s.serve("grpc", func() error { return s.grpc.Serve(lis) })
	return nil
}

// registerHealth serves health, NOT_SERVING until the readiness probe says otherwise, following the credential
// files.
func (s *Server) registerHealth() error {
	s.health = newHealthService()
	s.setServing(false)
	if err := s.sec.followFiles(s.tel.Registry, s.applyServing); err != nil {
		return err
	}
	s.health.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	return nil
}

// serveREST serves the REST mirror (internal/rest), /healthz, /readyz, /metrics and the API docs on the HTTP
// listener. The mirror calls the same handlers through the same interceptors as gRPC callers, in process: unary
// calls in the HTTP handler's goroutine, streams over in-memory connections served by the gRPC server (why: the
// rest package's inproc.go).
func (s *Server) serveREST(ctx context.Context) error {
	cfg := s.cfg
	lis, err := s.listen("http-addr", cfg.HTTPAddr, "http")
	if err != nil {
		return err
	}
	s.httpAddr = lis.Addr().String()
	gwLis := rest.ListenInProcess()
	s.serve("grpc-mirror", func() error { return s.grpc.Serve(gwLis) }) // stopped with the gRPC server
	conns, err := rest.DialInProcess(gwLis, mirrorStreamConns,
		grpc.WithTransportCredentials(s.sec.mirrorCreds()), // TLS pinned to our own certificate when TLS is on
		grpc.WithStatsHandler(s.tel.ClientHandler()),       // the REST call and its gRPC hop are one trace
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(mirrorMaxRecvBytes)))
	if err != nil {
		_ = lis.Close()
		return fmt.Errorf("connect the REST mirror to gRPC: %w", err)
	}
	s.closers.push("REST stream connections", quiet(conns.Close))
	gw := rest.NewMux(s.sec.guard, runtime.WithMiddlewares(telemetry.RouteMiddleware))
	channel := rest.NewInProcChannel(s.inproc, s.unary, conns, rest.WithTracerProvider(s.tel.Exporting()))
	if err := s.services.RegisterREST(ctx, gw, channel); err != nil {
		_ = lis.Close()
		return err
	}
	handler, err := s.httpHandler(gw)
	if err != nil {
		_ = lis.Close()
		return err
	}
	// No WriteTimeout: it would cut long watch streams; each stream is bounded by its caller and by shutdown.
	// ReadHeaderTimeout also bounds the TLS handshake (net/http takes the shortest of its timeouts for it).
	s.http = &http.Server{Handler: handler, ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout}
	if s.sec.tls != nil {
		s.http.TLSConfig = s.sec.httpTLS()
		s.serve("http", func() error { return s.http.ServeTLS(lis, "", "") })
	} else {
		s.serve("http", func() error { return s.http.Serve(lis) })
	}
	s.closers.push("REST listener", s.stopREST)
	return nil
}

// httpHandler routes the HTTP port: probes, metrics, the API docs, and the REST mirror behind the edge's checks.
func (s *Server) httpHandler(gw http.Handler) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.tel.Handler())
	docs := apidocs.Handler() // Swagger UI on the OpenAPI, all embedded
	mux.Handle("/docs", docs)
	mux.Handle("/docs/", docs)
	api, err := rest.Edge(rest.EdgeConfig{
		CORSOrigins:  s.cfg.CORSOrigins,
		Hosts:        s.cfg.HTTPAllowedHosts,
		BodyTimeout:  s.cfg.HTTPBodyTimeout,
		MaxBodyBytes: s.cfg.HTTPMaxBodyBytes,
	}, gw)
	if err != nil {
		return nil, err
	}
	mux.Handle("/", api)
	if s.cfg.WebRPC { // Connect and gRPC-web at /koophone.v1.<Service>/, through the gRPC server and its chain
		if err := webrpc.Mount(mux, webrpc.Config{CORSOrigins: s.cfg.CORSOrigins, Hosts: s.cfg.HTTPAllowedHosts,
			MaxBodyBytes: s.cfg.HTTPMaxBodyBytes, BodyTimeout: s.cfg.HTTPBodyTimeout}, s.grpc); err != nil {
			return nil, err
		}
	}
	// HTTP/2 requests run on workers whose stacks have grown already (see rest.Workers); they stop after the
	// listener, once its requests have ended.
	workers := rest.NewWorkers(restWorkers, s.instrumentHTTP(mux))
	s.closers.push("REST workers", workers.Stop)
	return workers, nil
}

// startOperators serves the optional /metrics-only and pprof listeners.
func (s *Server) startOperators(context.Context) error {
	if s.cfg.MetricsAddr != "" {
		if err := s.startMetrics(); err != nil {
			return err
		}
	}
	if s.cfg.PprofAddr != "" {
		p, err := pprofserver.Start(s.cfg.PprofAddr)
		if err != nil {
			return err
		}
		s.closers.push("pprof listener", ignoreCtx(p.Close))
		s.log.Warn("serving /debug/pprof for operators", "addr", p.Addr())
	}
	return nil
}

// startProbes starts the readiness probe of KooPhone and the poll of the credential files.
func (s *Server) startProbes(start context.Context) error {
	// They live until shutdown, not as long as Start's context.
	ctx, cancel := context.WithCancel(context.WithoutCancel(start))
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.probe(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.sec.pollFiles(ctx)
	}()
	s.closers.push("readiness probe", quiet(cancel))
	return nil
}

func (s *Server) upstreamName() string {
	if s.sim != nil {
		return "embedded simulator"
	}
	return s.cfg.Endpoint
}

// serve runs fn in the background; an error other than a normal close is logged.
func (s *Server) serve(name string, fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("server stopped", "server", name, "err", err)
		}
	}()
}

// GRPCAddr is the address the gRPC server listens on.
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// HTTPAddr is the address the REST mirror listens on.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// Sim is the embedded simulator, or nil against a real endpoint.
func (s *Server) Sim() *sim.Server { return s.sim }
