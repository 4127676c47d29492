package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Readiness probing. The gateway is ready once KooPhone has answered a cheap read (BatchShowSku, which has no side
// effects); after that it is re-checked now and then, and two failures in a row make it NOT_SERVING again, so
// one lost packet does not pull every replica out of a load balancer at once.
const (
	probeTimeout        = 5 * time.Second
	probeRetry          = time.Second // while not ready yet
	probeInterval       = 30 * time.Second
	probeFailuresToDrop = 2
)

// LivenessService is a health service name that is SERVING for as long as the process serves gRPC, whatever
// KooPhone's state: a liveness probe on it restarts a wedged gateway, never one that merely waits for KooPhone.
const LivenessService = "liveness"

// setServing records whether KooPhone answers; health is SERVING while it does and the credential files are usable.
func (s *Server) setServing(ok bool) {
	s.upstreamOK.Store(ok)
	s.applyServing()
}

// applyServing sets health from KooPhone's state and the credential files' (a broken keys file, policy or client CA
// refuses every call, so the replica must leave the load balancer); the files call it when they break or recover.
// Once Shutdown began it is NOT_SERVING whatever they say.
func (s *Server) applyServing() {
	s.servingMu.Lock()
	defer s.servingMu.Unlock()
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.upstreamOK.Load() && s.sec.filesReady() && !s.stopping.Load() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	for _, name := range service.ServiceNames() {
		s.health.SetServingStatus(name, st)
	}
}

func (s *Server) probe(ctx context.Context) {
	ready, failures := false, 0
	for {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		_, err := s.up.BatchShowSku(pctx, "0")
		cancel()
		if ctx.Err() != nil {
			return
		}
		ue, _ := upstream.AsError(err)
		switch {
		case err == nil:
			failures = 0
			if !ready {
				ready = true
				s.setServing(true)
				s.log.Info("KooPhone answered: serving")
			}
		case upstream.CredentialRefused(err):
			// Every call would fail the same way: no replica with a refused credential should get traffic.
			failures = 0
			if ready {
				ready = false
				s.setServing(false)
			}
			s.log.Error("KooPhone refuses the gateway's credential: NOT_SERVING", "err", err)
		case ue != nil && (ue.Kind == upstream.KindCircuitOpen || ue.Kind == upstream.KindRateLimited):
			// KooPhone itself is failing (or this replica is at its rate limit), for every replica alike: taking
			// this one out of the load balancer would only turn fast, explained answers into connection errors.
			// /readyz shows the breaker.
		case ready:
			failures++
			s.log.Warn("readiness probe failed", "err", err, "failures", failures)
			if failures >= probeFailuresToDrop {
				ready = false
				s.setServing(false)
			}
		default:
			s.log.Warn("KooPhone not answering yet: NOT_SERVING", "err", err)
		}
		wait := probeInterval
		if !ready {
			wait = probeRetry
		}
		if !clock.Sleep(clock.Real{}, wait, ctx.Done()) {
			return
		}
	}
}

// readyz answers 200 while health says SERVING, 503 otherwise. It looks at the credential files first, so a file
// broken while no call came is seen at once.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	files := s.sec.checkFiles()
	res, err := s.health.Check(r.Context(), &healthpb.HealthCheckRequest{})
	breaker := "upstream circuit breaker: " + s.up.BreakerState() + "\n"
	if files != nil {
		breaker += files.Error() + "\n"
	}
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		http.Error(w, "not ready\n"+breaker, http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n" + breaker))
	if st, ok := s.CoordStatus(); ok {
		// Degraded is still ready: the replica serves on its own (see internal/coord); the detail says so.
		_, _ = fmt.Fprintln(w, st.Detail())
	}
}

// healthService is grpc's health server plus an end for Watch streams at shutdown: without it, a load balancer's
// open health watch would hold GracefulStop until the grace period runs out. Each watch gets NOT_SERVING, then
// ends with UNAVAILABLE.
type healthService struct {
	*health.Server
	stopping chan struct{} // closed when shutdown begins
}

func newHealthService() *healthService {
	return &healthService{Server: health.NewServer(), stopping: make(chan struct{})}
}

// stop ends every Watch stream; it is called once, by Shutdown.
func (h *healthService) stop() {
	h.Shutdown()
	close(h.stopping)
}

func (h *healthService) Watch(in *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(in, &healthWatchStream{Health_WatchServer: stream, ctx: ctx})
	select {
	case <-h.stopping:
		if stream.Context().Err() == nil {
			// The inner loop may have seen the cancel before the NOT_SERVING update: say it once more.
			_ = stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING})
			return status.Error(codes.Unavailable, "the server is shutting down")
		}
	default:
	}
	return err
}

type healthWatchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (s *healthWatchStream) Context() context.Context { return s.ctx }
