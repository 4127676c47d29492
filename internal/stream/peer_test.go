package stream

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memPeer is a Peer for hubs in one process: the first to Lead a key holds it until Release.
type memPeer struct {
	mu      sync.Mutex
	leader  map[string]*memMember
	members []*memMember
}

type memMember struct {
	p    *memPeer
	subs map[string][]chan Shared
}

func (p *memPeer) member() *memMember {
	m := &memMember{p: p, subs: map[string][]chan Shared{}}
	p.mu.Lock()
	p.members = append(p.members, m)
	p.mu.Unlock()
	return m
}

func (m *memMember) Lead(_ context.Context, key string) (bool, time.Duration) {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	if l, ok := m.p.leader[key]; ok && l != m {
		return false, 5 * time.Millisecond
	}
	m.p.leader[key] = m
	return true, 0
}

func (m *memMember) Release(key string) {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	if m.p.leader[key] == m {
		delete(m.p.leader, key)
	}
}

func (m *memMember) Publish(_ context.Context, key string, s Shared) {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	for _, o := range m.p.members {
		for _, c := range o.subs[key] {
			select { // conflate: replace an unread snapshot
			case c <- s:
			default:
				select {
				case <-c:
				default:
				}
				c <- s
			}
		}
	}
}

func (m *memMember) Follow(_ context.Context, key string) <-chan Shared {
	c := make(chan Shared, 1)
	m.p.mu.Lock()
	m.subs[key] = append(m.subs[key], c)
	m.p.mu.Unlock()
	return c
}

var intCodec = Codec[int]{
	Marshal:   func(v int) ([]byte, error) { return []byte(strconv.Itoa(v)), nil },
	Unmarshal: func(b []byte) (int, error) { return strconv.Atoi(string(b)) },
}

func TestSharedHubsPollOnce(t *testing.T) {
	peer := &memPeer{leader: map[string]*memMember{}}
	cfg := Config{FirstInterval: time.Millisecond, MaxInterval: time.Millisecond, Jitter: -1}
	var value, polls atomic.Int64
	src := Source[int]{
		Poll:     func(context.Context) (int, error) { polls.Add(1); return int(value.Load()), nil },
		Terminal: func(v int) bool { return v == 3 },
	}
	a, b := NewShared(cfg, peer.member(), intCodec), NewShared(cfg, peer.member(), intCodec)
	defer a.Close()
	defer b.Close()
	key := Key{Identity: "i", Kind: "task", ID: "1"}
	ctx := context.Background()
	sa, err := a.Watch(ctx, key, src)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	if s, err := sa.Next(ctx); err != nil || s.Value != 0 {
		t.Fatalf("leader's first snapshot: %v %v", s, err)
	}
	sb, err := b.Watch(ctx, key, src)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	for want := 0; want <= 3; want++ {
		value.Store(int64(want))
		for i, sub := range []Subscription[int]{sa, sb} {
			if want == 0 && i == 0 {
				continue // the leader's watcher has 0 already
			}
			for {
				s, err := sub.Next(ctx)
				if err != nil {
					t.Fatalf("waiting for %d: %v", want, err)
				}
				if s.Value == want {
					break
				}
			}
		}
	}
	for _, sub := range []Subscription[int]{sa, sb} {
		if _, err := sub.Next(ctx); !errors.Is(err, io.EOF) {
			t.Fatalf("after the terminal snapshot: %v", err)
		}
	}
	if st := b.Stats(); st.Polls != 0 || st.Shared == 0 {
		t.Fatalf("follower polled %d times and received %d snapshots; want 0 polls", st.Polls, st.Shared)
	}
	if a.Stats().Polls == 0 {
		t.Fatal("leader never polled")
	}
}
