package coord

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Quota is the upstream client's Limiter when the replicas share Redis.
var _ upstream.Limiter = (*Quota)(nil)

// ErrQuotaWait is matched by Wait's error when the caller's deadline would pass before its turn: it is the upstream
// client's own rate-limit refusal, so the service maps both the same way (RESOURCE_EXHAUSTED with RetryInfo).
var ErrQuotaWait = upstream.ErrRateLimited

// Rate is one budget: Events per Per, with bursts of up to Burst (default Events).
type Rate struct {
	Events int
	Per    time.Duration
	Burst  int
}

// QuotaConfig is the tenant's upstream budget, shared by every replica.
type QuotaConfig struct {
	Read, Write Rate
	// Replicas is how many replicas share the budget: while Redis is down each one spends Rate/Replicas on its own,
	// so together they still stay within it. Default 1.
	Replicas int
}

// Quota is the shared upstream budget: GCRA in Redis (redis_rate), one key for reads and one for writes, plus
// a hold that a 429's Retry-After puts on every replica. While Redis is down it falls back to a local share at
// once (the hold of this replica still applies).
type Quota struct {
	c      *Coord
	rl     *redis_rate.Limiter
	limits [2]redis_rate.Limit // by write
	local  upstream.Limiter    // this replica's share, spent while Redis is down
	clk    clock.Clock

	mu   sync.Mutex
	hold time.Time // this replica's own hold, so a 429 holds it back even while Redis is down
}

// NewQuota returns the shared budget. A zero Rate means unlimited for that kind.
func (c *Coord) NewQuota(cfg QuotaConfig) (*Quota, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	q := &Quota{c: c, clk: c.cfg.Clock, rl: redis_rate.NewLimiter(c.rdb)}
	var share upstream.Rates
	for i, r := range []Rate{cfg.Read, cfg.Write} {
		if r.Events < 0 || r.Per < 0 || r.Burst < 0 {
			return nil, fmt.Errorf("upstream quota: rate %d per %v burst %d: must not be negative", r.Events, r.Per, r.Burst)
		}
		if r.Events == 0 {
			continue
		}
		if r.Per == 0 {
			r.Per = time.Second
		}
		if r.Burst == 0 {
			r.Burst = r.Events
		}
		q.limits[i] = redis_rate.Limit{Rate: r.Events, Period: r.Per, Burst: r.Burst}
		perSec, burst := float64(r.Events)/r.Per.Seconds()/float64(cfg.Replicas), max(1, r.Burst/cfg.Replicas)
		if i == 0 {
			share.ReadPerSec, share.ReadBurst = perSec, burst
		} else {
			share.WritePerSec, share.WriteBurst = perSec, burst
		}
	}
	// The local share is the upstream client's own limiter at 1/Replicas of the budget.
	q.local = upstream.NewLocalLimiter(share, q.clk)
	return q, nil
}

func idx(write bool) int {
	if write {
		return 1
	}
	return 0
}

// Wait implements Limiter.
func (q *Quota) Wait(ctx context.Context, write bool) error {
	i := idx(write)
	kind := []string{"read", "write"}[i]
	for {
		if err := q.waitHold(ctx); err != nil {
			return err
		}
		if q.limits[i].IsZero() {
			return nil
		}
		var res *redis_rate.Result
		err := q.c.call(ctx, OpQuota, func(ctx context.Context) error {
			var err error
			res, err = q.rl.Allow(ctx, q.c.key("quota", kind), q.limits[i])
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return q.waitLocal(ctx, write) // Redis down (ErrDown at once) or failing: this replica's share
		}
		if res.Allowed > 0 {
			return nil
		}
		if err := q.sleep(ctx, res.RetryAfter); err != nil {
			return err
		}
	}
}

// waitLocal spends this replica's share of the budget (Redis is down).
func (q *Quota) waitLocal(ctx context.Context, write bool) error {
	if err := q.local.Wait(ctx, write); err != nil {
		return err
	}
	q.c.stats.localQuota.Add(1)
	return nil
}

// waitHold waits out a 429's hold, this replica's or (through Redis) another's.
func (q *Quota) waitHold(ctx context.Context) error {
	q.mu.Lock()
	until := q.hold
	q.mu.Unlock()
	var ms int64
	err := q.c.call(ctx, OpQuota, func(ctx context.Context) error {
		var err error
		ms, err = q.c.rdb.Get(ctx, q.c.key("quota", "hold")).Int64()
		return err
	})
	if err == nil {
		if t := time.UnixMilli(ms); t.After(until) {
			until = t
		}
	}
	return q.sleep(ctx, until.Sub(q.clk.Now()))
}

// sleep waits d on the clock, or fails at once when ctx's deadline would pass first.
func (q *Quota) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	// The deadline is wall time, like every context deadline; d is a duration on q.clk.
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return &upstream.RateLimitedError{Wait: d}
	}
	if !clock.Sleep(q.clk, d, ctx.Done()) {
		return ctx.Err()
	}
	return nil
}

// holdScript moves the shared hold later, never earlier.
var holdScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1])) or 0
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 0`)

// HoldUntil implements Limiter.
func (q *Quota) HoldUntil(t time.Time) {
	q.mu.Lock()
	if t.After(q.hold) {
		q.hold = t
	}
	q.mu.Unlock()
	d := t.Sub(q.clk.Now())
	if d <= 0 {
		return
	}
	_ = q.c.call(context.Background(), OpQuota, func(ctx context.Context) error {
		return holdScript.Run(ctx, q.c.rdb, []string{q.c.key("quota", "hold")},
			strconv.FormatInt(t.UnixMilli(), 10), d.Milliseconds()+1).Err()
	})
}
