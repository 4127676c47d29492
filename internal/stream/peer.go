package stream

import (
	"context"
	"io"
	"time"
)

// Peer shares each key's poller across replicas of the gateway, so N replicas watching one task cost the upstream
// what one does. Exactly one replica (the leader, holding the key's lease) polls; it hands every successful poll
// to the Peer, which fans it out to the other replicas' hubs. The stream package knows nothing of how: see
// internal/coord for Redis. Keys are opaque strings built from Key.
type Peer interface {
	// Lead reports whether this replica should poll key now, taking the key's lease when it is free and keeping
	// it until Release. A replica that cannot reach the others answers true: every replica polls for itself
	// rather than no replica polling. When false, retry is how long to follow before asking again.
	Lead(ctx context.Context, key string) (lead bool, retry time.Duration)
	// Release gives up the key's lease, if held (its last watcher left, or the key finished).
	Release(key string)
	// Publish hands the leader's latest snapshot to the other replicas. It is kept for keep (terminal ones for
	// late joiners; others so a replica that starts following sees the current state at once); keep <= 0: not kept.
	Publish(ctx context.Context, key string, s Shared)
	// Follow delivers the key's snapshots published by any replica, the kept one first, until ctx ends. The
	// channel conflates: a slow reader gets the newest snapshot, never an older one after a newer.
	Follow(ctx context.Context, key string) <-chan Shared
}

// Shared is one snapshot as it travels between replicas.
type Shared struct {
	Data     []byte
	Terminal bool
	Keep     time.Duration // how long the Peer keeps it for late joiners; set by the publisher
}

// Codec turns a hub's values into bytes for a Peer and back.
type Codec[T any] struct {
	Marshal   func(T) ([]byte, error)
	Unmarshal func([]byte) (T, error)
}

// NewShared returns a hub whose pollers are shared with other replicas through peer. With a nil peer it is NewLocal.
func NewShared[T any](cfg Config, peer Peer, codec Codec[T]) *Local[T] {
	h := NewLocal[T](cfg)
	if peer != nil && codec.Marshal != nil && codec.Unmarshal != nil {
		h.peer, h.codec = peer, codec
	}
	return h
}

// PeerName is the name a key has between replicas.
func PeerName(k Key) string { return k.Kind + "/" + k.Identity + "/" + k.ID }

// share hands a successful poll to the other replicas. Terminal snapshots are kept for TerminalTTL; others for
// long enough to outlive the gap between two polls, so a new follower never waits a whole interval for a first value.
func (p *poller[T]) share(v T, terminal bool) {
	data, err := p.h.codec.Marshal(v)
	if err != nil {
		return // a value that cannot be encoded stays local; the other replicas will lead and poll themselves
	}
	keep := 2*p.h.cfg.MaxInterval + p.h.cfg.PollTimeout
	if terminal {
		keep = p.h.cfg.TerminalTTL
	}
	p.h.peer.Publish(p.ctx, PeerName(p.key), Shared{Data: data, Terminal: terminal, Keep: keep})
}

// follow waits, as a follower, for the leader's next snapshot or for retry to pass, and applies what arrives as
// if this replica had polled it. It reports whether the poller is done (terminal, or stopped).
func (p *poller[T]) follow(in <-chan Shared, retry time.Duration) (done bool) {
	t := p.h.cfg.Clock.NewTimer(retry)
	defer t.Stop()
	select {
	case <-p.ctx.Done():
		return true
	case <-t.C():
		return false
	case s, ok := <-in:
		if !ok {
			return p.ctx.Err() != nil
		}
		v, err := p.h.codec.Unmarshal(s.Data)
		if err != nil {
			return false // garbage from a peer is ignored; the leader's next poll or our own lead replaces it
		}
		p.h.stats.shared.Add(1)
		cur := p.state.Load().snap
		if cur.Seq == 0 || s.Terminal || !p.src.Equal(cur.Value, v) {
			var end error
			if s.Terminal {
				end = io.EOF
			}
			p.publish(Snapshot[T]{Value: v, Seq: cur.Seq + 1, Terminal: s.Terminal}, end)
		}
		if s.Terminal {
			p.finish(p.h.cfg.TerminalTTL)
			return true
		}
		return false
	}
}
