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
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/coord"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// serviceNames are the names health reports on, besides the server as a whole ("").
var serviceNames = []string{
	pb.InstanceService_ServiceDesc.ServiceName,
	pb.OrderService_ServiceDesc.ServiceName,
	pb.AppService_ServiceDesc.ServiceName,
}

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
	grpc     *grpc.Server
	health   *healthService
	gwConn   *grpc.ClientConn
	http     *http.Server

	grpcAddr, httpAddr string
	stopProbe          context.CancelFunc
	wg                 sync.WaitGroup // serving and probing goroutines
	shutdownOnce       sync.Once
	shutdownErr        error
}

// Option adjusts what Start builds; tests use them to put the simulator and the streams on a fake clock.
type Option func(*options)

type options struct {
	clock clock.Clock
	sim   func(*sim.Config)
	watch func(*service.WatchOptions)
}

// WithClock runs every time-dependent part Start builds (the embedded simulator, the IAM token cache, the KooPhone
// client's signing and back-off, the streams' polling) on c, so a test's fake clock is the only time they see.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

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
		Clock:         s.opts.clockOrReal(),
	}
	idem := s.scaleOut(&watch)
	if s.opts.watch != nil {
		s.opts.watch(&watch)
	}
	s.services, err = service.New(service.Options{Upstream: s.up, Logger: log, Watch: watch})
	if err != nil {
		return err
	}

	unary, stream := interceptors(log, validator, cfg.DefaultCallTimeout)
	unary = append(unary, idem) // innermost: after validation and the default deadline
	s.grpc = grpc.NewServer(
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		// Let clients ping every 10s even without calls, so long-idle watchers behind NATs keep their connection.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	pb.RegisterInstanceServiceServer(s.grpc, s.services.Instance)
	pb.RegisterOrderServiceServer(s.grpc, s.services.Order)
	pb.RegisterAppServiceServer(s.grpc, s.services.App)
	s.health = newHealthService()
	s.setServing(false)
	s.health.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)

	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen on --grpc-addr %s: %w", cfg.GRPCAddr, err)
	}
	s.grpcAddr = grpcLis.Addr().String()
	s.serve("grpc", func() error { return s.grpc.Serve(grpcLis) })

	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr %s: %w", cfg.HTTPAddr, err)
	}
	s.httpAddr = httpLis.Addr().String()
	// The mirror calls the gRPC server over loopback, so REST callers meet the same interceptors.
	s.gwConn, err = grpc.NewClient(loopback(s.grpcAddr),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return fmt.Errorf("connect the REST mirror to gRPC: %w", err)
	}
	gw, err := newGateway(ctx, s.gwConn)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("/", limitBody(cfg.HTTPMaxBodyBytes, gw))
	// No WriteTimeout: it would cut long watch streams; each stream is bounded by its caller and by shutdown.
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	s.serve("http", func() error { return s.http.Serve(httpLis) })

	probeCtx, cancel := context.WithCancel(context.Background())
	s.stopProbe = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.probe(probeCtx)
	}()
	log.Info("serving", "grpc", s.grpcAddr, "http", s.httpAddr, "upstream", s.upstreamName())
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
		s.simHTTP = &http.Server{Handler: s.sim, ReadHeaderTimeout: 10 * time.Second}
		s.serve("sim", func() error { return s.simHTTP.Serve(lis) })
		endpoint = "http://" + lis.Addr().String()
		creds := s.sim.Credentials()
		s.log.Warn("no KOOPHONE_ENDPOINT set: running on the embedded KooPhone simulator, not the real service",
			"simulator", endpoint, "phones", simCfg.FleetSize)
		auth = upstream.NewIAMPassword(upstream.IAMConfig{
			Endpoint: endpoint,
			Domain:   creds.Domain,
			User:     creds.User,
			Password: creds.Password,
			Project:  creds.ProjectName,
			Clock:    s.opts.clockOrReal(),
			Logger:   s.log.With("component", "iam"),
		})
	} else {
		switch {
		case cfg.AuthToken != "":
			auth = upstream.NewStaticToken(cfg.AuthToken)
		case cfg.AK != "":
			auth = upstream.NewAKSK(cfg.AK, cfg.SK, cfg.ProjectID)
		default:
			auth = upstream.NewIAMPassword(upstream.IAMConfig{
				Endpoint: cfg.IAMEndpoint,
				Domain:   cfg.IAMDomain,
				User:     cfg.IAMUser,
				Password: cfg.IAMPassword,
				Project:  cfg.Project,
				Clock:    s.opts.clockOrReal(),
				Logger:   s.log.With("component", "iam"),
			})
		}
	}
	hc, err := s.upstreamHTTP()
	if err != nil {
		return err
	}
	up, err := upstream.New(upstream.Config{
		Endpoint:   endpoint,
		Auth:       auth,
		HTTPClient: hc,
		Logger:     s.log.With("component", "upstream"),
		UserAgent:  "koophone-gateway",
		Clock:      s.opts.clockOrReal(),
	})
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
			s.grpc.Stop()
			<-stopped
		}
		if err := s.http.Shutdown(ctx); err != nil {
			s.shutdownErr = fmt.Errorf("REST mirror shutdown: %w", err)
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
	if s.gwConn != nil {
		_ = s.gwConn.Close()
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
	if s.up != nil {
		s.up.Close()
	}
	if s.simHTTP != nil {
		_ = s.simHTTP.Close()
	}
	if s.coord != nil {
		_ = s.coord.Close() // after the hubs: their pollers release their leases first
	}
}

// loopback turns a listen address into one to dial: an unspecified host becomes 127.0.0.1.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
