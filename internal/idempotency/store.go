// Package idempotency makes write RPCs safe to retry: a caller's request_id (AIP-155; the Idempotency-Key header
// on REST) names one intended write. The first call with a key runs; every repeat with the same request gets the
// first outcome (waiting for it while it is in flight) and never reaches KooPhone; a repeat with a different
// request is ALREADY_EXISTS. Keys live 24 hours, in memory on one replica or in Redis (internal/coord) across
// replicas; if the store cannot be reached the write is refused (UNAVAILABLE) rather than risk a second order.
package idempotency

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// State is where a keyed write stands.
type State int

const (
	Pending State = iota // claimed; the first call is running
	Done                 // the first call finished; Response or Status holds its outcome
)

// Record is what the store keeps per key.
type Record struct {
	State State  `json:"state"`
	Hash  string `json:"hash"` // of the method and the request without its request_id
	// PendingUntil: a Pending record older than this lost its first call (its replica died): the outcome is unknown.
	PendingUntil time.Time `json:"pending_until"`
	Response     []byte    `json:"response,omitempty"` // google.protobuf.Any of the response, when the call succeeded
	Status       []byte    `json:"status,omitempty"`   // google.rpc.Status, when it failed
	Unknown      bool      `json:"unknown,omitempty"`  // the write may or may not have happened
}

// Store keeps records. Implementations must be safe for concurrent use; an error means the store could not be
// reached (the interceptor then fails closed).
type Store interface {
	// Claim stores rec under key unless the key exists; it returns the existing record and false if it does.
	Claim(ctx context.Context, key string, rec Record, ttl time.Duration) (existing Record, claimed bool, err error)
	// Get reads a record; false when the key is unknown (expired, or forgotten).
	Get(ctx context.Context, key string) (Record, bool, error)
	// Put replaces the record with the final outcome.
	Put(ctx context.Context, key string, rec Record, ttl time.Duration) error
	// Forget drops the key: the first call certainly did nothing, so a retry may run.
	Forget(ctx context.Context, key string) error
}

// Memory is the Store of one replica: bounded, oldest first out, expiring on the injectable clock.
type Memory struct {
	clk clock.Clock
	max int

	mu    sync.Mutex
	items map[string]*list.Element
	order list.List // of *memItem, oldest at the front
}

type memItem struct {
	key     string
	rec     Record
	expires time.Time
}

// DefaultMaxKeys is how many keys a Memory store keeps by default (--idempotency-max-keys).
const DefaultMaxKeys = 100_000

// NewMemory keeps at most maxKeys keys (default DefaultMaxKeys); clk nil is the real clock.
func NewMemory(clk clock.Clock, maxKeys int) *Memory {
	if clk == nil {
		clk = clock.Real{}
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Memory{clk: clk, max: maxKeys, items: map[string]*list.Element{}}
}

var _ Store = (*Memory)(nil)

func (m *Memory) getLocked(key string) (*memItem, bool) {
	e, ok := m.items[key]
	if !ok {
		return nil, false
	}
	it := e.Value.(*memItem)
	if !m.clk.Now().Before(it.expires) {
		m.order.Remove(e)
		delete(m.items, key)
		return nil, false
	}
	return it, true
}

// Claim implements Store.
func (m *Memory) Claim(_ context.Context, key string, rec Record, ttl time.Duration) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if it, ok := m.getLocked(key); ok {
		return it.rec, false, nil
	}
	m.insertLocked(key, rec, ttl)
	return Record{}, true, nil
}

// insertLocked adds a new key, evicting the oldest keys first so the store never holds more than max.
func (m *Memory) insertLocked(key string, rec Record, ttl time.Duration) {
	for m.order.Len() >= m.max {
		front := m.order.Front()
		delete(m.items, front.Value.(*memItem).key)
		m.order.Remove(front)
	}
	m.items[key] = m.order.PushBack(&memItem{key: key, rec: rec, expires: m.clk.Now().Add(ttl)})
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if it, ok := m.getLocked(key); ok {
		return it.rec, true, nil
	}
	return Record{}, false, nil
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, key string, rec Record, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if it, ok := m.getLocked(key); ok {
		it.rec, it.expires = rec, m.clk.Now().Add(ttl)
		return nil
	}
	m.insertLocked(key, rec, ttl) // a key evicted meanwhile comes back within the bound
	return nil
}

// Forget implements Store.
func (m *Memory) Forget(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.items[key]; ok {
		m.order.Remove(e)
		delete(m.items, key)
	}
	return nil
}

// Len is how many keys are kept (expired ones included until touched).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}
