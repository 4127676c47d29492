// Package stream turns polling into streams. A Hub runs ONE poller per watched thing (a Key) and fans each new
// snapshot out to every watcher of that key, so ten thousand watchers of a task cost the upstream what one does.
//
// The package knows nothing of HTTP, gRPC or KooPhone: a service supplies a Source (a poll function and how to
// compare and finish its values) and maps Next's errors to statuses.
//
// Semantics, in one place:
//   - A watcher first receives the newest snapshot at once (or as soon as the first poll answers), then each
//     change. A slow watcher is never queued for: it receives the newest snapshot and skips the ones in between
//     (counted as conflated).
//   - After a terminal snapshot, Next returns io.EOF. After the poller failed (a permanent error, or transient
//     errors beyond the retry budget), Next first returns the newest snapshot this watcher has not seen, if any,
//     then the error on every later call. Budget exhaustion wraps both ErrRetryBudget and the last poll error.
//   - Terminal results are cached for Config.TerminalTTL and failures for Config.ErrorTTL: a watcher joining in
//     that window gets the result without an upstream call.
//   - The first Source of a key wins: later watchers of a key already polled (or cached) share its poller and
//     their Source is ignored.
//   - Close on the hub makes every Next return ErrClosed at once, and returns after every poller has stopped.
package stream

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

var (
	// ErrClosed is returned by Next after the subscription or the hub was closed, and by Watch on a closed hub.
	ErrClosed = errors.New("stream: closed")
	// ErrRetryBudget is wrapped (together with the last poll error) when transient failures exceeded the budget.
	ErrRetryBudget = errors.New("stream: retry budget exhausted")
	// ErrPollPanic is wrapped when Source.Poll panicked; the panic ends that key's watchers, not the process.
	ErrPollPanic = errors.New("stream: poll panicked")
	// ErrTooManyPollers is returned by Watch when a new key would need a poller and Config.MaxPollers are
	// already running. Watchers of keys already polled still join.
	ErrTooManyPollers = errors.New("stream: too many things watched at once on this replica")
)

// Key names one watched thing. Identity separates upstream accounts (e.g. a hash of endpoint and principal) so
// watchers of different principals never share a poller, Kind is the sort of thing ("task", "prepare") and ID
// the watched id.
type Key struct {
	Identity, Kind, ID string
}

// Source is how to read one watched thing.
type Source[T any] struct {
	// Poll reads the thing once. Its ctx belongs to the poller, not to any watcher: it is cancelled when the last
	// watcher leaves or the hub closes, and carries the per-poll timeout as its deadline. Poll must honour it.
	Poll func(ctx context.Context) (T, error)
	// Terminal reports that the thing is finished, so polling stops. Nil: never finished.
	Terminal func(T) bool
	// Equal reports that a value is unchanged, so it is not sent again. Nil: reflect.DeepEqual.
	Equal func(a, b T) bool
}

// Snapshot is one state of the watched thing. Seq counts distinct states within one poller's life, from 1.
type Snapshot[T any] struct {
	Value    T
	Seq      uint64
	Terminal bool
}

// Hub is what services depend on, so a cross-replica coordinator can later replace the local one.
type Hub[T any] interface {
	// Watch joins the poller of key, starting it with src if there is none. ctx bounds the subscription: when
	// it ends, the subscription closes itself and Next returns ctx's error. A ctx that never ends
	// (context.WithoutCancel) leaves that to the caller, who must Close; it saves the registration in ctx.
	Watch(ctx context.Context, key Key, src Source[T]) (Subscription[T], error)
	// Close stops every poller; every Next returns ErrClosed at once.
	Close()
	Stats() Stats
}

// Subscription is one watcher. Next is meant for one goroutine (like a gRPC stream's Recv); Close may be called
// from any goroutine, any number of times.
type Subscription[T any] interface {
	// Next blocks until a snapshot newer than the last one returned, then returns it. It returns io.EOF after
	// the terminal snapshot, the poller's error after the newest snapshot, ErrClosed, or ctx.Err().
	Next(ctx context.Context) (Snapshot[T], error)
	// Close leaves; the last watcher out stops the poller (a finished key stays cached).
	Close()
}

// Defaults of the polling policy the gateway's configuration offers (its table shows these as its defaults).
const (
	DefaultFirstInterval = 500 * time.Millisecond
	DefaultMaxInterval   = 10 * time.Second
	DefaultPollTimeout   = 10 * time.Second
	DefaultTerminalTTL   = time.Minute
)

// Config is the polling policy. Zero fields take the defaults; a negative value disables what it bounds.
type Config struct {
	Clock clock.Clock // default clock.Real{}

	FirstInterval time.Duration  // wait after a change and after the first poll; default 500ms
	MaxInterval   time.Duration  // ceiling of the wait while nothing changes; default 10s
	Multiplier    float64        // growth of the wait per unchanged poll or transient error; below 1: 1.6
	Jitter        float64        // each wait is scaled by 1±Jitter; default 0.2, negative: none, at most 1
	Rand          func() float64 // uniform in [0,1), called from poller goroutines concurrently; default math/rand/v2
	PollTimeout   time.Duration  // per poll; default 10s. A poll that times out counts as a transient error.

	// Classify says whether a poll error is worth retrying, and the least wait before the retry (Retry-After).
	// Nil: every error is permanent.
	Classify func(error) (transient bool, retryAfter time.Duration)
	// MaxConsecutiveErrors: the watch fails at this many transient failures in a row; default 10, negative: no limit.
	MaxConsecutiveErrors int
	// MaxOutage: the watch fails when the next retry would start more than this after the last successful poll
	// (or the poller's start); default 1m, negative: no limit.
	MaxOutage time.Duration

	MaxPollers int // pollers running at once (distinct keys); 0 or less: no cap

	// Tracer, when set, makes each poll a span (a root: the poller belongs to no watcher) linked to the spans of
	// the watches it serves, the first MaxPollLinks of them, so a watch's trace leads to the polls that fed it.
	Tracer trace.TracerProvider

	TerminalTTL time.Duration // how long a terminal result serves late joiners; default 1m, negative: not cached
	ErrorTTL    time.Duration // how long a failure serves late joiners; default 5s, negative: not cached
}

func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.FirstInterval <= 0 {
		c.FirstInterval = DefaultFirstInterval
	}
	if c.MaxInterval <= 0 {
		c.MaxInterval = DefaultMaxInterval
	}
	if c.MaxInterval < c.FirstInterval {
		c.MaxInterval = c.FirstInterval
	}
	if c.Multiplier < 1 {
		c.Multiplier = 1.6
	}
	if c.Jitter == 0 {
		c.Jitter = 0.2
	}
	c.Jitter = min(c.Jitter, 1)
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.PollTimeout <= 0 {
		c.PollTimeout = DefaultPollTimeout
	}
	if c.MaxConsecutiveErrors == 0 {
		c.MaxConsecutiveErrors = 10
	}
	if c.MaxOutage == 0 {
		c.MaxOutage = time.Minute
	}
	if c.TerminalTTL == 0 {
		c.TerminalTTL = DefaultTerminalTTL
	}
	if c.ErrorTTL == 0 {
		c.ErrorTTL = 5 * time.Second
	}
	return c
}

// Local is the Hub of one replica.
type Local[T any] struct {
	cfg   Config
	stats counters
	done  chan struct{} // closed by Close; Next checks it first, so ErrClosed wins over anything pending
	wg    sync.WaitGroup

	mu      sync.Mutex // guards entries, closed and each poller's hub-side fields; held only to join and leave
	entries map[Key]*poller[T]
	closed  bool

	peer  Peer // nil: this replica polls every key itself (see NewShared)
	codec Codec[T]

	tracer trace.Tracer // nil: polls make no spans
}

var _ Hub[int] = (*Local[int])(nil)

// NewLocal returns an empty hub; it starts no goroutine until the first Watch.
func NewLocal[T any](cfg Config) *Local[T] {
	h := &Local[T]{cfg: cfg.withDefaults(), done: make(chan struct{}), entries: make(map[Key]*poller[T])}
	if cfg.Tracer != nil {
		h.tracer = cfg.Tracer.Tracer("github.com/koophone-gateway/koophone-gateway/internal/stream")
	}
	return h
}

// Watch implements Hub.
func (h *Local[T]) Watch(ctx context.Context, key Key, src Source[T]) (Subscription[T], error) {
	if src.Poll == nil {
		return nil, errors.New("stream: Source.Poll is nil")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	p := h.entries[key]
	if p != nil && p.cached && !h.cfg.Clock.Now().Before(p.expires) {
		// Expired but its goroutine has not removed it yet: checking here keeps expiry exact.
		h.removeLocked(p)
		p = nil
	}
	if p == nil && h.cfg.MaxPollers > 0 && h.stats.pollers.Load() >= int64(h.cfg.MaxPollers) {
		h.mu.Unlock()
		return nil, ErrTooManyPollers
	}
	if p == nil {
		p = newPoller(h, key, src)
		h.entries[key] = p
		h.stats.pollers.Add(1)
		h.wg.Add(1)
		go p.run()
	}
	p.watchers++
	var span *trace.SpanContext // a pointer, so a watcher without a span to link (no tracer) holds 48 bytes less
	if h.tracer != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			span = &sc
			p.link(sc)
		}
	}
	h.mu.Unlock()
	h.stats.watchers.Add(1)

	s := &subscription[T]{h: h, p: p, closed: make(chan struct{}), span: span}
	if seq := p.state.Load().snap.Seq; seq > 0 {
		s.seen = seq - 1 // the current snapshot counts as unseen: a late joiner gets it at once
	}
	if ctx.Done() != nil {
		s.stop = context.AfterFunc(ctx, func() { s.close(ctx.Err()) })
	}
	return s, nil
}

// leave drops one watcher; the last one out stops a poller that is still polling. A finished poller stays, as
// the cache, until its TTL ends.
func (h *Local[T]) leave(p *poller[T], span *trace.SpanContext) {
	h.stats.watchers.Add(-1)
	h.mu.Lock()
	defer h.mu.Unlock()
	p.watchers--
	if span != nil {
		p.unlink(*span)
	}
	if p.watchers == 0 && h.entries[p.key] == p && !p.cached && p.state.Load().end == nil {
		delete(h.entries, p.key)
		h.stats.pollers.Add(-1)
		p.cancel()
	}
}

// removeLocked drops a cached entry; its goroutine sees the cancel and exits.
func (h *Local[T]) removeLocked(p *poller[T]) {
	delete(h.entries, p.key)
	h.stats.cached.Add(-1)
	p.cancel()
}

// Close implements Hub. It returns once every poller goroutine has ended, so it waits for in-flight polls to see
// their cancelled ctx.
func (h *Local[T]) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
		for _, p := range h.entries {
			if p.cached {
				h.removeLocked(p)
				continue
			}
			delete(h.entries, p.key)
			h.stats.pollers.Add(-1)
			p.cancel()
			// Wake its waiting watchers now, even if its Poll is slow to notice the cancel.
			p.publish(p.state.Load().snap, ErrClosed)
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// Stats implements Hub.
func (h *Local[T]) Stats() Stats { return h.stats.read() }
