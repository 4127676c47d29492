package coord

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
)

// Coord is the stream.Peer of the watch hubs: a lease per key (SET NX PX, renewed every LeaseTTL/3 while held)
// elects the replica that polls; its snapshots go out on Pub/Sub, numbered by Redis's clock so no replica
// ever steps back to an older one, and the latest is kept (terminal ones for the hub's TerminalTTL).
var _ stream.Peer = (*Coord)(nil)

var (
	// renewScript extends the lease only if it is still ours; 0 means another replica took it.
	renewScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
	// releaseScript deletes the lease only if it is still ours.
	releaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
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
}

type lease struct{}

// The keys of one watched key share a hash tag, so the scripts work on a Cluster.
func (c *Coord) leaseKey(k string) string   { return c.key("{"+k+"}", "lease") }
func (c *Coord) versionKey(k string) string { return c.key("{"+k+"}", "ver") }
func (c *Coord) keptKey(k string) string    { return c.key("{"+k+"}", "last") }
func (c *Coord) channel(k string) string    { return c.key("snap", k) }

// Lead implements stream.Peer.
func (c *Coord) Lead(ctx context.Context, key string) (bool, time.Duration) {
	retry := c.cfg.LeaseTTL / 3
	c.leases.mu.Lock()
	_, held := c.leases.held[key]
	c.leases.mu.Unlock()
	if held {
		return true, 0
	}
	octx, cancel := c.opCtx(ctx)
	ok, err := c.rdb.SetNX(octx, c.leaseKey(key), c.id, c.cfg.LeaseTTL).Result()
	cancel()
	if c.observe(err) != nil {
		return true, 0 // degraded: poll for ourselves rather than leave the watchers without a poller
	}
	if !ok {
		c.catchUp(ctx, key)
		return false, retry
	}
	c.leases.mu.Lock()
	c.leases.held[key] = &lease{}
	c.leases.mu.Unlock()
	return true, 0
}

// catchUp hands this replica's followers of key the kept snapshot, in case Pub/Sub lost one: a subscription
// that was reconnecting (Redis restarted, a network blip) when the leader published would otherwise wait for the
// next change, or forever after a terminal one. Followers drop anything not newer than what they have.
func (c *Coord) catchUp(ctx context.Context, key string) {
	octx, cancel := c.opCtx(ctx)
	raw, err := c.rdb.Get(octx, c.keptKey(key)).Result()
	cancel()
	if c.observe(ignoreNil(err)) != nil || err != nil {
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
	c.leases.mu.Unlock()
	if !held {
		return
	}
	ctx, cancel := c.opCtx(context.Background())
	defer cancel()
	c.observe(ignoreNil(releaseScript.Run(ctx, c.rdb, []string{c.leaseKey(key)}, c.id).Err()))
}

// renewLoop extends every held lease three times per TTL, drops the ones another replica took (after Redis lost
// them, say), and pings while degraded so the replica notices Redis is back even when it holds nothing.
func (c *Coord) renewLoop() {
	defer c.wg.Done()
	for clock.Sleep(c.cfg.Clock, c.cfg.LeaseTTL/3, c.stop) {
		c.leases.mu.Lock()
		keys := make([]string, 0, len(c.leases.held))
		for k := range c.leases.held {
			keys = append(keys, k)
		}
		c.leases.mu.Unlock()
		ctx, cancel := c.opCtx(context.Background())
		if len(keys) == 0 {
			if c.degraded.Load() {
				c.observe(c.rdb.Ping(ctx).Err())
			}
			cancel()
			continue
		}
		cmds := make([]*redis.Cmd, len(keys))
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = renewScript.Eval(ctx, p, []string{c.leaseKey(k)}, c.id, c.cfg.LeaseTTL.Milliseconds())
			}
			return nil
		})
		cancel()
		if c.observe(err) != nil {
			continue // keep them: while Redis is down every replica polls anyway
		}
		c.leases.mu.Lock()
		for i, k := range keys {
			if n, _ := cmds[i].Int64(); n == 0 {
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
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	err := publishScript.Run(octx, c.rdb, []string{c.versionKey(key), c.keptKey(key)},
		flag, s.Data, s.Keep.Milliseconds(), c.channel(key)).Err()
	if c.observe(err) == nil {
		c.stats.published.Add(1)
	}
}

// followers multiplexes every followed key over one Pub/Sub connection.
type followers struct {
	mu   sync.Mutex
	ps   *redis.PubSub
	subs map[string]map[*follower]struct{} // by channel
	done bool
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
		fs.ps = c.rdb.Subscribe(context.Background())
		c.wg.Add(1)
		go c.dispatch(fs.ps)
	}
	first := fs.subs[ch] == nil
	if first {
		fs.subs[ch] = map[*follower]struct{}{}
	}
	fs.subs[ch][f] = struct{}{}
	ps := fs.ps
	fs.mu.Unlock()

	if first {
		// The channel is remembered even when this fails, and go-redis resubscribes when it reconnects.
		octx, cancel := c.opCtx(ctx)
		c.observe(ps.Subscribe(octx, ch))
		cancel()
	}
	context.AfterFunc(ctx, func() { c.unfollow(ch, f) })

	// The kept snapshot, read after subscribing so nothing published in between is missed.
	octx, cancel := c.opCtx(ctx)
	raw, err := c.rdb.Get(octx, c.keptKey(key)).Result()
	cancel()
	if c.observe(err) == nil {
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
			ctx, cancel := c.opCtx(context.Background())
			_ = fs.ps.Unsubscribe(ctx, ch) // a failure leaves a channel whose messages nobody reads
			cancel()
		}
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
	if err == redis.Nil {
		return nil
	}
	return err
}
