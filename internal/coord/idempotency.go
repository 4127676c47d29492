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
// is Redis being unreachable, which the interceptor turns into UNAVAILABLE (fail closed); while Redis is known to
// be down that is ErrDown, at once, without asking Redis.
//
// Keys carry a TTL, so a Redis whose maxmemory-policy is anything but noeviction may evict them under memory
// pressure and let a repeat through: Open checks the policy and warns (Status.Evictable).
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
		var ok bool
		err := s.c.call(ctx, OpIdempotency, func(ctx context.Context) error {
			var err error
			ok, err = s.c.rdb.SetNX(ctx, s.rkey(key), b, ttl).Result()
			return err
		})
		if err != nil {
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
	var b []byte
	err := s.c.call(ctx, OpIdempotency, func(ctx context.Context) error {
		var err error
		b, err = s.c.rdb.Get(ctx, s.rkey(key)).Bytes()
		return err
	})
	if errors.Is(err, redis.Nil) {
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
	return s.c.call(ctx, OpIdempotency, func(ctx context.Context) error { return s.c.rdb.Set(ctx, s.rkey(key), b, ttl).Err() })
}

// Forget implements idempotency.Store.
func (s KeyStore) Forget(ctx context.Context, key string) error {
	return s.c.call(ctx, OpIdempotency, func(ctx context.Context) error { return s.c.rdb.Del(ctx, s.rkey(key)).Err() })
}
