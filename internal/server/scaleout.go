package server

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc"

	"github.com/koophone-gateway/koophone-gateway/internal/coord"
	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Scale-out wiring: with KOOPHONE_REDIS_URL the replicas share pollers, the upstream quota and idempotency keys
// through internal/coord; without it the quota and the keys are this replica's own.

// openCoord connects to Redis when configured. It does not wait for Redis: a replica that starts while Redis is
// down runs degraded and joins the others when Redis answers.
func (s *Server) openCoord() error {
	if s.cfg.RedisURL == "" {
		return nil
	}
	c, err := coord.Open(coord.Config{URL: s.cfg.RedisURL, LeaseTTL: s.cfg.RedisLeaseTTL, Clock: s.opts.clockOrReal()})
	if err != nil {
		return err
	}
	s.coord = c
	return nil
}

// upstreamHTTP is the KooPhone client's HTTP client: the shared quota (or this replica's, without Redis) in front
// of the transport. Nil when no quota is configured.
func (s *Server) upstreamHTTP() (*http.Client, error) {
	if s.cfg.QuotaReadRate == 0 && s.cfg.QuotaWriteRate == 0 {
		return nil, nil
	}
	qc := coord.QuotaConfig{
		Read:     coord.Rate{Events: s.cfg.QuotaReadRate},
		Write:    coord.Rate{Events: s.cfg.QuotaWriteRate},
		Replicas: s.cfg.QuotaReplicas,
	}
	var q *coord.Quota
	var err error
	if s.coord != nil {
		q, err = s.coord.NewQuota(qc)
	} else {
		qc.Replicas = 1 // alone: the whole quota is this replica's
		q, err = coord.NewLocalQuota(qc, s.opts.clockOrReal())
	}
	if err != nil {
		return nil, fmt.Errorf("--quota-*: %w", err)
	}
	return &http.Client{Transport: coord.QuotaTransport{Next: upstream.NewTransport(), Quota: q, Clock: s.opts.clockOrReal()}}, nil
}

// scaleOut returns the watch hubs' peer and the idempotency interceptor.
func (s *Server) scaleOut(watch *service.WatchOptions) grpc.UnaryServerInterceptor {
	var store idempotency.Store = idempotency.NewMemory(s.opts.clockOrReal(), s.cfg.IdempotencyMaxKeys)
	if s.coord != nil && s.cfg.RedisURL != "" {
		watch.Peer = s.coord
		store = s.coord.KeyStore()
	}
	return idempotency.UnaryServerInterceptor(idempotency.Options{Store: store, TTL: s.cfg.IdempotencyTTL, Clock: s.opts.clockOrReal()})
}

// CoordStatus is the replica's view of Redis (degraded or not, counters), for readiness details and metrics;
// ok is false when Redis is not configured.
func (s *Server) CoordStatus() (coord.Status, bool) {
	if s.coord == nil || s.cfg.RedisURL == "" {
		return coord.Status{}, false
	}
	return s.coord.Status(), true
}
