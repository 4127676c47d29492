package coord

import (
	"context"
	"hash/fnv"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// The live set and who owns which key. Each replica heartbeats its id into one sorted set (score: when the entry
// expires, on Redis's clock) every third of the lease TTL, and reads the set back in the same step. A key's owner
// is the live replica with the highest rendezvous weight for it (highest-random-weight hashing): the keys spread
// evenly, and when a replica leaves only its own keys get new owners, spread evenly over the others.

// heartbeatScript refreshes this replica's entry, drops the expired ones and returns the live set. The set itself
// expires when no replica is left to refresh it.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%d', now + ttl), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return redis.call('ZRANGE', KEYS[1], 0, -1)`)

// members is this replica's view of the live set.
type members struct {
	mu  sync.Mutex
	ids []string // sorted
}

func (c *Coord) membersKey() string { return c.key("replicas") }

// heartbeat keeps this replica in the live set and refreshes its view of it.
func (c *Coord) heartbeat(ctx context.Context) error {
	ids, err := heartbeatScript.Run(ctx, c.rdb, []string{c.membersKey()}, c.id, c.cfg.LeaseTTL.Milliseconds()).StringSlice()
	if err != nil {
		return err
	}
	c.members.set(ids)
	return nil
}

// heartbeatCmd queues the heartbeat in a pipeline; see setFrom.
func (c *Coord) heartbeatCmd(ctx context.Context, p redis.Pipeliner) *redis.Cmd {
	return heartbeatScript.Eval(ctx, p, []string{c.membersKey()}, c.id, c.cfg.LeaseTTL.Milliseconds())
}

func (m *members) set(ids []string) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	m.mu.Lock()
	m.ids = ids
	m.mu.Unlock()
}

// view is the live set as last seen, with self in it (a replica that asks is alive, even before its first
// heartbeat lands).
func (m *members) view(self string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, found := slices.BinarySearch(m.ids, self); found {
		return m.ids
	}
	ids := append(slices.Clone(m.ids), self)
	slices.Sort(ids)
	return ids
}

// live reports whether id was in the last view.
func (m *members) live(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, found := slices.BinarySearch(m.ids, id)
	return found
}

// owner is the replica of ids with the highest rendezvous weight for key (ties: the smaller id).
func owner(key string, ids []string) string {
	var best string
	var bestW uint64
	for _, id := range ids {
		if w := weight(id, key); best == "" || w > bestW || w == bestW && id < best {
			best, bestW = id, w
		}
	}
	return best
}

// weight hashes (replica, key) to a uniform 64-bit number: FNV-1a, then a 64-bit finaliser (MurmurHash3's
// fmix64), since FNV alone spreads ids that differ in their last bytes poorly.
func weight(id, key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// owns reports whether this replica owns key in its current view.
func (c *Coord) owns(key string) bool { return owner(key, c.members.view(c.id)) == c.id }

// Owner is the replica that owns key in this replica's view of the live set, for tests and debugging.
func (c *Coord) Owner(key string) string { return owner(key, c.members.view(c.id)) }

// setFrom reads a pipelined heartbeat's reply into the view.
func (c *Coord) setFrom(cmd *redis.Cmd) error {
	ids, err := cmd.StringSlice()
	if err != nil {
		return err
	}
	c.members.set(ids)
	return nil
}
