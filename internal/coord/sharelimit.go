package coord

import (
	"context"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Allower is the shape of internal/share's RateLimiter: one bucket per key, the rate (per second) and burst
// passed on every call, an answer at once. coord does not import internal/share (which knows the contract);
// internal/server plugs a ShareLimiter into it.
type Allower interface {
	Allow(ctx context.Context, key string, rate float64, burst int) (ok bool, retryAfter time.Duration, err error)
}

// ShareLimiter keeps the callers' requests_per_second shares in Redis, so a principal's rate is one across the
// replicas: GCRA (redis_rate, on Redis's clock) under <prefix>:share:<principal>. Like the upstream Quota it goes
// through the gate: while Redis is down every call takes the local branch at once, this replica's own bucket at
// 1/Replicas of the rate and burst, so the replicas together still stay within the share.
type ShareLimiter struct {
	c        *Coord
	rl       *redis_rate.Limiter
	local    Allower
	replicas int
}

// NewShareLimiter returns the shared buckets; local is the bucket spent while Redis is down (internal/share's
// Local), replicas how many replicas share each rate (default 1).
func (c *Coord) NewShareLimiter(local Allower, replicas int) *ShareLimiter {
	return &ShareLimiter{c: c, rl: redis_rate.NewLimiter(c.rdb), local: local, replicas: max(1, replicas)}
}

// Allow implements internal/share's RateLimiter.
func (l *ShareLimiter) Allow(ctx context.Context, key string, perSec float64, burst int) (bool, time.Duration, error) {
	var res *redis_rate.Result
	err := l.c.call(ctx, OpShare, func(ctx context.Context) error {
		var err error
		res, err = l.rl.Allow(ctx, l.c.key("share", key), gcra(perSec, burst))
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return false, 0, ctx.Err()
		}
		// Redis down (ErrDown at once) or failing: this replica's part of the share.
		ok, d, err := l.local.Allow(ctx, key, perSec/float64(l.replicas), max(1, burst/l.replicas))
		if ok {
			l.c.stats.localShare.Add(1)
		}
		return ok, d, err
	}
	if res.Allowed > 0 {
		return true, 0, nil
	}
	// RetryInfo must say to wait: Redis's TIME has microseconds, so a refusal can round to nothing.
	return false, max(res.RetryAfter, time.Millisecond), nil
}

// gcra is perSec calls per second with bursts of burst as redis_rate's Limit: one call per emission interval,
// which keeps a fractional rate exact (redis_rate's Rate is a whole number of calls per Period).
func gcra(perSec float64, burst int) redis_rate.Limit {
	return redis_rate.Limit{Rate: 1, Period: max(time.Nanosecond, time.Duration(float64(time.Second)/perSec)), Burst: max(1, burst)}
}
