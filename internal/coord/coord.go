// Package coord lets several gateway replicas share what must not be multiplied by their number: the poller of
// each watched key (stream.Peer), the upstream rate limit (Quota), each caller's requests_per_second share
// (ShareLimiter) and the idempotency keys of writes (idempotency.Store). It talks to Redis through go-redis; without KOOPHONE_REDIS_URL it is not used at all.
//
// Redis is a dependency that can fail. Once an operation finds it down (refused, timed out, hung), the replica
// is degraded: every call takes its local branch at once, without asking Redis (it polls for itself, spends a
// local share of the quota, refuses keyed writes), and one goroutine probes Redis in the background with backoff.
// The first probe that answers ends the degraded mode. See health.go.
package coord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// Config is how to reach Redis and the timing of leases and probes.
type Config struct {
	// URL is a Redis URL: redis://[user:pass@]host:port/db (rediss:// for TLS) for one node,
	// redis://host:port?master_name=NAME&addr=host2:port for Sentinel (the host is a sentinel), and
	// redis+cluster://host:port?addr=host2:port for a Cluster (rediss+cluster:// with TLS).
	URL string
	// Prefix starts every Redis key and channel, so gateways of different tenants can share a Redis. Default "koophone".
	Prefix string
	// ID names this replica among the others (lease holder, member of the live set). Default: the host name and
	// a random suffix, so two processes on one host never share it.
	ID string
	// LeaseTTL is how long a poller's lease outlives its holder: the failover time after a replica dies. It is
	// also how long a replica stays in the live set after its last heartbeat. Default 5s.
	LeaseTTL time.Duration
	// Handoff is how long a replica that does not own a key (by rendezvous hashing) waits for its owner to take
	// the free lease before taking it itself. Default LeaseTTL/3.
	Handoff time.Duration
	// OpTimeout bounds one Redis operation, so a Redis that hangs degrades the replica instead of stalling it.
	// Only the operations that find Redis down pay it; the calls after them do not ask Redis. Default 1s.
	OpTimeout time.Duration
	// ProbeMin and ProbeMax bound the wait between two probes while Redis is down: the first comes after
	// ProbeMin, each next one waits twice as long, up to ProbeMax. Defaults 250ms and 5s.
	ProbeMin, ProbeMax time.Duration
	Clock              clock.Clock  // default clock.Real{}; leases expire on Redis's clock, renewals and probes are timed on this one
	Log                *slog.Logger // transitions of Redis up and down, the eviction check; default: discarded
}

// Defaults of LeaseTTL and OpTimeout (the gateway's configuration table shows them as its own).
const (
	DefaultLeaseTTL  = 5 * time.Second
	DefaultOpTimeout = time.Second
)

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "koophone"
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		var tok [6]byte
		_, _ = rand.Read(tok[:])
		c.ID = strings.Trim(host+"-"+hex.EncodeToString(tok[:]), "-")
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Handoff <= 0 {
		c.Handoff = c.LeaseTTL / 3
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.ProbeMin <= 0 {
		c.ProbeMin = 250 * time.Millisecond
	}
	if c.ProbeMax < c.ProbeMin {
		c.ProbeMax = max(c.ProbeMin, 5*time.Second)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Coord is one replica's connection to the others. Its methods are safe for concurrent use.
type Coord struct {
	cfg   Config
	rdb   redis.UniversalClient
	id    string // this replica's lease token and member name
	log   *slog.Logger
	stats counters

	up        atomic.Bool  // Redis answered the last operation or probe; false: degraded, local branches
	since     atomic.Int64 // unix nanos of the last change of up
	wake      chan struct{}
	evictable atomic.Int32 // result of the eviction check: evictUnknown, evictNo, evictYes

	members members
	leases  leases
	follow  followers

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open parses cfg.URL, asks Redis once (bounded by OpTimeout) and starts the lease renewer and the prober. It
// does not fail when Redis is down: the replica then starts degraded and joins the others when a probe answers.
//
//nolint:contextcheck // a Coord lives from Open to Close, for no caller: every Redis op has the op timeout
func Open(cfg Config) (*Coord, error) {
	cfg = cfg.withDefaults()
	// go-redis would print every failed dial; the transitions are logged once each instead (health.go).
	redis.SetLogger(quiet{})
	opts, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = cfg.OpTimeout, cfg.OpTimeout, cfg.OpTimeout
	c := &Coord{cfg: cfg, rdb: redis.NewUniversalClient(opts), id: cfg.ID, log: cfg.Log,
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
	c.rdb.AddHook(countHook{&c.stats.commands})
	c.leases.held = map[string]*lease{}
	c.leases.free = map[string]time.Time{}
	c.follow.subs = map[string]map[*follower]struct{}{}
	c.follow.stale = map[string]struct{}{}
	c.evictable.Store(evictUnchecked)
	c.since.Store(cfg.Clock.Now().UnixNano())
	// Down until a probe answers: the first one, here, is bounded by OpTimeout.
	if c.probe() != nil {
		c.stats.downs.Add(1)
		c.log.Error("redis unreachable at start: running degraded (own pollers, local quota and caller rate shares, keyed writes refused); probing in the background")
	}
	c.wg.Add(2)
	go c.renewLoop()
	go c.probeLoop()
	return c, nil
}

// ParseURL turns a KOOPHONE_REDIS_URL into go-redis options (see Config.URL). Errors never include the URL, which
// may hold a password.
func ParseURL(raw string) (*redis.UniversalOptions, error) {
	if raw == "" {
		return nil, errors.New("KOOPHONE_REDIS_URL: empty")
	}
	if rest, ok := strings.CutPrefix(raw, "redis+cluster://"); ok {
		return clusterOpts("redis://" + rest)
	}
	if rest, ok := strings.CutPrefix(raw, "rediss+cluster://"); ok {
		return clusterOpts("rediss://" + rest)
	}
	if strings.Contains(raw, "master_name=") {
		o, err := redis.ParseFailoverURL(raw)
		if err != nil {
			return nil, urlError(err)
		}
		return &redis.UniversalOptions{
			Addrs: o.SentinelAddrs, MasterName: o.MasterName, SentinelUsername: o.SentinelUsername,
			SentinelPassword: o.SentinelPassword, Username: o.Username, Password: o.Password, DB: o.DB,
			TLSConfig: o.TLSConfig,
		}, nil
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		return nil, urlError(err)
	}
	return &redis.UniversalOptions{
		Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig,
	}, nil
}

func clusterOpts(raw string) (*redis.UniversalOptions, error) {
	o, err := redis.ParseClusterURL(raw)
	if err != nil {
		return nil, urlError(err)
	}
	return &redis.UniversalOptions{
		Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig, IsClusterMode: true,
	}, nil
}

// urlError keeps go-redis's reason but not the URL (url.Error would quote it, password included).
func urlError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil && strings.Contains(err.Error(), "://") {
		err = ue.Unwrap()
	}
	return fmt.Errorf("KOOPHONE_REDIS_URL: %w", err)
}

// Close gives up every lease this replica holds, leaves the live set and closes the connections.
func (c *Coord) Close() error { return c.shutdown(true) }

// shutdown stops the loops; with release it hands back the leases and the replica's place in the live set
// first (a graceful stop), without it the replica vanishes as if it died (tests).
func (c *Coord) shutdown(release bool) error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	c.follow.close() // ends the dispatcher
	c.wg.Wait()
	if release {
		c.releaseAll()
	}
	return c.rdb.Close()
}

// Client is the Redis client, for the idempotency store and the limiter.
func (c *Coord) Client() redis.UniversalClient { return c.rdb }

// ID is this replica's name among the others.
func (c *Coord) ID() string { return c.id }

func (c *Coord) key(parts ...string) string {
	return c.cfg.Prefix + ":" + strings.Join(parts, ":")
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
