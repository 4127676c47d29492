package server

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/grpc"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/coord"
	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
	"github.com/koophone-gateway/koophone-gateway/internal/share"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Scale-out wiring: with KOOPHONE_REDIS_URL the replicas share pollers, the upstream quota, the callers' rate
// shares and idempotency keys through internal/coord; without it the quota, the shares and the keys are this
// replica's own.

// openCoord connects to Redis when configured and exports its series. It waits for one answer at most
// --redis-timeout: a replica that starts while Redis is down runs degraded and joins the others when a background
// probe finds Redis answering.
func (s *Server) openCoord(context.Context) error {
	if s.cfg.RedisURL == "" {
		return nil
	}
	c, err := coord.Open(coord.Config{URL: s.cfg.RedisURL, LeaseTTL: s.cfg.RedisLeaseTTL, OpTimeout: s.cfg.RedisTimeout,
		Clock: s.opts.clockOrReal(), Log: s.log.With("component", "redis")})
	if err != nil {
		return err
	}
	s.coord = c
	s.closers.push("coordination", ignoreCtx(c.Close)) // after the hubs: their pollers release their leases first
	return s.tel.RegisterRedis(c.Status)
}

// sharedQuota makes the --upstream-*-rate budget one for all replicas when they share Redis: the client waits on
// the Redis quota (GCRA; a 429's Retry-After holds back every replica) instead of a limiter of its own. While Redis
// is down each replica spends 1/--quota-replicas of the budget locally.
func (s *Server) sharedQuota(c *upstream.Config) error {
	if s.coord == nil || (s.cfg.UpstreamReadRate <= 0 && s.cfg.UpstreamWriteRate <= 0) {
		return nil
	}
	q, err := s.coord.NewQuota(coord.QuotaConfig{
		Read:     quotaRate(s.cfg.UpstreamReadRate, s.cfg.UpstreamReadBurst),
		Write:    quotaRate(s.cfg.UpstreamWriteRate, s.cfg.UpstreamWriteBurst),
		Replicas: s.cfg.QuotaReplicas,
	})
	if err != nil {
		return fmt.Errorf("shared upstream quota: %w", err)
	}
	c.Limiter = q
	return nil
}

// shareLimiter makes each caller's requests_per_second share one for all replicas when they share Redis (GCRA
// under share:<principal>); nil leaves the shares their default, this replica's own buckets. While Redis is down
// each replica allows 1/--quota-replicas of every caller's rate. The concurrency shares stay per replica.
func (s *Server) shareLimiter() share.RateLimiter {
	if s.coord == nil {
		return nil
	}
	return s.coord.NewShareLimiter(share.NewLocal(s.opts.clockOrReal()), s.cfg.QuotaReplicas)
}

// quotaRate turns calls per second (possibly fractional) into a GCRA rate per minute; zero or less is unlimited.
func quotaRate(perSec float64, burst int) coord.Rate {
	if perSec <= 0 {
		return coord.Rate{}
	}
	return coord.Rate{Events: max(1, int(math.Round(perSec*60))), Per: time.Minute, Burst: max(burst, 1)}
}

// idempotency is the chain's idempotency step: its keys in Redis when the replicas share it, else in memory.
func (s *Server) idempotency() grpc.UnaryServerInterceptor {
	var store idempotency.Store = idempotency.NewMemory(s.opts.clockOrReal(), s.cfg.IdempotencyMaxKeys)
	if s.coord != nil { // set only when Redis is configured
		store = s.coord.KeyStore()
	}
	return idempotency.UnaryServerInterceptor(idempotency.Options{Store: store, TTL: s.cfg.IdempotencyTTL,
		Clock: s.opts.clockOrReal(), Scope: callerScope})
}

// callerScope keeps each authenticated caller's idempotency keys apart; without authentication all callers share.
func callerScope(ctx context.Context) string {
	if p, ok := auth.PrincipalFrom(ctx); ok {
		return p.Name
	}
	return ""
}

// CoordStatus is the replica's view of Redis (degraded or not, counters), for readiness details and metrics;
// ok is false when Redis is not configured.
func (s *Server) CoordStatus() (coord.Status, bool) {
	if s.coord == nil {
		return coord.Status{}, false
	}
	return s.coord.Status(), true
}
