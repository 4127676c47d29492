package server

import (
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/telemetry"
)

// Keepalive: the server pings a connection silent for keepalivePing and closes it when no answer comes within
// keepaliveAck (a peer that vanished); a client may ping every minClientPing at most, even without calls, so idle
// watchers behind NATs keep their connection. A client that pings faster is sent GOAWAY (too_many_pings).
const (
	keepalivePing = 2 * time.Minute
	keepaliveAck  = 20 * time.Second
	minClientPing = 10 * time.Second
)

// connOptions are the gRPC server's bounds on connections: the handshake deadline (grpc-go's default holds a
// connection that never starts TLS for 120s), idle connections closed (one that never makes a call included),
// the keepalive policy, and MaxConnectionAge, which makes long-lived clients reconnect now and then so they spread
// over new replicas.
func connOptions(cfg *config.Config) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ConnectionTimeout(cfg.HandshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: cfg.IdleTimeout,
			Time:              keepalivePing, Timeout: keepaliveAck,
			MaxConnectionAge: cfg.MaxConnectionAge, MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minClientPing, PermitWithoutStream: true}),
	}
}

// connsRefused counts connections closed at once because their source held its bound, per listener.
func connsRefused(tel *telemetry.Telemetry) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: telemetry.Namespace, Subsystem: "connections",
		Name: "refused_total",
		Help: "Connections closed as soon as accepted because their source (IPv4 address or IPv6 /64) held --max-connections-per-source, by listener."},
		[]string{"listener"})
	return c, tel.Registry.Register(c)
}

// refusedBy is listen's callback for the listener named flag.
func refusedBy(c *prometheus.CounterVec, flag string) func(net.Addr) {
	if c == nil {
		return nil
	}
	inc := c.WithLabelValues(flag).Inc
	return func(net.Addr) { inc() }
}

// listen opens the listener of --flag (named name in the refused-connections metric) with the connection bounds,
// sharing one metric of refused connections.
func (s *Server) listen(flag, addr, name string) (net.Listener, error) {
	if s.refused == nil {
		c, err := connsRefused(s.tel)
		if err != nil {
			return nil, err
		}
		s.refused = c
	}
	return listen(s.cfg, flag, addr, refusedBy(s.refused, name))
}
