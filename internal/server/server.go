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
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/apidocs"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/coord"
	"github.com/koophone-gateway/koophone-gateway/internal/inproc"
	"github.com/koophone-gateway/koophone-gateway/internal/pprofserver"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/share"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/telemetry"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// serviceNames are the names health reports on, besides the server as a whole ("").
var serviceNames = []string{
	pb.InstanceService_ServiceDesc.ServiceName,
	pb.OrderService_ServiceDesc.ServiceName,
	pb.AppService_ServiceDesc.ServiceName,
	pb.FleetService_ServiceDesc.ServiceName,
}

// mirrorStreamConns is how many in-memory connections carry the REST mirror's streams (one HTTP/2 connection
// serialises its streams through one reader and one writer); each admits --max-concurrent-streams held REST
// watches. Unary REST calls need none: they run in process.
const mirrorStreamConns = 4

// streamWorkers is how many goroutines the gRPC server keeps to run handlers on; each idle one holds its stack
// (8-16 KiB).
const streamWorkers = 256

// Server is a running gateway.
type Server struct {
	cfg  *config.Config
	log  *slog.Logger
	opts options

	sim     *sim.Server  // the embedded simulator, nil against a real endpoint
	simHTTP *http.Server // serves sim on loopback
	up      *upstream.Client
	coord   *coord.Coord // Redis coordination (KOOPHONE_REDIS_URL), nil without it

	services *service.Services
	sec      *security
	grpc     *grpc.Server
	health   *healthService
	gwLis    *inproc.Listener // the REST mirror's in-memory way into s.grpc
	gwConns  *inproc.Conns
	http     *http.Server
	metrics  *http.Server // the optional /metrics-only listener
	tel      *telemetry.Telemetry
	active   atomic.Int64        // gRPC calls in progress, for the count of calls cut at shutdown
	pprof    *pprofserver.Server // nil unless --pprof-addr

	grpcAddr, httpAddr string
	metricsAddr        string
	stopProbe          context.CancelFunc
	upstreamOK         atomic.Bool    // KooPhone answers the readiness probe
	servingMu          sync.Mutex     // orders health updates from the probe and the credential files
	wg                 sync.WaitGroup // serving and probing goroutines
	shutdownOnce       sync.Once
	shutdownErr        error
}

// Option adjusts what Start builds; tests use them to put the simulator and the streams on a fake clock.
type Option func(*options)

type options struct {
	clock    clock.Clock
	sim      func(*sim.Config)
	watch    func(*service.WatchOptions)
	upstream func(*upstream.Config)
	simConn  func(net.Conn, http.ConnState) // tests count the connections to the simulator
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
// NOT_SERVING until KooPhone (or the simulator) has answered a probe.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (*Server, error) {
	s := &Server{cfg: cfg, log: log}
	for _, o := range opts {
		o(&s.opts)
	}
	if err := s.start(ctx); err != nil {
		s.closeAll()
		s.wg.Wait()
		return nil, err
	}
	return s, nil
}

// start builds and starts everything; on error, what it started is left for closeAll.
func (s *Server) start(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	tel, err := telemetry.New(ctx, os.Getenv)
	if err != nil {
		return err
	}
	s.tel = tel
	if err := s.openCoord(); err != nil {
		return err
	}
	if err := s.startUpstream(); err != nil {
		return err
	}
	validator, err := service.NewValidator()
	if err != nil {
		return err
	}
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
	idem := s.scaleOut(&watch)
	if s.opts.watch != nil {
		s.opts.watch(&watch)
	}
	fleetOpts := service.FleetOptions{
		BatchSize:        cfg.FleetBatchSize,
		Concurrency:      cfg.FleetConcurrency,
		ProgressInterval: cfg.FleetProgressInterval,
	}
	s.services, err = service.New(service.Options{Upstream: s.up, Logger: log, Watch: watch, Fleet: fleetOpts})
	if err != nil {
		return err
	}

	if err := s.registerHubs(); err != nil {
		return err
	}
	s.sec, err = newSecurity(cfg, log, s.opts.clockOrReal())
	if err != nil {
		return err
	}

	// Spans exported: otelgrpc's stats handler makes one per call. Not exported: the request-id step only joins
	// each call to its caller's trace (for the logs), which costs a fraction of the handler.
	var trace func(context.Context) context.Context
	serverOpts := append(s.sec.grpcOptions(cfg), connOptions(cfg)...) // handshake, idle and keepalive bounds
	if s.tel.Tracing() {
		serverOpts = append(serverOpts, grpc.StatsHandler(s.tel.ServerHandler()))
	} else {
		trace = telemetry.ExtractTrace
	}
	shares, err := share.New(shareConfig(cfg), s.opts.clockOrReal(), s.tel.Registry)
	if err != nil {
		return err
	}
	unary, stream := interceptors(log, validator, cfg.DefaultCallTimeout, s.sec.guard, shares, trace)
	// Telemetry sits right after the request id: it sees every call, including those later steps refuse.
	unary = slices.Insert(unary, 1, s.tel.GRPC.UnaryServerInterceptor(), s.countUnary)
	stream = slices.Insert(stream, 1, s.tel.GRPC.StreamServerInterceptor(), s.countStream)
	unary = append(unary, idem) // idempotency keys innermost: after authorization, validation and the deadline
	s.grpc = grpc.NewServer(append(serverOpts,
		newMarkingCodec(), // malformed requests become INVALID_ARGUMENT in validation
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		// Reuse handler goroutines: a fresh goroutine per call starts with a 2 KiB stack and grows it through the
		// interceptor chain on every call (runtime.newstack was ~10% of the gateway's CPU); a worker's stack has
		// grown already. Calls beyond the workers still get goroutines of their own.
		grpc.NumStreamWorkers(streamWorkers),
	)...)
	// Registered through the in-process registrar too, so the REST mirror can run their unary calls directly.
	reg := inproc.NewRegistrar(s.grpc)
	pb.RegisterInstanceServiceServer(reg, s.services.Instance)
	pb.RegisterOrderServiceServer(reg, s.services.Order)
	pb.RegisterAppServiceServer(reg, s.services.App)
	pb.RegisterFleetServiceServer(reg, s.services.Fleet)
	s.health = newHealthService()
	s.setServing(false)
	if err := s.sec.followFiles(s.tel.Registry, s.applyServing); err != nil {
		return err
	}
	s.health.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	if s.sec.reflection(cfg) {
		reflection.Register(s.grpc)
	}
	s.tel.GRPC.InitializeMetrics(s.grpc)

	refused, err := connsRefused(s.tel)
	if err != nil {
		return err
	}
	grpcLis, err := listen(cfg, "grpc-addr", cfg.GRPCAddr, refusedBy(refused, "grpc"))
	if err != nil {
		return err
	}
	s.grpcAddr = grpcLis.Addr().String()
	s.serve("grpc", func() error { return s.grpc.Serve(grpcLis) })

	httpLis, err := listen(cfg, "http-addr", cfg.HTTPAddr, refusedBy(refused, "http"))
	if err != nil {
		return err
	}
	s.httpAddr = httpLis.Addr().String()
	// The mirror calls the same handlers through the same interceptors as gRPC callers, in process: unary calls run
	// directly in the HTTP handler's goroutine (no transport, no serialisation: about half the CPU of a REST call
	// went to the gRPC hop), streams over in-memory connections of their own (no TCP hop; held REST watch streams
	// cannot take the slots unary REST callers need, since those need none).
	s.gwLis = inproc.Listen()
	s.serve("grpc-mirror", func() error { return s.grpc.Serve(s.gwLis) })
	s.gwConns, err = inproc.Dial(s.gwLis, mirrorStreamConns,
		grpc.WithTransportCredentials(s.sec.mirrorCreds()), // TLS pinned to our own certificate when TLS is on
		grpc.WithStatsHandler(s.tel.ClientHandler()),       // the REST call and its gRPC hop are one trace
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return fmt.Errorf("connect the REST mirror to gRPC: %w", err)
	}
	gw, err := newGateway(ctx, inproc.NewChannel(reg, unary, s.gwConns, inproc.WithTracerProvider(s.tel.Exporting())), s.sec.guard, runtime.WithMiddlewares(telemetry.RouteMiddleware))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.tel.Handler())
	docs := apidocs.Handler() // Swagger UI on the OpenAPI, all embedded
	mux.Handle("/docs", docs)
	mux.Handle("/docs/", docs)
	api, err := restHandler(cfg, gw)
	if err != nil {
		return err
	}
	mux.Handle("/", api)
	// No WriteTimeout: it would cut long watch streams; each stream is bounded by its caller and by shutdown.
	// ReadHeaderTimeout also bounds the TLS handshake (net/http takes the shortest of its timeouts for it).
	s.http = &http.Server{Handler: s.instrumentHTTP(mux), ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout}
	if s.sec.tls != nil {
		s.http.TLSConfig = s.sec.httpTLS()
		s.serve("http", func() error { return s.http.ServeTLS(httpLis, "", "") })
	} else {
		s.serve("http", func() error { return s.http.Serve(httpLis) })
	}
	if cfg.MetricsAddr != "" {
		if err := s.startMetrics(); err != nil {
			return err
		}
	}

	if cfg.PprofAddr != "" {
		if s.pprof, err = pprofserver.Start(cfg.PprofAddr); err != nil {
			return err
		}
		log.Warn("serving /debug/pprof for operators", "addr", s.pprof.Addr())
	}

	probeCtx, cancel := context.WithCancel(context.Background())
	s.stopProbe = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.probe(probeCtx)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sec.pollFiles(probeCtx)
	}()
	log.Info("serving", "grpc", s.grpcAddr, "http", s.httpAddr, "upstream", s.upstreamName(),
		"tls", s.sec.tls != nil, "authentication", s.sec.guard.Enabled())
	return nil
}

// startUpstream creates the KooPhone client; without an endpoint it first starts the simulator on loopback and
// points the client at it over real HTTP, so the embedded default exercises the production client.
func (s *Server) startUpstream() error {
	cfg := s.cfg
	endpoint := cfg.Endpoint
	var auth upstream.Authenticator
	if cfg.Simulated() {
		simCfg := sim.DefaultConfig()
		simCfg.FleetSize = cfg.SimFleet
		simCfg.JobDuration = cfg.SimJobDuration
		simCfg.PrepareStep = cfg.SimPrepareStep
		simCfg.Logger = s.log.With("component", "sim")
		simCfg.Clock = s.opts.clockOrReal()
		if s.opts.sim != nil {
			s.opts.sim(&simCfg)
		}
		s.sim = sim.New(simCfg)
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen for the embedded simulator: %w", err)
		}
		s.simHTTP = &http.Server{Handler: s.sim, ReadHeaderTimeout: 10 * time.Second, ConnState: s.opts.simConn}
		s.serve("sim", func() error { return s.simHTTP.Serve(lis) })
		endpoint = "http://" + lis.Addr().String()
		creds := s.sim.Credentials()
		s.log.Warn("no KOOPHONE_ENDPOINT set: running on the embedded KooPhone simulator, not the real service",
			"simulator", endpoint, "phones", simCfg.FleetSize)
		auth = upstream.NewIAMPassword(upstream.IAMConfig{
			Endpoint:  endpoint,
			Domain:    creds.Domain,
			User:      creds.User,
			Password:  creds.Password,
			Project:   creds.ProjectName,
			Clock:     s.opts.clockOrReal(),
			Logger:    s.log.With("component", "iam"),
			OnRefresh: s.tel.Upstream.TokenRefresh,
		})
	} else {
		switch {
		case cfg.AuthToken != "":
			auth = upstream.NewStaticToken(cfg.AuthToken)
		case cfg.AK != "":
			auth = upstream.NewAKSK(cfg.AK, cfg.SK, cfg.ProjectID)
		default:
			auth = upstream.NewIAMPassword(upstream.IAMConfig{
				Endpoint:  cfg.IAMEndpoint,
				Domain:    cfg.IAMDomain,
				User:      cfg.IAMUser,
				Password:  cfg.IAMPassword,
				Project:   cfg.Project,
				Clock:     s.opts.clockOrReal(),
				Logger:    s.log.With("component", "iam"),
				OnRefresh: s.tel.Upstream.TokenRefresh,
			})
		}
	}
	upCfg := upstream.Config{
		Endpoint:  endpoint,
		Auth:      auth,
		Logger:    s.log.With("component", "upstream"),
		UserAgent: "koophone-gateway",
		Clock:     s.opts.clockOrReal(),
	}
	s.guard(&upCfg)
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

// Shutdown stops the server in the order that loses no call: health turns NOT_SERVING (load balancers stop
// sending), every watch stream ends with UNAVAILABLE (clients reconnect elsewhere), gRPC drains in-flight calls
// until ctx ends (then cuts them), the REST mirror drains, and last the KooPhone client and simulator close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.log.Info("shutting down")
		s.setServing(false)
		s.drain(ctx)
		s.health.stop()
		s.stopProbe()
		s.services.Close()
		stopped := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			// Calls still running now are cut: say how many, loudly, and make the exit code say so too.
			cut := s.active.Load()
			s.grpc.Stop()
			<-stopped
			if cut > 0 {
				s.log.Warn("shutdown grace period ended: calls cut", "calls", cut)
				s.shutdownErr = fmt.Errorf("%d calls cut at the end of the shutdown grace period", cut)
			}
		}
		if err := s.http.Shutdown(ctx); err != nil {
			s.shutdownErr = errors.Join(s.shutdownErr, fmt.Errorf("REST mirror shutdown: %w", err))
			_ = s.http.Close()
		}
		s.closeAll()
		s.wg.Wait()
		s.log.Info("stopped")
	})
	return s.shutdownErr
}

// closeAll releases what Start may have opened; each step tolerates the ones before it not having happened.
func (s *Server) closeAll() {
	if s.stopProbe != nil {
		s.stopProbe()
	}
	if s.gwConns != nil {
		s.gwConns.Close()
	}
	if s.grpc != nil {
		s.grpc.Stop()
	}
	if s.http != nil {
		_ = s.http.Close()
	}
	if s.services != nil {
		s.services.Close()
	}
	if s.pprof != nil {
		_ = s.pprof.Close()
	}
	if s.up != nil {
		s.up.Close()
	}
	if s.simHTTP != nil {
		_ = s.simHTTP.Close()
	}
	if s.metrics != nil {
		_ = s.metrics.Close()
	}
	if s.tel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.tel.Shutdown(ctx) // flushes the last spans
		cancel()
	}
	if s.sec != nil {
		_ = s.sec.auditClose()
	}
	if s.coord != nil {
		_ = s.coord.Close() // after the hubs: their pollers release their leases first
	}
}
