package coord

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
)

// KeyStore keeps idempotency keys in Redis, so a retry that lands on another replica is recognised. Every error
// is Redis being unreachable, which the interceptor turns into UNAVAILABLE (fail closed).
type KeyStore struct{ c *Coord }

var _ idempotency.Store = KeyStore{}

// KeyStore returns the Redis store of idempotency keys.
func (c *Coord) KeyStore() KeyStore { return KeyStore{c} }

func (s KeyStore) rkey(k string) string { return s.c.key("idem", k) }

// Claim implements idempotency.Store.
func (s KeyStore) Claim(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration) (idempotency.Record, bool, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return idempotency.Record{}, false, err
	}
	for range 3 { // the key may expire (or be forgotten) between SET NX and GET: try again
		octx, cancel := s.c.opCtx(ctx)
		ok, err := s.c.rdb.SetNX(octx, s.rkey(key), b, ttl).Result()
		cancel()
		if s.c.observe(err) != nil {
			return idempotency.Record{}, false, err
		}
		if ok {
			return idempotency.Record{}, true, nil
		}
		prev, found, err := s.Get(ctx, key)
		if err != nil || found {
			return prev, false, err
		}
	}
	return idempotency.Record{}, false, errors.New("idempotency key churned while claiming it")
}

// Get implements idempotency.Store.
func (s KeyStore) Get(ctx context.Context, key string) (idempotency.Record, bool, error) {
	octx, cancel := s.c.opCtx(ctx)
	defer cancel()
	b, err := s.c.rdb.Get(octx, s.rkey(key)).Bytes()
	if errors.Is(s.c.observe(err), redis.Nil) {
		return idempotency.Record{}, false, nil
	}
	if err != nil {
		return idempotency.Record{}, false, err
	}
	var rec idempotency.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return idempotency.Record{}, false, err
	}
	return rec, true, nil
}

// Put implements idempotency.Store.
func (s KeyStore) Put(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	octx, cancel := s.c.opCtx(ctx)
	defer cancel()
	return s.c.observe(s.c.rdb.Set(octx, s.rkey(key), b, ttl).Err())
}

// Forget implements idempotency.Store.
func (s KeyStore) Forget(ctx context.Context, key string) error {
	octx, cancel := s.c.opCtx(ctx)
	defer cancel()
	return s.c.observe(s.c.rdb.Del(octx, s.rkey(key)).Err())
}
