package stream

import (
	"context"
	"fmt"
	"io"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// poller polls one key on its own goroutine and publishes what it reads.
type poller[T any] struct {
	h      *Local[T]
	key    Key
	src    Source[T]
	ctx    context.Context // cancelled when the last watcher leaves, the cache expires or the hub closes
	cancel context.CancelFunc

	// state is replaced, never changed: watchers read it without a lock. Writers (the poller goroutine, and
	// Close) hold mu, and a state that has ended is final.
	state atomic.Pointer[pollState[T]]
	mu    sync.Mutex

	// Guarded by h.mu.
	watchers int
	cached   bool                // finished and kept for late joiners
	expires  time.Time           // when cached ends
	links    []trace.SpanContext // spans of watchers watching now, at most MaxPollLinks (with Config.Tracer)
}

// pollState is one published state. wake is closed when a newer state replaces this one, which wakes every
// waiting watcher at once without a goroutine or a queue per watcher.
type pollState[T any] struct {
	snap Snapshot[T] // Seq 0: nothing read yet
	end  error       // io.EOF after a terminal snapshot, or the error that stopped polling
	wake chan struct{}
}

func newPoller[T any](h *Local[T], key Key, src Source[T]) *poller[T] {
	if src.Equal == nil {
		src.Equal = func(a, b T) bool { return reflect.DeepEqual(a, b) }
	}
	// The poller outlives the watcher that started it, so its ctx derives from no watcher's.
	ctx, cancel := context.WithCancel(context.Background()) //nolint:gosec // G118: p.cancel, called when the poller ends
	p := &poller[T]{h: h, key: key, src: src, ctx: ctx, cancel: cancel}
	p.state.Store(&pollState[T]{wake: make(chan struct{})})
	return p
}

// publish replaces the state, then wakes the watchers waiting on the old one. It does nothing once the state
// has ended, so a poll that finishes after Close cannot take ErrClosed back.
func (p *poller[T]) publish(snap Snapshot[T], end error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.state.Load()
	if old.end != nil {
		return
	}
	p.state.Store(&pollState[T]{snap: snap, end: end, wake: make(chan struct{})})
	close(old.wake)
}

func (p *poller[T]) run() {
	defer p.h.wg.Done()
	defer p.cancel()
	cfg := &p.h.cfg
	interval := cfg.FirstInterval
	failures := 0
	lastOK := cfg.Clock.Now()
	var shared <-chan Shared
	if p.h.peer != nil {
		name := PeerName(p.key)
		shared = p.h.peer.Follow(p.ctx, name)
		defer p.h.peer.Release(name)
	}
	for {
		// A stop that raced with the timer must not cost one more upstream call.
		if p.ctx.Err() != nil {
			return
		}
		if p.h.peer != nil {
			if lead, retry := p.h.peer.Lead(p.ctx, PeerName(p.key)); !lead {
				if p.follow(shared, retry) {
					return
				}
				// Following is not an outage: a replica that takes the lead starts with a fresh budget.
				failures, lastOK = 0, cfg.Clock.Now()
				continue
			}
		}
		v, timedOut, err := p.poll()
		if p.ctx.Err() != nil {
			return // nobody is left to tell
		}
		var wait time.Duration
		if err == nil {
			failures = 0
			lastOK = cfg.Clock.Now()
			cur := p.state.Load().snap
			terminal := p.src.Terminal != nil && p.src.Terminal(v)
			if cur.Seq == 0 || terminal || !p.src.Equal(cur.Value, v) {
				var end error
				if terminal {
					end = io.EOF
				}
				p.publish(Snapshot[T]{Value: v, Seq: cur.Seq + 1, Terminal: terminal}, end)
				interval = cfg.FirstInterval
			} else {
				interval = p.grow(interval)
			}
			if p.h.peer != nil {
				p.share(v, terminal) // unchanged ones too: they keep the replicas' kept copy fresh
			}
			if terminal {
				p.finish(cfg.TerminalTTL)
				return
			}
			wait = p.jitter(interval)
		} else {
			p.h.stats.pollErrors.Add(1)
			transient, retryAfter := p.classify(err, timedOut)
			if !transient {
				p.fail(err)
				return
			}
			failures++
			interval = p.grow(interval)
			wait = max(p.jitter(interval), retryAfter)
			outage := cfg.Clock.Now().Add(wait).Sub(lastOK)
			if cfg.MaxConsecutiveErrors > 0 && failures >= cfg.MaxConsecutiveErrors ||
				cfg.MaxOutage > 0 && outage > cfg.MaxOutage {
				p.fail(fmt.Errorf("%w (%d failures in a row; the next retry would come %v after the last good poll): %w",
					ErrRetryBudget, failures, outage, err))
				return
			}
		}
		if !clock.Sleep(cfg.Clock, wait, p.ctx.Done()) {
			return
		}
	}
}

// poll makes one upstream call under the per-poll timeout. The timeout runs on the hub's clock, so a test can
// expire it by advancing a fake clock; timedOut reports that it fired.
func (p *poller[T]) poll() (v T, timedOut bool, err error) {
	p.h.stats.polls.Add(1)
	clk := p.h.cfg.Clock
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	pc := &pollCtx{Context: ctx, deadline: clk.Now().Add(p.h.cfg.PollTimeout)}
	var callCtx context.Context = pc
	if p.h.tracer != nil {
		var span trace.Span
		callCtx, span = p.startSpan(pc)
		defer func() {
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
	}
	timer := clk.NewTimer(p.h.cfg.PollTimeout)
	stop, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-timer.C():
			pc.timedOut.Store(true) // before cancel, so Err reports DeadlineExceeded
			cancel()
		case <-stop:
		}
	}()
	v, err = p.safePoll(callCtx)
	close(stop)
	<-exited
	timer.Stop()
	return v, pc.timedOut.Load(), err
}

// MaxPollLinks bounds the links of a poll's span: a task watched ten thousand times links the first watchers'
// traces, and says how many watched.
const MaxPollLinks = 8

// link remembers a watcher's span for the poll spans, while there is room. Called with h.mu held.
func (p *poller[T]) link(sc trace.SpanContext) {
	if sc.IsValid() && len(p.links) < MaxPollLinks {
		p.links = append(p.links, sc)
	}
}

// unlink forgets a watcher that left. Called with h.mu held.
func (p *poller[T]) unlink(sc trace.SpanContext) {
	for i, l := range p.links {
		if l.Equal(sc) {
			p.links = append(p.links[:i:i], p.links[i+1:]...)
			return
		}
	}
}

// startSpan starts a poll's span, linked to the spans of the watches it serves now.
func (p *poller[T]) startSpan(ctx context.Context) (context.Context, trace.Span) {
	p.h.mu.Lock()
	links := make([]trace.Link, len(p.links))
	for i, sc := range p.links {
		links[i] = trace.Link{SpanContext: sc}
	}
	watchers := p.watchers
	p.h.mu.Unlock()
	return p.h.tracer.Start(ctx, "watch poll "+p.key.Kind, trace.WithSpanKind(trace.SpanKindInternal), trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("koophone.watch.kind", p.key.Kind),
			attribute.Int("koophone.watch.watchers", watchers), // linked: the first MaxPollLinks of them
			attribute.Int("koophone.watch.linked", len(links)),
		))
}

// safePoll turns a panic in Poll into an error for this key's watchers instead of a crash of the process.
func (p *poller[T]) safePoll(ctx context.Context) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPollPanic, r)
		}
	}()
	return p.src.Poll(ctx)
}

func (p *poller[T]) classify(err error, timedOut bool) (bool, time.Duration) {
	if timedOut {
		return true, 0 // our own timeout: the upstream was slow, which is worth another try
	}
	if p.h.cfg.Classify == nil {
		return false, 0
	}
	return p.h.cfg.Classify(err)
}

// fail ends every watcher's stream with err, keeping the newest snapshot for those who have not seen it.
func (p *poller[T]) fail(err error) {
	p.publish(p.state.Load().snap, err)
	p.finish(p.h.cfg.ErrorTTL)
}

// finish turns a poller that stopped on its own into a cache entry for ttl, then removes it.
func (p *poller[T]) finish(ttl time.Duration) {
	h := p.h
	h.mu.Lock()
	if h.entries[p.key] != p { // already removed by Close
		h.mu.Unlock()
		return
	}
	h.stats.pollers.Add(-1)
	if ttl < 0 {
		delete(h.entries, p.key)
		h.mu.Unlock()
		return
	}
	p.cached = true
	p.expires = h.cfg.Clock.Now().Add(ttl)
	h.stats.cached.Add(1)
	h.mu.Unlock()

	clock.Sleep(h.cfg.Clock, ttl, p.ctx.Done())
	h.mu.Lock()
	if h.entries[p.key] == p {
		h.removeLocked(p)
	}
	h.mu.Unlock()
}

func (p *poller[T]) grow(d time.Duration) time.Duration {
	// Rounded so that 500ms×1.6 is 800ms, not 799.999999ms: intervals stay readable in logs and tests.
	return min(time.Duration(math.Round(float64(d)*p.h.cfg.Multiplier)), p.h.cfg.MaxInterval)
}

// jitter spreads the pollers of many keys so they do not hit the upstream in step.
func (p *poller[T]) jitter(d time.Duration) time.Duration {
	j := p.h.cfg.Jitter
	if j <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + j*(2*p.h.cfg.Rand()-1)))
}

// pollCtx reports the per-poll deadline on the hub's clock (so an upstream client can see it) and
// DeadlineExceeded once the timeout fired.
type pollCtx struct {
	context.Context
	deadline time.Time
	timedOut atomic.Bool
}

func (c *pollCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *pollCtx) Err() error {
	err := c.Context.Err()
	if err != nil && c.timedOut.Load() {
		return context.DeadlineExceeded
	}
	return err
}
