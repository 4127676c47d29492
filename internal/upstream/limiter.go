package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// Limiter paces attempts toward KooPhone; the local default uses x/time/rate, internal/coord shares one across replicas.
type Limiter interface {
	// Wait blocks until one attempt of the class may be sent (write=false: reads), or returns an error
	// (errors.Is(err, ErrRateLimited), carrying how long to wait) when ctx's deadline would pass first.
	Wait(ctx context.Context, write bool) error
	// HoldUntil makes every caller wait until t: a 429's Retry-After, seen by one call, holds back all.
	HoldUntil(t time.Time)
}

// ErrRateLimited is matched (errors.Is) by a Limiter's refusal; errors.As to *RateLimitedError gives the wait.
var ErrRateLimited = errors.New("upstream: rate limit toward KooPhone reached")

// RateLimitedError is a Limiter's refusal: waiting Wait would outlast the caller's deadline.
type RateLimitedError struct{ Wait time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limit toward KooPhone reached: next slot in %s, after the caller's deadline", e.Wait.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// Rates configures the local limiter: attempts per second and burst, separately for reads and writes. A rate of
// zero or less means unlimited.
type Rates struct {
	ReadPerSec  float64
	ReadBurst   int
	WritePerSec float64
	WriteBurst  int
}

// NewLocalLimiter returns the limiter of one replica, on clk (nil: the wall clock).
func NewLocalLimiter(r Rates, clk clock.Clock) Limiter {
	if clk == nil {
		clk = clock.Real{}
	}
	return &localLimiter{clock: clk, read: newRate(r.ReadPerSec, r.ReadBurst), write: newRate(r.WritePerSec, r.WriteBurst)}
}

func newRate(perSec float64, burst int) *rate.Limiter {
	if perSec <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(perSec), max(burst, 1))
}

type localLimiter struct {
	clock       clock.Clock
	read, write *rate.Limiter

	mu   sync.Mutex
	hold time.Time // nobody sends before this (a 429's Retry-After)
}

func (l *localLimiter) Wait(ctx context.Context, write bool) error {
	lim := l.read
	if write {
		lim = l.write
	}
	// Reservations take the clock's time, so tests pace on a fake clock.
	now := l.clock.Now()
	r := lim.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	l.mu.Lock()
	if h := l.hold.Sub(now); h > delay {
		delay = h
	}
	l.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	// The deadline is wall time, like every context deadline.
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
		r.CancelAt(now)
		return &RateLimitedError{Wait: delay}
	}
	if !clock.Sleep(l.clock, delay, ctx.Done()) {
		r.CancelAt(l.clock.Now())
		return ctx.Err()
	}
	return nil
}

func (l *localLimiter) HoldUntil(t time.Time) {
	l.mu.Lock()
	if t.After(l.hold) {
		l.hold = t
	}
	l.mu.Unlock()
}
