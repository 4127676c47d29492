// Package coord lets several gateway replicas share what must not be multiplied by their number: the poller of
// each watched key (stream.Peer), the upstream rate limit (Limiter) and the idempotency keys of writes
// (idempotency.Store). It talks to Redis through go-redis; without KOOPHONE_REDIS_URL it is not used at all.
//
// When Redis cannot be reached the replica degrades instead of failing: it polls for itself, spends a local share
// of the quota, and refuses idempotent writes (fail closed). Status reports the degraded mode for readiness
// details and metrics, and it ends by itself when Redis answers again.
package coord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// Config is how to reach Redis and the timing of leases.
type Config struct {
	// URL is a Redis URL: redis://[user:pass@]host:port/db (rediss:// for TLS) for one node,
	// redis://host:port?master_name=NAME&addr=host2:port for Sentinel (the host is a sentinel), and
	// redis+cluster://host:port?addr=host2:port for a Cluster (rediss+cluster:// with TLS).
	URL string
	// Prefix starts every Redis key and channel, so gateways of different tenants can share a Redis. Default "koophone".
	Prefix string
	// LeaseTTL is how long a poller's lease outlives its holder: the failover time after a replica dies. Default 5s.
	LeaseTTL time.Duration
	// OpTimeout bounds one Redis operation, so a Redis that hangs degrades the replica instead of stalling it. Default 1s.
	OpTimeout time.Duration
	Clock     clock.Clock // default clock.Real{}; leases expire on Redis's clock, renewals are timed on this one
}

// DefaultLeaseTTL is LeaseTTL's default (the gateway's configuration table shows it as its own).
const DefaultLeaseTTL = 5 * time.Second

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "koophone"
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	return c
}

// Coord is one replica's connection to the others. Its methods are safe for concurrent use.
type Coord struct {
	cfg   Config
	rdb   redis.UniversalClient
	id    string // this replica's lease token
	stats counters

	degraded atomic.Bool
	since    atomic.Int64 // unix nanos of the last change of degraded

	leases leases
	follow followers

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open parses cfg.URL and starts the lease renewer. It does not wait for Redis: a replica starts degraded
// when Redis is down, and joins the others when it answers.
func Open(cfg Config) (*Coord, error) {
	cfg = cfg.withDefaults()
	// go-redis would print every failed dial; the degraded mode is reported through Status instead.
	redis.SetLogger(quiet{})
	opts, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = cfg.OpTimeout, cfg.OpTimeout, cfg.OpTimeout
	var tok [12]byte
	_, _ = rand.Read(tok[:])
	c := &Coord{cfg: cfg, rdb: redis.NewUniversalClient(opts), id: hex.EncodeToString(tok[:]), stop: make(chan struct{})}
	c.leases.held = map[string]*lease{}
	c.follow.subs = map[string]map[*follower]struct{}{}
	c.wg.Add(1)
	go c.renewLoop()
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

// Close gives up every lease this replica holds and closes the connections.
func (c *Coord) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	c.follow.close() // ends the dispatcher
	c.wg.Wait()
	c.leases.mu.Lock()
	keys := make([]string, 0, len(c.leases.held))
	for k := range c.leases.held {
		keys = append(keys, k)
	}
	c.leases.mu.Unlock()
	for _, k := range keys {
		c.Release(k)
	}
	return c.rdb.Close()
}

// Client is the Redis client, for the idempotency store and the limiter.
func (c *Coord) Client() redis.UniversalClient { return c.rdb }

// opCtx bounds one Redis operation.
func (c *Coord) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.OpTimeout)
}

// observe records whether Redis answered. redis.Nil and script replies are answers; only failures to reach
// Redis (or a Redis that refuses work, e.g. LOADING) make the replica degraded.
func (c *Coord) observe(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		if c.degraded.CompareAndSwap(true, false) {
			c.since.Store(c.cfg.Clock.Now().UnixNano())
			c.stats.recoveries.Add(1)
		}
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	c.stats.errors.Add(1)
	if c.degraded.CompareAndSwap(false, true) {
		c.since.Store(c.cfg.Clock.Now().UnixNano())
		c.stats.degradations.Add(1)
	}
	return err
}

// Status is the replica's view of Redis, for readiness details and metrics.
type Status struct {
	Degraded bool      // Redis is unreachable: local pollers, a local quota share, idempotent writes refused
	Since    time.Time // when Degraded last changed (zero: never)
	Leases   int       // keys this replica polls for everyone
	Stats
}

// Stats are the counters of coordination since Open.
type Stats struct {
	Errors       uint64 // Redis operations that failed to reach Redis
	Degradations uint64 // switches into degraded mode
	Recoveries   uint64 // switches back
	Published    uint64 // snapshots published to the other replicas
	Received     uint64 // snapshots received from the other replicas
	LocalQuota   uint64 // upstream calls admitted by the local share while degraded
}

type counters struct {
	errors, degradations, recoveries, published, received, localQuota atomic.Uint64
}

// Status reports the current mode and counters; it is cheap (no Redis call).
func (c *Coord) Status() Status {
	s := Status{Degraded: c.degraded.Load()}
	if ns := c.since.Load(); ns != 0 {
		s.Since = time.Unix(0, ns)
	}
	c.leases.mu.Lock()
	s.Leases = len(c.leases.held)
	c.leases.mu.Unlock()
	s.Stats = Stats{
		Errors: c.stats.errors.Load(), Degradations: c.stats.degradations.Load(), Recoveries: c.stats.recoveries.Load(),
		Published: c.stats.published.Load(), Received: c.stats.received.Load(), LocalQuota: c.stats.localQuota.Load(),
	}
	return s
}

// Detail is a one-line description of the mode, for readiness details.
func (s Status) Detail() string {
	if s.Degraded {
		return "redis unreachable: local pollers, local quota share, idempotent writes refused"
	}
	return "redis: shared pollers, shared quota, shared idempotency keys"
}

func (c *Coord) key(parts ...string) string {
	return c.cfg.Prefix + ":" + strings.Join(parts, ":")
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
