package share

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// RateLimiter decides whether a caller may start one more call under its requests_per_second share. key names
// the caller's bucket; rate (calls per second, > 0) and burst (>= 1) are its share, passed on every call so a
// limiter keeps no table of its own. It answers at once, never waits: ok false comes with how long until a call
// would be admitted. err is for a caller whose context ended; a limiter whose backend fails decides for itself
// (the Redis one in internal/coord falls back to a local share).
//
// The default is Local, this replica's own buckets. With KOOPHONE_REDIS_URL internal/server plugs in
// internal/coord's, so the rate is one for all replicas. The concurrency shares (calls in flight, streams open,
// fleet runs) stay per replica: what they bound is held here, in this process's goroutines and memory.
type RateLimiter interface {
	Allow(ctx context.Context, key string, rate float64, burst int) (ok bool, retryAfter time.Duration, err error)
}

// Local is a RateLimiter with one token bucket (x/time/rate) per key, in this process, timed on its clock.
type Local struct {
	clock   clock.Clock
	buckets sync.Map // key -> *rate.Limiter; read on every call, written once per key: no lock shared by all callers
}

// NewLocal returns this replica's own buckets on clk (nil: the real clock).
func NewLocal(clk clock.Clock) *Local {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Local{clock: clk}
}

// Allow implements RateLimiter.
func (l *Local) Allow(_ context.Context, key string, perSec float64, burst int) (bool, time.Duration, error) {
	now := l.clock.Now()
	v, ok := l.buckets.Load(key)
	if !ok {
		v, _ = l.buckets.LoadOrStore(key, rate.NewLimiter(rate.Limit(perSec), burst))
	}
	b := v.(*rate.Limiter) // only *rate.Limiter is stored
	// The caller's share changed (its groups did): the bucket keeps its tokens and takes the new rate.
	if b.Limit() != rate.Limit(perSec) || b.Burst() != burst {
		b.SetLimitAt(now, rate.Limit(perSec))
		b.SetBurstAt(now, burst)
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d, nil
	}
	return true, 0, nil
}
