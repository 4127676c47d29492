package upstream

import (
	"context"
	"errors"
	"sync"
	"time"
)

// The fair queue in front of the KooPhone quota. A Limiter alone is first come, first served: one caller's flood
// of reads fills the quota's queue and everybody else waits behind it. fairLimiter lets one caller at a time (per
// kind, reads or writes) wait in the Limiter; the others queue, one FIFO per fairness key, served round-robin, and
// the watch hubs' polls (which serve many callers at once) are a class of their own that keeps a reserved share of
// the turns. Without contention a caller takes the turn at once and waits in the Limiter as before.
//
// With Redis the Limiter is the shared GCRA quota (internal/coord): the same ordering then holds in front of it on
// each replica, which is where a replica's callers compete; the replicas meet first come, first served in Redis.

type fairKey struct {
	key  string
	poll bool
}

type fairKeyCtx struct{}

// WithFairnessKey marks ctx's upstream calls as made for key (the caller's principal): when the quota is
// contended, each key gets its turn in round-robin order.
func WithFairnessKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, fairKeyCtx{}, fairKey{key: key})
}

// WithPollClass marks ctx's upstream calls as a watch hub's polls: they serve every watcher of a thing, so they
// keep a reserved share of the quota whoever floods it.
func WithPollClass(ctx context.Context) context.Context {
	return context.WithValue(ctx, fairKeyCtx{}, fairKey{poll: true})
}

// FairnessKey is the key WithFairnessKey gave ctx ("" when none), so a poller can charge its first poll to the
// caller who started it.
func FairnessKey(ctx context.Context) string {
	k, _ := ctx.Value(fairKeyCtx{}).(fairKey)
	return k.key
}

// DefaultPollShare is the share of the quota's turns watch polls keep while callers contend for it.
const DefaultPollShare = 0.2

// QueueStats is what the fair queue holds now.
type QueueStats struct {
	Waiting      int // calls queued for their turn (reads and writes)
	WaitingPolls int // of which watch polls
	Keys         int // distinct fairness keys among the queued callers
}

// Queue reports the fair queue's contents; zero when the client has no quota (unlimited rates).
func (c *Client) Queue() QueueStats {
	f, ok := c.limiter.(*fairLimiter)
	if !ok {
		return QueueStats{}
	}
	var s QueueStats
	for _, q := range f.kinds {
		q.mu.Lock()
		s.Waiting += q.waiting + len(q.polls)
		s.WaitingPolls += len(q.polls)
		s.Keys += len(q.ring)
		q.mu.Unlock()
	}
	return s
}

// Queued is how many calls of key wait for their turn now.
func (c *Client) Queued(key string) int {
	f, ok := c.limiter.(*fairLimiter)
	if !ok {
		return 0
	}
	n := 0
	for _, q := range f.kinds {
		q.mu.Lock()
		n += len(q.queues[key])
		q.mu.Unlock()
	}
	return n
}

// newFairLimiter puts the fair queue in front of inner. pollShare is in (0, 1); out of range: DefaultPollShare.
func newFairLimiter(inner Limiter, pollShare float64) *fairLimiter {
	if pollShare <= 0 || pollShare >= 1 {
		pollShare = DefaultPollShare
	}
	f := &fairLimiter{inner: inner}
	for i := range f.kinds {
		// Each caller's turn earns the polls this much of one turn, so polls get pollShare of the turns.
		f.kinds[i] = &fairQueue{queues: map[string][]*fairWaiter{}, credit: pollShare / (1 - pollShare)}
	}
	return f
}

type fairLimiter struct {
	inner Limiter
	kinds [2]*fairQueue // reads, writes
}

// fairQueue orders one kind's callers. Guarded by mu.
type fairQueue struct {
	mu      sync.Mutex
	busy    bool                     // a caller has the turn (it is waiting in the inner Limiter)
	queues  map[string][]*fairWaiter // FIFO per fairness key
	ring    []string                 // keys with queued callers, in round-robin order
	next    int                      // ring index served next
	waiting int                      // callers queued (polls not counted)
	polls   []*fairWaiter            // the watch polls' FIFO
	credit  float64                  // what one caller's turn earns the polls
	owed    float64                  // the polls' earned turns, at most one
}

type fairWaiter struct {
	key     fairKey
	turn    chan struct{} // closed when the waiter is given the turn
	granted bool
}

func (f *fairLimiter) Wait(ctx context.Context, write bool) error {
	q := f.kinds[idxWrite(write)]
	k, _ := ctx.Value(fairKeyCtx{}).(fairKey)
	q.mu.Lock()
	if !q.busy {
		q.busy = true
		q.mu.Unlock()
		return f.take(ctx, q, write)
	}
	w := &fairWaiter{key: k, turn: make(chan struct{})}
	q.push(w)
	q.mu.Unlock()
	start := time.Now()
	select {
	case <-w.turn:
		return f.take(ctx, q, write)
	case <-ctx.Done():
		q.mu.Lock()
		if w.granted { // the turn came as the caller left: pass it on
			q.mu.Unlock()
			q.release()
		} else {
			q.remove(w)
			q.mu.Unlock()
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// Like the Limiter's own refusal when the deadline would pass: nothing was sent, come back later.
			return &RateLimitedError{Wait: max(time.Since(start), time.Second)}
		}
		return ctx.Err()
	}
}

// take waits in the inner Limiter with the turn, then passes the turn on.
func (f *fairLimiter) take(ctx context.Context, q *fairQueue, write bool) error {
	defer q.release()
	return f.inner.Wait(ctx, write)
}

func (f *fairLimiter) HoldUntil(t time.Time) { f.inner.HoldUntil(t) }

func idxWrite(write bool) int {
	if write {
		return 1
	}
	return 0
}

func (q *fairQueue) push(w *fairWaiter) {
	if w.key.poll {
		q.polls = append(q.polls, w)
		return
	}
	if len(q.queues[w.key.key]) == 0 {
		q.ring = append(q.ring, w.key.key)
	}
	q.queues[w.key.key] = append(q.queues[w.key.key], w)
	q.waiting++
}

// release gives the turn to the next waiter, or frees it.
func (q *fairQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	w := q.pick()
	if w == nil {
		q.busy = false
		return
	}
	w.granted = true
	close(w.turn)
}

// pick removes and returns the next waiter: a poll when the polls are owed a turn (or nobody else waits), else
// the head of the next key in the ring.
func (q *fairQueue) pick() *fairWaiter {
	if len(q.polls) > 0 && (q.waiting == 0 || q.owed >= 1) {
		w := q.polls[0]
		q.polls[0] = nil
		q.polls = q.polls[1:]
		q.owed = max(q.owed-1, 0)
		return w
	}
	if q.waiting == 0 {
		return nil
	}
	if len(q.polls) > 0 {
		q.owed = min(q.owed+q.credit, 1) // only while polls wait: an idle class saves nothing up
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	key := q.ring[q.next]
	fifo := q.queues[key]
	w := fifo[0]
	if len(fifo) == 1 {
		delete(q.queues, key)
		q.ring = append(q.ring[:q.next], q.ring[q.next+1:]...) // the next key slides into q.next
	} else {
		fifo[0] = nil
		q.queues[key] = fifo[1:]
		q.next++
	}
	q.waiting--
	return w
}

// remove takes out a waiter that gave up before its turn.
func (q *fairQueue) remove(w *fairWaiter) {
	if w.key.poll {
		for i, p := range q.polls {
			if p == w {
				q.polls = append(q.polls[:i], q.polls[i+1:]...)
				return
			}
		}
		return
	}
	fifo := q.queues[w.key.key]
	for i, p := range fifo {
		if p != w {
			continue
		}
		q.waiting--
		if len(fifo) > 1 {
			q.queues[w.key.key] = append(fifo[:i], fifo[i+1:]...)
			return
		}
		delete(q.queues, w.key.key)
		for j, key := range q.ring {
			if key == w.key.key {
				q.ring = append(q.ring[:j], q.ring[j+1:]...)
				if j < q.next {
					q.next--
				}
				break
			}
		}
		return
	}
}
