package coord

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// Redis as a dependency that can fail. Every operation goes through call: while Redis is up it runs under
// OpTimeout and its failure is observed; once one operation finds Redis unreachable the replica is degraded and
// call returns ErrDown at once, so each caller takes its local branch without paying a timeout. probeLoop alone
// asks Redis then, with backoff on the injected clock, and ends the degraded mode when a probe answers. Each
// transition is logged once, never per call.

// ErrDown is returned, without asking Redis, while Redis is known to be down.
var ErrDown = errors.New("redis is down: using local limits until a background probe answers")

// Op classes name what an operation was for, in metrics (a bounded label) and logs.
const (
	OpQuota       = iota // the shared upstream budget and its hold
	OpLease              // leases and the live set of replicas
	OpSnapshot           // snapshots published, kept and followed
	OpIdempotency        // idempotency keys of writes
	OpProbe              // background probes and the configuration check
	OpShare              // the callers' requests_per_second shares (ShareLimiter)
	NumOps
)

var opNames = [NumOps]string{"quota", "lease", "snapshot", "idempotency", "probe", "share"}

// OpName is the metric label of op class i.
func OpName(i int) string { return opNames[i] }

// Results of the eviction check (Status.Evictable).
const (
	EvictUnknown int32 = -1 // CONFIG GET refused (a managed Redis) or not checked yet
	EvictNo      int32 = 0  // maxmemory-policy noeviction: idempotency keys stay until they expire
	EvictYes     int32 = 1  // the policy may evict idempotency keys under memory pressure

	evictUnchecked int32 = -2 // before the first check, so an unknown first result is still said
)

// call runs f against Redis under OpTimeout, unless Redis is known to be down: then it returns ErrDown at once.
func (c *Coord) call(ctx context.Context, op int, f func(context.Context) error) error {
	if !c.up.Load() {
		c.stats.skipped[op].Add(1)
		return ErrDown
	}
	octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	err := f(octx)
	cancel()
	return c.observe(ctx, op, err)
}

// observe records a failed operation, and the fall of Redis when the failure says Redis cannot be reached.
// redis.Nil is an answer. A failure after the caller itself gave up says nothing sure about Redis: if the
// caller's deadline passed first, the prober is asked to check at once, under its own OpTimeout, so callers with
// short deadlines cannot keep a hung Redis from being found down.
func (c *Coord) observe(ctx context.Context, op int, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.suspect()
		}
		return err
	}
	c.stats.errors[op].Add(1)
	if unreachable(err) {
		c.markDown(op, err)
	}
	return err
}

// suspect wakes the prober for one check now.
func (c *Coord) suspect() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// unreachable tells a Redis that cannot work (no connection, a timeout, a closed pool, or a reply saying it is
// loading, failing over or read-only) from one that answered with an error about the command.
func unreachable(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return true
	}
	for _, p := range []string{"LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "BUSY ", "NOREPLICAS"} {
		if strings.HasPrefix(re.Error(), p) {
			return true
		}
	}
	return false
}

// markDown starts the degraded mode, once per outage, and wakes the prober.
func (c *Coord) markDown(op int, err error) {
	if !c.up.CompareAndSwap(true, false) {
		return
	}
	c.since.Store(c.cfg.Clock.Now().UnixNano())
	c.stats.downs.Add(1)
	c.log.Error("redis unreachable: degraded to local limits (own pollers, local quota and caller rate shares, keyed writes refused); probing in the background",
		"op", opNames[op], "err", err)
	c.suspect()
}

// markUp ends the degraded mode. The first answer after Open is a start, not a recovery.
func (c *Coord) markUp() {
	if !c.up.CompareAndSwap(false, true) {
		return
	}
	now := c.cfg.Clock.Now()
	downSince := time.Unix(0, c.since.Swap(now.UnixNano()))
	if c.stats.downs.Load() == 0 {
		c.log.Info("redis reachable: pollers, quota and idempotency keys shared with the other replicas", "replica", c.id)
	} else {
		c.stats.ups.Add(1)
		c.log.Info("redis reachable again: shared pollers, shared quota, shared idempotency keys", "down_for", now.Sub(downSince).Round(time.Millisecond))
	}
	c.resubscribe()
	c.checkEviction()
}

// probe asks Redis whether it answers, with the heartbeat that keeps this replica in the live set, and ends
// the degraded mode when it does.
func (c *Coord) probe() error {
	c.stats.probes.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.OpTimeout)
	defer cancel()
	if err := c.heartbeat(ctx); err != nil {
		c.stats.errors[OpProbe].Add(1)
		return err
	}
	c.markUp()
	return nil
}

// probeLoop waits until Redis is found down (or suspected: a caller's deadline passed while Redis was asked),
// then probes it, ProbeMin apart and doubling up to ProbeMax, until it answers.
func (c *Coord) probeLoop() {
	defer c.wg.Done()
	for {
		if c.up.Load() {
			select {
			case <-c.stop:
				return
			case <-c.wake:
			}
			if c.up.Load() { // a suspicion, not a fall already seen: check once
				if err := c.probe(); err != nil && unreachable(err) {
					c.markDown(OpProbe, err)
				} else if !clock.Sleep(c.cfg.Clock, c.cfg.ProbeMin, c.stop) { // at most one check per ProbeMin
					return
				}
			}
		}
		for wait := c.cfg.ProbeMin; !c.up.Load(); wait = min(2*wait, c.cfg.ProbeMax) {
			if !clock.Sleep(c.cfg.Clock, wait, c.stop) {
				return
			}
			if c.probe() == nil {
				break
			}
		}
	}
}

// checkEviction warns when Redis may evict idempotency keys (they carry a TTL, so every policy but noeviction
// can drop them under maxmemory) and a repeat of a write could then run twice. CONFIG is often disabled on a
// managed Redis: then the result is unknown, said once.
func (c *Coord) checkEviction() {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.OpTimeout)
	defer cancel()
	cfg, err := c.rdb.ConfigGet(ctx, "maxmemory*").Result()
	policy := cfg["maxmemory-policy"]
	result := EvictNo
	switch {
	case err != nil || policy == "":
		result = EvictUnknown
	case policy != "noeviction":
		result = EvictYes
	}
	if c.evictable.Swap(result) == result {
		return
	}
	switch result {
	case EvictYes:
		c.log.Warn("redis may evict idempotency keys: a repeated write could reach KooPhone twice; set maxmemory-policy noeviction (or give the gateway a Redis of its own)",
			"maxmemory_policy", policy, "maxmemory", cfg["maxmemory"])
	case EvictUnknown:
		c.log.Warn("cannot read redis maxmemory-policy (CONFIG GET refused); make sure it is noeviction, or idempotency keys may be evicted")
	}
}

// Status is the replica's view of Redis, for readiness details and metrics.
type Status struct {
	Degraded  bool      // Redis is unreachable: local pollers, a local quota share, idempotent writes refused
	Since     time.Time // when Degraded last changed
	Leases    int       // keys this replica polls for everyone
	Replicas  int       // live replicas in the last heartbeat's view, this one included
	Evictable int32     // EvictNo, EvictYes or EvictUnknown
	Stats
}

// Stats are the counters of coordination since Open.
type Stats struct {
	Errors       uint64 // Redis operations that failed, all classes
	Degradations uint64 // switches into degraded mode (a start without Redis included)
	Recoveries   uint64 // switches back
	Published    uint64 // snapshots published to the other replicas
	Received     uint64 // snapshots received from the other replicas
	LocalQuota   uint64 // upstream calls admitted by the local share
	LocalShare   uint64 // callers' calls admitted by their local requests_per_second share (ShareLimiter)
	Commands     uint64 // Redis commands sent (every attempt, probes included)
	Probes       uint64 // background probes (and the one at Open)
	Takeovers    uint64 // leases taken over from a replica that does not own the key
	// By op class (OpName): failed operations, and calls that took the local branch without asking Redis.
	ErrorsBy, Skipped [NumOps]uint64
}

type counters struct {
	downs, ups, published, received, localQuota, localShare, commands, probes, takeovers atomic.Uint64
	errors, skipped                                                                      [NumOps]atomic.Uint64
}

// Status reports the current mode and counters; it is cheap (no Redis call).
func (c *Coord) Status() Status {
	s := Status{Degraded: !c.up.Load(), Since: time.Unix(0, c.since.Load()), Evictable: max(EvictUnknown, c.evictable.Load())}
	c.leases.mu.Lock()
	s.Leases = len(c.leases.held)
	c.leases.mu.Unlock()
	s.Replicas = len(c.members.view(c.id))
	s.Stats = Stats{
		Degradations: c.stats.downs.Load(), Recoveries: c.stats.ups.Load(), Published: c.stats.published.Load(),
		Received: c.stats.received.Load(), LocalQuota: c.stats.localQuota.Load(), LocalShare: c.stats.localShare.Load(),
		Commands: c.stats.commands.Load(), Probes: c.stats.probes.Load(), Takeovers: c.stats.takeovers.Load(),
	}
	for i := range NumOps {
		s.ErrorsBy[i] = c.stats.errors[i].Load()
		s.Skipped[i] = c.stats.skipped[i].Load()
		s.Errors += s.ErrorsBy[i]
	}
	return s
}

// Detail is a one-line description of the mode, for readiness details.
func (s Status) Detail() string {
	if s.Degraded {
		return "redis unreachable: local pollers, local quota share, local caller rate shares, idempotent writes refused"
	}
	return "redis: shared pollers, shared quota, shared caller rate shares, shared idempotency keys"
}

// countHook counts the commands the client sends, so tests and metrics can tell that calls took the local branch.
type countHook struct{ n *atomic.Uint64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(uint64(len(cmds)))
		return next(ctx, cmds)
	}
}
