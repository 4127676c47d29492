// Package grpcopts holds the gateway's gRPC server settings (connection bounds, keepalive, stream workers), in a
// package of their own so loadbench's bare watcher floor serves with exactly the gateway's transport without
// importing the gateway (and its generated protobuf code, which the harness has from the public client).
package grpcopts

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/koophone-gateway/koophone-gateway/internal/config"
)

// Keepalive: the server pings a connection silent for keepalivePing and closes it when no answer comes within
// keepaliveAck (a peer that vanished); a client may ping every minClientPing at most, even without calls, so idle
// watchers behind NATs keep their connection. A client that pings faster is sent GOAWAY (too_many_pings).
const (
	keepalivePing = 2 * time.Minute
	keepaliveAck  = 20 * time.Second
	minClientPing = 10 * time.Second
)

// conn is the gRPC server's bounds on connections: the handshake deadline (grpc-go's default holds a
// connection that never starts TLS for 120s), idle connections closed (one that never makes a call included),
// the keepalive policy, and MaxConnectionAge, which makes long-lived clients reconnect now and then so they spread
// over new replicas.
func conn(cfg *config.Config) []grpc.ServerOption {
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

// streamWorkers is how many goroutines the gRPC server keeps to run handlers on; each idle one holds its stack
// (8-16 KiB).
const streamWorkers = 256

// Server is the gRPC server's connection and stream settings from cfg: everything but TLS, the
// interceptors and the codec. loadbench's bare watcher floor serves with them too, so the floor and the gateway
// differ by the gateway's own work only.
func Server(cfg *config.Config) []grpc.ServerOption {
	return append(conn(cfg), // handshake, idle and keepalive bounds
		// A cap on header (metadata) size far below grpc-go's 16 MiB default, which lets a few calls hold gigabytes.
		grpc.MaxHeaderListSize(cfg.GRPCMaxHeaderBytes),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		// Reuse handler goroutines: a fresh goroutine per call starts with a 2 KiB stack and grows it through the
		// interceptor chain on every call (runtime.newstack was ~10% of the gateway's CPU); a worker's stack has
		// grown already. Calls beyond the workers still get goroutines of their own.
		grpc.NumStreamWorkers(streamWorkers),
	)
}
