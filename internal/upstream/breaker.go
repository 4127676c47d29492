package upstream

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerConfig configures the circuit breaker around KooPhone. When KooPhone fails Failures times in a row
// (no answer, or a 5xx), calls fail fast for OpenFor without sending anything; then up to Probes calls are let
// through, and their success closes the breaker again. gobreaker measures OpenFor on the wall clock (it has no
// clock hook).
type BreakerConfig struct {
	Failures uint32        // consecutive failures that open it; default DefaultBreakerFailures
	OpenFor  time.Duration // how long it stays open before probing; default DefaultBreakerOpenFor
	Probes   uint32        // calls let through while half-open; default 1
	Disabled bool          // no breaker at all
}

// Defaults of the breaker; the config table shows them (--breaker-failures, --breaker-open-for).
const (
	DefaultBreakerFailures = 5
	DefaultBreakerOpenFor  = 10 * time.Second
)

func (b BreakerConfig) withDefaults() BreakerConfig {
	if b.Failures == 0 {
		b.Failures = DefaultBreakerFailures
	}
	if b.OpenFor <= 0 {
		b.OpenFor = DefaultBreakerOpenFor
	}
	if b.Probes == 0 {
		b.Probes = 1
	}
	return b
}

// Breaker states as reported to an Observer and by Client.BreakerState.
const (
	BreakerClosed   = "closed"
	BreakerHalfOpen = "half-open"
	BreakerOpen     = "open"
)

var (
	errBreakerFailure  = errors.New("upstream failure")
	errBreakerExcluded = errors.New("not the upstream's fault")
)

type breaker struct {
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor time.Duration
}

func newBreaker(cfg BreakerConfig, obs Observer) *breaker {
	if cfg.Disabled {
		return nil
	}
	cfg = cfg.withDefaults()
	cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "koophone",
		MaxRequests: cfg.Probes,
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.Failures },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			obs.BreakerChange(breakerState(from), breakerState(to))
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errBreakerExcluded) },
	})
	return &breaker{cb: cb, openFor: cfg.OpenFor}
}

func breakerState(s gobreaker.State) string {
	switch s {
	case gobreaker.StateOpen:
		return BreakerOpen
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	}
	return BreakerClosed
}

// state is the breaker's state now ("closed" without a breaker).
func (b *breaker) state() string {
	if b == nil {
		return BreakerClosed
	}
	return breakerState(b.cb.State())
}

// openError is the refusal of an open breaker.
func (b *breaker) openError() *Error {
	return &Error{Kind: KindCircuitOpen, RetryAfter: b.openFor,
		Message: "KooPhone is failing: the circuit breaker is open, nothing was sent"}
}

// allow asks to send one attempt; done reports its outcome. A refusal is a KindCircuitOpen error.
func (b *breaker) allow() (done func(r *attemptResult, ctx context.Context), e *Error) {
	if b == nil {
		return func(*attemptResult, context.Context) {}, nil
	}
	d, err := b.cb.Allow()
	if err != nil {
		return nil, b.openError()
	}
	return func(r *attemptResult, ctx context.Context) { d(breakerVerdict(ctx, r)) }, nil
}

// breakerMinHang is how long an attempt must have been in flight for its deadline passing to say KooPhone hangs.
// An attempt sent with a few milliseconds left (a poll that waited out its deadline in the fair queue behind a
// flood) times out whatever KooPhone does: five of those in a row opened the breaker for every caller.
const breakerMinHang = 250 * time.Millisecond

// breakerVerdict says what an attempt tells about KooPhone's health: no answer or a 5xx is a failure; an answer
// of any other kind is a success (KooPhone is up, even if it refused the request); the caller giving up first,
// or a deadline that left the attempt no real time, says nothing.
func breakerVerdict(ctx context.Context, r *attemptResult) error {
	e := r.err
	switch {
	case e == nil:
		return nil
	case errors.Is(ctx.Err(), context.Canceled):
		return errBreakerExcluded
	case e.Kind == KindTransport && errors.Is(ctx.Err(), context.DeadlineExceeded) && r.inFlight < breakerMinHang:
		return errBreakerExcluded
	case e.Kind == KindTransport:
		return errBreakerFailure // includes a deadline passing while KooPhone hangs
	case e.HTTPStatus >= http.StatusInternalServerError && e.HTTPStatus != http.StatusNotImplemented:
		return errBreakerFailure
	case e.Kind == KindDecode && r.bodyFailed:
		return errBreakerFailure
	}
	return nil
}
