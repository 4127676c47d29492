package coord

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
)

// Coord is the stream.Peer of the watch hubs: a lease per key (SET PX, renewed every LeaseTTL/3 while held)
// elects the replica that polls; its snapshots go out on Pub/Sub, numbered by Redis's clock so no replica
// ever steps back to an older one, and the latest is kept (terminal ones for the hub's TerminalTTL).
//
// Leases are spread: a key's lease goes to its owner by rendezvous hashing over the live replicas (members.go).
// The owner takes a free lease at once, and takes it over from a live replica that does not own the key (which
// took it while the owner had no watcher, or before the owner joined). Another replica takes a free lease only
// after Handoff, so nothing stalls when the owner has no watcher of the key or cannot poll. So each replica polls
// about 1/N of the keys, and one replica's death stalls about 1/N of them for a lease TTL.
var _ stream.Peer = (*Coord)(nil)

var (
	// renewScript extends the lease only if it is still ours; 0 means another replica took it.
	renewScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
	// releaseScript deletes the lease only if it is still ours.
	releaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	// takeoverScript gives the lease to ARGV[2] if ARGV[1] still holds it.
	takeoverScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0`)
	// publishScript numbers a snapshot, keeps it (or forgets the kept one) and publishes it, in one step. The
	// number is Redis's clock in µs (at least one more than the last), so it keeps growing across a Redis that
	// restarted empty: followers drop anything not newer than what they have.
	publishScript = redis.NewScript(`
local t = redis.call('TIME')
local v = math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), (tonumber(redis.call('GET', KEYS[1])) or 0) + 1)
v = string.format('%d', v)
redis.call('SET', KEYS[1], v, 'PX', 86400000)
local msg = v .. '|' .. ARGV[1] .. '|' .. ARGV[2]
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], msg, 'PX', ARGV[3]) else redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', ARGV[4], msg)
return v`)
)

type leases struct {
	mu   sync.Mutex
	held map[string]*lease
	free map[string]time.Time // keys this replica does not own, by when it first saw their lease free
}

type lease struct{}

// The keys of one watched key share a hash tag, so the scripts work on a Cluster.
func (c *Coord) leaseKey(k string) string   { return c.key("{"+k+"}", "lease") }
func (c *Coord) versionKey(k string) string { return c.key("{"+k+"}", "ver") }
func (c *Coord) keptKey(k string) string    { return c.key("{"+k+"}", "last") }
func (c *Coord) channel(k string) string    { return c.key("snap", k) }

// Lead implements stream.Peer: see the rules above. A Redis failure, or Redis known to be down, means lead (poll
// for ourselves), at once.
func (c *Coord) Lead(ctx context.Context, key string) (bool, time.Duration) {
	retry := c.cfg.LeaseTTL / 3
	c.leases.mu.Lock()
	_, held := c.leases.held[key]
	c.leases.mu.Unlock()
	if held {
		return true, 0
	}
	var holder string
	err := c.call(ctx, OpLease, func(ctx context.Context) error {
		var err error
		holder, err = c.rdb.Get(ctx, c.leaseKey(key)).Result()
		return ignoreNil(err)
	})
	if err != nil {
		return true, 0 // degraded: poll for ourselves rather than leave the watchers without a poller
	}
	mine := c.owns(key)
	switch {
	case holder == c.id: // ours from before: a release skipped while Redis was down, a poller that came back
		return c.take(key), 0
	case holder == "" && mine:
		if ok, err := c.takeFree(ctx, key); ok || err != nil {
			return true, 0
		}
	case holder == "":
		if wait := c.handoffLeft(key); wait > 0 {
			c.catchUp(ctx, key)
			return false, min(wait, retry)
		}
		if ok, err := c.takeFree(ctx, key); ok || err != nil {
			return true, 0
		}
	case mine && c.members.live(holder): // a holder not in the view is dead (its lease expires) or new (wait for it)
		var n int64
		err := c.call(ctx, OpLease, func(ctx context.Context) error {
			var err error
			n, err = takeoverScript.Run(ctx, c.rdb, []string{c.leaseKey(key)}, holder, c.id, c.cfg.LeaseTTL.Milliseconds()).Int64()
			return err
		})
		if err != nil {
			return true, 0
		}
		if n == 1 {
			c.stats.takeovers.Add(1)
			return c.take(key), 0
		}
	}
	c.leases.mu.Lock()
	delete(c.leases.free, key) // held by someone: the handoff wait starts again when it is free
	c.leases.mu.Unlock()
	c.catchUp(ctx, key)
	return false, retry
}

// takeFree takes a free lease; err is a Redis failure (then the caller polls for itself).
func (c *Coord) takeFree(ctx context.Context, key string) (bool, error) {
	var ok bool
	err := c.call(ctx, OpLease, func(ctx context.Context) error {
		var err error
		ok, err = c.rdb.SetNX(ctx, c.leaseKey(key), c.id, c.cfg.LeaseTTL).Result()
		return err
	})
	if ok {
		c.take(key)
	}
	return ok, err
}

// take records a lease as held.
func (c *Coord) take(key string) bool {
	c.leases.mu.Lock()
	c.leases.held[key] = &lease{}
	delete(c.leases.free, key)
	c.leases.mu.Unlock()
	return true
}

// handoffLeft is how much longer this replica leaves a free lease it does not own to its owner.
func (c *Coord) handoffLeft(key string) time.Duration {
	now := c.cfg.Clock.Now()
	c.leases.mu.Lock()
	defer c.leases.mu.Unlock()
	first, ok := c.leases.free[key]
	if !ok {
		c.leases.free[key] = now
		first = now
	}
	return c.cfg.Handoff - now.Sub(first)
}

// catchUp hands this replica's followers of key the kept snapshot, in case Pub/Sub lost one: a subscription
// that was reconnecting (Redis restarted, a network blip) when the leader published would otherwise wait for the
// next change, or forever after a terminal one. Followers drop anything not newer than what they have.
func (c *Coord) catchUp(ctx context.Context, key string) {
	var raw string
	err := c.call(ctx, OpSnapshot, func(ctx context.Context) error {
		var err error
		raw, err = c.rdb.Get(ctx, c.keptKey(key)).Result()
		return err
	})
	if err != nil {
		return
	}
	ver, s, ok := parseMsg(raw)
	if !ok {
		return
	}
	c.follow.mu.Lock()
	defer c.follow.mu.Unlock()
	for f := range c.follow.subs[c.channel(key)] {
		f.deliver(ver, s)
	}
}

// Release implements stream.Peer.
func (c *Coord) Release(key string) {
	c.leases.mu.Lock()
	_, held := c.leases.held[key]
	delete(c.leases.held, key)
	delete(c.leases.free, key)
	c.leases.mu.Unlock()
	if !held {
		return
	}
	// While Redis is down this is skipped: the lease expires by itself.
	_ = c.call(context.Background(), OpLease, func(ctx context.Context) error {
		return ignoreNil(releaseScript.Run(ctx, c.rdb, []string{c.leaseKey(key)}, c.id).Err())
	})
}

// releaseAll hands back every lease and leaves the live set, in one round trip (a graceful stop).
//
//nolint:contextcheck // runs at Close, for no caller: c.call bounds it with the op timeout
func (c *Coord) releaseAll() {
	c.leases.mu.Lock()
	keys := make([]string, 0, len(c.leases.held))
	for k := range c.leases.held {
		keys = append(keys, k)
	}
	clear(c.leases.held)
	c.leases.mu.Unlock()
	_ = c.call(context.Background(), OpLease, func(ctx context.Context) error {
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				releaseScript.Eval(ctx, p, []string{c.leaseKey(k)}, c.id)
			}
			p.ZRem(ctx, c.membersKey(), c.id)
			return nil
		})
		return err
	})
}

// renewLoop extends every held lease three times per TTL, drops the ones another replica took (its owner, or
// after Redis lost them), and heartbeats this replica into the live set. While Redis is down it does nothing:
// the prober asks Redis then, and the leases are kept (every replica polls for itself anyway).
func (c *Coord) renewLoop() {
	defer c.wg.Done()
	for clock.Sleep(c.cfg.Clock, c.cfg.LeaseTTL/3, c.stop) {
		if !c.up.Load() {
			continue
		}
		c.leases.mu.Lock()
		keys := make([]string, 0, len(c.leases.held))
		for k := range c.leases.held {
			keys = append(keys, k)
		}
		c.leases.mu.Unlock()
		var hb *redis.Cmd
		cmds := make([]*redis.Cmd, len(keys))
		err := c.call(context.Background(), OpLease, func(ctx context.Context) error {
			_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				hb = c.heartbeatCmd(ctx, p)
				for i, k := range keys {
					cmds[i] = renewScript.Eval(ctx, p, []string{c.leaseKey(k)}, c.id, c.cfg.LeaseTTL.Milliseconds())
				}
				return nil
			})
			return err
		})
		if hb == nil || errors.Is(err, ErrDown) || (err != nil && unreachable(err)) {
			continue // keep them: while Redis is down every replica polls anyway
		}
		_ = c.setFrom(hb)
		c.leases.mu.Lock()
		for i, k := range keys {
			if n, err := cmds[i].Int64(); err == nil && n == 0 {
				delete(c.leases.held, k)
			}
		}
		c.leases.mu.Unlock()
	}
}

// Publish implements stream.Peer.
func (c *Coord) Publish(ctx context.Context, key string, s stream.Shared) {
	flag := "n"
	if s.Terminal {
		flag = "t"
	}
	err := c.call(ctx, OpSnapshot, func(ctx context.Context) error {
		return publishScript.Run(ctx, c.rdb, []string{c.versionKey(key), c.keptKey(key)},
			flag, s.Data, s.Keep.Milliseconds(), c.channel(key)).Err()
	})
	if err == nil {
		c.stats.published.Add(1)
	}
}

// followers multiplexes every followed key over one Pub/Sub connection.
type followers struct {
	mu    sync.Mutex
	ps    *redis.PubSub
	subs  map[string]map[*follower]struct{} // by channel
	stale map[string]struct{}               // channels left while Redis was down, unsubscribed when it is back
	done  bool
}

type follower struct {
	mu   sync.Mutex // serialises senders, so drain-then-send never blocks
	last int64      // newest version delivered
	ch   chan stream.Shared
}

// deliver hands over a snapshot unless a newer one was already delivered; an undelivered older one is replaced.
func (f *follower) deliver(ver int64, s stream.Shared) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ver <= f.last {
		return
	}
	f.last = ver
	select {
	case f.ch <- s:
	default:
		select {
		case <-f.ch:
		default:
		}
		f.ch <- s
	}
}

// Follow implements stream.Peer.
func (c *Coord) Follow(ctx context.Context, key string) <-chan stream.Shared {
	f := &follower{ch: make(chan stream.Shared, 1)}
	ch := c.channel(key)
	fs := &c.follow
	fs.mu.Lock()
	if fs.done {
		fs.mu.Unlock()
		return f.ch
	}
	if fs.ps == nil {
		// One subscription serves every follower for the Coord's life: no caller's context may end it.
		fs.ps = c.rdb.Subscribe(context.Background()) //nolint:contextcheck // deliberate, see above
		c.wg.Add(1)
		go c.dispatch(fs.ps)
	}
	first := fs.subs[ch] == nil
	if first {
		fs.subs[ch] = map[*follower]struct{}{}
		delete(fs.stale, ch)
	}
	fs.subs[ch][f] = struct{}{}
	ps := fs.ps
	fs.mu.Unlock()

	if first {
		// go-redis remembers the channel even when this fails and resubscribes when it reconnects; a channel
		// skipped while Redis is down is subscribed by resubscribe when Redis is back.
		_ = c.call(ctx, OpSnapshot, func(ctx context.Context) error { return ps.Subscribe(ctx, ch) })
	}
	// Runs once ctx is done, so it cannot run on ctx.
	context.AfterFunc(ctx, func() { c.unfollow(ch, f) }) //nolint:contextcheck // deliberate, see above

	// The kept snapshot, read after subscribing so nothing published in between is missed.
	var raw string
	err := c.call(ctx, OpSnapshot, func(ctx context.Context) error {
		var err error
		raw, err = c.rdb.Get(ctx, c.keptKey(key)).Result()
		return err
	})
	if err == nil {
		if ver, s, ok := parseMsg(raw); ok {
			f.deliver(ver, s)
		}
	}
	return f.ch
}

func (c *Coord) unfollow(ch string, f *follower) {
	fs := &c.follow
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.subs[ch], f)
	if len(fs.subs[ch]) == 0 {
		delete(fs.subs, ch)
		if fs.ps != nil && !fs.done {
			ps := fs.ps
			err := c.call(context.Background(), OpSnapshot, func(ctx context.Context) error { return ps.Unsubscribe(ctx, ch) })
			if errors.Is(err, ErrDown) {
				fs.stale[ch] = struct{}{}
			} // another failure leaves a channel whose messages nobody reads
		}
	}
}

// resubscribe, when Redis is back, subscribes the channels followed while it was down and drops the ones left.
func (c *Coord) resubscribe() {
	fs := &c.follow
	fs.mu.Lock()
	if fs.ps == nil || fs.done {
		fs.mu.Unlock()
		return
	}
	ps := fs.ps
	subs := make([]string, 0, len(fs.subs))
	for ch := range fs.subs {
		subs = append(subs, ch)
	}
	stale := make([]string, 0, len(fs.stale))
	for ch := range fs.stale {
		stale = append(stale, ch)
	}
	clear(fs.stale)
	fs.mu.Unlock()
	if len(subs) > 0 {
		_ = c.call(context.Background(), OpSnapshot, func(ctx context.Context) error { return ps.Subscribe(ctx, subs...) })
	}
	if len(stale) > 0 {
		_ = c.call(context.Background(), OpSnapshot, func(ctx context.Context) error { return ps.Unsubscribe(ctx, stale...) })
	}
}

func (c *Coord) dispatch(ps *redis.PubSub) {
	defer c.wg.Done()
	for msg := range ps.Channel() {
		ver, s, ok := parseMsg(msg.Payload)
		if !ok {
			continue
		}
		c.stats.received.Add(1)
		c.follow.mu.Lock()
		for f := range c.follow.subs[msg.Channel] {
			f.deliver(ver, s)
		}
		c.follow.mu.Unlock()
	}
}

func (fs *followers) close() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.done = true
	if fs.ps != nil {
		_ = fs.ps.Close()
	}
}

// parseMsg reads "version|flag|data".
func parseMsg(raw string) (int64, stream.Shared, bool) {
	v, rest, ok := strings.Cut(raw, "|")
	if !ok {
		return 0, stream.Shared{}, false
	}
	flag, data, ok := strings.Cut(rest, "|")
	ver, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil || (flag != "t" && flag != "n") {
		return 0, stream.Shared{}, false
	}
	return ver, stream.Shared{Data: []byte(data), Terminal: flag == "t"}, true
}

func ignoreNil(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}
