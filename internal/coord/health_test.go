package coord

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/coord/redistest"
	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
)

// logBuf collects log lines from several goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }

// count is how many lines hold all of words.
func (l *logBuf) count(words ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		all := line != ""
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			n++
		}
	}
	return n
}

func (l *logBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

const (
	minProbe = time.Second
	opTO     = 200 * time.Millisecond
)

// openFake opens a coordinator whose renewals and probes run on a fake clock: nothing asks Redis in the
// background unless the test advances it (the lease TTL is an hour, so renewals never come).
func openFake(t *testing.T, url string, clk *clock.Fake, logs *logBuf) *Coord {
	t.Helper()
	c, err := Open(Config{URL: url, LeaseTTL: time.Hour, OpTimeout: opTO, ProbeMin: minProbe, ProbeMax: 4 * minProbe,
		Clock: clk, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.shutdown(false) })
	return c
}

// waitTimers waits until the coordinator's loops have armed n timers on clk.
func waitTimers(t *testing.T, clk *clock.Fake, n int) {
	t.Helper()
	giveUp := make(chan struct{})
	timer := time.AfterFunc(20*time.Second, func() { close(giveUp) })
	defer timer.Stop()
	if !clk.WaitForTimers(n, giveUp) {
		t.Fatalf("%d timers armed, want %d", clk.Pending(), n)
	}
}

// During an outage no call asks Redis: they take the local branch at once. Only the prober asks, when its
// backoff says so, and the first probe that answers ends the outage. One log line each way.
func TestOutageSkipsRedisAndProbesInTheBackground(t *testing.T) {
	for _, mode := range []string{"refused", "hung"} {
		t.Run(mode, func(t *testing.T) {
			rs := redistest.Start(t)
			clk := clock.NewFake(time.Now())
			logs := &logBuf{}
			c := openFake(t, rs.URL(), clk, logs)
			q, err := c.NewQuota(QuotaConfig{Read: Rate{Events: 1000, Per: time.Second}, Write: Rate{Events: 1000, Per: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			ks := c.KeyStore()
			ctx := context.Background()
			if _, ok, err := ks.Claim(ctx, "before", idempotency.Record{}, time.Minute); !ok || err != nil {
				t.Fatalf("claim with Redis up: %v %v", ok, err)
			}
			waitTimers(t, clk, 1) // the renewer; the prober waits for news, not for time

			switch mode {
			case "refused":
				rs.Stop()
				// The first call to find Redis down pays for it (a refused dial is quick) and takes the local branch.
				if err := waitNow(q, false); err != nil {
					t.Fatalf("first read with Redis refused: %v", err)
				}
			case "hung":
				rs.Pause()
				defer rs.Resume()
				// A caller whose deadline is shorter than OpTimeout gives up first; the prober checks at once,
				// under its own OpTimeout, and finds Redis down.
				short, cancel := context.WithTimeout(ctx, opTO/4)
				_, _, err := ks.Claim(short, "short", idempotency.Record{}, time.Minute)
				cancel()
				if err == nil {
					t.Fatal("claim with Redis hung succeeded")
				}
			}
			eventually(t, "degraded", func() bool { return c.Status().Degraded })
			waitTimers(t, clk, 2) // the prober sleeps its first backoff

			before := c.Status()
			for i := range 30 {
				if err := waitNow(q, i%2 == 0); err != nil {
					t.Fatalf("local quota: %v", err)
				}
				if _, _, err := ks.Claim(ctx, "k", idempotency.Record{}, time.Minute); !errors.Is(err, ErrDown) {
					t.Fatalf("claim while down: %v, want ErrDown", err)
				}
				if lead, _ := c.Lead(ctx, "key"); !lead {
					t.Fatal("Lead while down: false, want true (poll for ourselves)")
				}
				c.Publish(ctx, "key", stream.Shared{Data: []byte("x")})
			}
			after := c.Status()
			if after.Commands != before.Commands {
				t.Errorf("%d Redis commands sent by 120 calls during the outage, want 0", after.Commands-before.Commands)
			}
			if got := after.LocalQuota - before.LocalQuota; got != 30 {
				t.Errorf("%d reads and writes admitted by the local share, want 30", got)
			}
			for op, want := range map[int]uint64{OpQuota: 60, OpIdempotency: 30, OpLease: 30, OpSnapshot: 30} {
				if got := after.Skipped[op] - before.Skipped[op]; got != want {
					t.Errorf("skipped %s: %d, want %d", OpName(op), got, want)
				}
			}

			// The prober waits ProbeMin, then twice as long after each failure; nothing asks Redis in between.
			probes := after.Probes
			clk.Advance(minProbe - time.Millisecond)
			if clk.Pending() != 2 || c.Status().Probes != probes {
				t.Fatal("probed before ProbeMin")
			}
			clk.Advance(time.Millisecond)
			eventually(t, "first probe", func() bool { return c.Status().Probes == probes+1 })
			waitTimers(t, clk, 2)
			clk.Advance(minProbe)
			if clk.Pending() != 2 {
				t.Fatal("second probe came after ProbeMin, want 2*ProbeMin")
			}
			if !c.Status().Degraded {
				t.Fatal("a failed probe ended the outage")
			}

			// Redis is back: the next probe finds it and the calls go to Redis again.
			if mode == "refused" {
				rs.Restart()
			} else {
				rs.Resume()
			}
			clk.Advance(minProbe)
			eventually(t, "recovered", func() bool { return !c.Status().Degraded })
			sent := c.Status().Commands
			if _, ok, err := ks.Claim(ctx, "after", idempotency.Record{}, time.Minute); !ok || err != nil {
				t.Fatalf("claim after recovery: %v %v", ok, err)
			}
			if c.Status().Commands == sent {
				t.Fatal("claim after recovery did not ask Redis")
			}
			st := c.Status()
			if st.Degradations != 1 || st.Recoveries != 1 {
				t.Errorf("degradations %d, recoveries %d; want 1 and 1", st.Degradations, st.Recoveries)
			}
			if n := logs.count("level=ERROR", "redis unreachable"); n != 1 {
				t.Errorf("%d ERROR lines for one outage, want 1:\n%s", n, logs)
			}
			if n := logs.count("level=INFO", "redis reachable again"); n != 1 {
				t.Errorf("%d INFO lines for one recovery, want 1:\n%s", n, logs)
			}
			t.Logf("%s: 120 calls during the outage sent %d Redis commands; %d probes", mode, after.Commands-before.Commands, st.Probes)
		})
	}
}

func TestStartWithoutRedis(t *testing.T) {
	rs := redistest.Start(t)
	rs.Stop()
	clk := clock.NewFake(time.Now())
	logs := &logBuf{}
	c := openFake(t, rs.URL(), clk, logs)
	if st := c.Status(); !st.Degraded || st.Degradations != 1 {
		t.Fatalf("status after Open without Redis: %+v", st)
	}
	if logs.count("level=ERROR", "redis unreachable at start") != 1 {
		t.Fatalf("no ERROR line at start:\n%s", logs)
	}
	rs.Restart()
	waitTimers(t, clk, 2)
	clk.Advance(minProbe)
	eventually(t, "recovered", func() bool { return !c.Status().Degraded })
}

// The eviction check: noeviction is safe; any other policy may drop idempotency keys (a WARN line and
// Status.Evictable); a Redis that refuses CONFIG (managed Redis, ACLs) is unknown, said once.
func TestEvictionPolicyCheck(t *testing.T) {
	rs := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer func() { _ = admin.Close() }()
	ctx := context.Background()
	clk := clock.NewFake(time.Now())

	logs := &logBuf{}
	if c := openFake(t, rs.URL(), clk, logs); c.Status().Evictable != EvictNo || logs.count("level=WARN") != 0 {
		t.Fatalf("default redis-server (noeviction): evictable %d, logs:\n%s", c.Status().Evictable, logs)
	}

	if err := admin.ConfigSet(ctx, "maxmemory", "200mb").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "volatile-lru").Err(); err != nil {
		t.Fatal(err)
	}
	logs = &logBuf{}
	if c := openFake(t, rs.URL(), clk, logs); c.Status().Evictable != EvictYes || logs.count("level=WARN", "may evict idempotency keys", "volatile-lru") != 1 {
		t.Fatalf("volatile-lru: evictable %d, logs:\n%s", c.Status().Evictable, logs)
	}

	if err := admin.Do(ctx, "ACL", "SETUSER", "gw", "on", ">pw", "~*", "&*", "+@all", "-config").Err(); err != nil {
		t.Fatal(err)
	}
	logs = &logBuf{}
	if c := openFake(t, "redis://gw:pw@"+rs.Addr, clk, logs); c.Status().Evictable != EvictUnknown || logs.count("level=WARN", "cannot read redis maxmemory-policy") != 1 {
		t.Fatalf("CONFIG refused: evictable %d, logs:\n%s", c.Status().Evictable, logs)
	}
}
