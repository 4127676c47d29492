package stream

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// subscription is one watcher: a cursor (the Seq it last returned) over its poller's published state. It owns no
// goroutine and no queue, which is what makes a slow watcher harmless: it simply reads the newest state later.
type subscription[T any] struct {
	h    *Local[T]
	p    *poller[T]
	seen uint64 // Seq of the last snapshot returned; touched only by the goroutine calling Next

	once     sync.Once
	closeErr error         // what Next returns once closed; written before closed is closed
	closed   chan struct{} // closed by Close or by the end of the Watch ctx
	stop     func() bool   // unregisters the Watch ctx's AfterFunc; nil when that ctx never ends

	span *trace.SpanContext // the watch's span, linked from its poller's poll spans while it watches; nil: none
}

// Next implements Subscription.
func (s *subscription[T]) Next(ctx context.Context) (Snapshot[T], error) {
	var zero Snapshot[T]
	for {
		// Shutdown and cancellation win over a pending snapshot: they end the watch "at once". (One channel per
		// select: a non-blocking receive on one channel takes no lock, so 10,000 watchers do not contend on
		// the hub's done channel.)
		if isClosed(s.h.done) {
			return zero, ErrClosed
		}
		if isClosed(s.closed) {
			return zero, s.closeErr
		}
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		st := s.p.state.Load()
		if st.snap.Seq > s.seen {
			s.h.stats.delivered.Add(1)
			if skipped := st.snap.Seq - s.seen - 1; skipped > 0 {
				s.h.stats.conflated.Add(skipped)
			}
			s.seen = st.snap.Seq
			return st.snap, nil
		}
		if st.end != nil {
			return zero, st.end
		}
		// The hub's Close publishes a final state to every poller, which closes st.wake: no need to wait on
		// the hub-wide done channel here.
		select {
		case <-st.wake:
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-s.closed:
			return zero, s.closeErr
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Close implements Subscription.
func (s *subscription[T]) Close() {
	s.close(ErrClosed)
	if s.stop != nil {
		s.stop()
	}
}

func (s *subscription[T]) close(err error) {
	s.once.Do(func() {
		s.closeErr = err
		close(s.closed)
		s.h.leave(s.p, s.span)
	})
}
