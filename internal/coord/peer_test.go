package coord

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/koophone-gateway/koophone-gateway/internal/coord/redistest"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var stringCodec = stream.Codec[string]{
	Marshal:   func(s string) ([]byte, error) { return []byte(s), nil },
	Unmarshal: func(b []byte) (string, error) { return string(b), nil },
}

func openCoord(t *testing.T, url string) *Coord {
	t.Helper()
	c, err := Open(Config{URL: url, LeaseTTL: 300 * time.Millisecond, OpTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// watched is a watched thing whose value the test sets; polls counts reads per replica.
type watched struct {
	value atomic.Value
	polls [3]atomic.Int64
}

func (u *watched) source(replica int) stream.Source[string] {
	return stream.Source[string]{
		Poll: func(context.Context) (string, error) {
			u.polls[replica].Add(1)
			return u.value.Load().(string), nil
		},
		Terminal: func(s string) bool { return s == "done" },
	}
}

var hubCfg = stream.Config{FirstInterval: 20 * time.Millisecond, MaxInterval: 20 * time.Millisecond, Jitter: -1}

// eventually polls cond until it holds, failing after a generous bound (a bound on hanging, not a timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testsupport.Eventually(t, 20*time.Second, what, cond)
}

// next reads the subscription until it returns want.
func next(t *testing.T, sub stream.Subscription[string], want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		s, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v (waiting for %q)", err, want)
		}
		if s.Value == want {
			return
		}
	}
}

func TestSharedPollerFailoverAndOutage(t *testing.T) {
	rs := redistest.Start(t)
	up := &watched{}
	up.value.Store("v1")
	key := stream.Key{Identity: "id", Kind: "task", ID: "t1"}

	var coords [3]*Coord
	var hubs [3]*stream.Local[string]
	var subs [3]stream.Subscription[string]
	for i := range 3 {
		coords[i] = openCoord(t, rs.URL())
		hubs[i] = stream.NewShared(hubCfg, coords[i], stringCodec)
		sub, err := hubs[i].Watch(context.Background(), key, up.source(i))
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = sub
	}
	closed := [3]bool{}
	defer func() {
		for i := range 3 {
			if !closed[i] {
				subs[i].Close()
				hubs[i].Close()
				_ = coords[i].Close()
			}
		}
	}()
	for i := range 3 {
		next(t, subs[i], "v1")
	}
	leader := func() int {
		for i := range 3 {
			if !closed[i] && coords[i].Status().Leases == 1 {
				return i
			}
		}
		return -1
	}
	// One leader: a replica that took the lease before the key's owner saw it holds it until its next renewal.
	eventually(t, "one leader", func() bool {
		n := 0
		for i := range 3 {
			n += coords[i].Status().Leases
		}
		return n == 1
	})
	l := leader()
	before := [3]int64{}
	for i := range 3 {
		before[i] = up.polls[i].Load()
	}
	up.value.Store("v2")
	for i := range 3 {
		next(t, subs[i], "v2")
	}
	for i := range 3 {
		if i != l && up.polls[i].Load() != before[i] && coords[l].Status().Leases == 1 {
			t.Errorf("replica %d polled while %d held the lease", i, l)
		}
	}

	// The leader dies: its lease is not released (Close would), it expires. Simulate by closing the hub
	// without Release: stop renewing by closing the coord after dropping its leases from memory.
	coords[l].leases.mu.Lock()
	clear(coords[l].leases.held)
	coords[l].leases.mu.Unlock()
	subs[l].Close()
	hubs[l].Close()
	_ = coords[l].Close()
	closed[l] = true
	died := time.Now()
	eventually(t, "a new leader", func() bool { return leader() >= 0 })
	t.Logf("failover after a leader died without releasing (lease TTL 300ms): %v", time.Since(died).Round(time.Millisecond))
	up.value.Store("v3")
	for i := range 3 {
		if !closed[i] {
			next(t, subs[i], "v3")
		}
	}

	// Redis goes away: every live replica degrades and polls for itself; streams carry on.
	rs.Stop()
	live := []int{}
	for i := range 3 {
		if !closed[i] {
			live = append(live, i)
		}
	}
	eventually(t, "degraded", func() bool { return coords[live[0]].Status().Degraded && coords[live[1]].Status().Degraded })
	up.value.Store("v4")
	for _, i := range live {
		next(t, subs[i], "v4")
	}
	rs.Restart()
	eventually(t, "recovered", func() bool {
		return !coords[live[0]].Status().Degraded && !coords[live[1]].Status().Degraded && leader() >= 0
	})
	up.value.Store("done")
	for _, i := range live {
		next(t, subs[i], "done")
		if _, err := subs[i].Next(context.Background()); !errors.Is(err, io.EOF) {
			t.Fatalf("after terminal: %v", err)
		}
	}

	// A late joiner on any replica gets the kept terminal snapshot without polling.
	late := hubs[live[0]]
	n := up.polls[live[0]].Load()
	sub, err := late.Watch(context.Background(), key, up.source(live[0]))
	if err != nil {
		t.Fatal(err)
	}
	next(t, sub, "done")
	sub.Close()
	if up.polls[live[0]].Load() != n {
		t.Error("late joiner polled")
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		cluster  bool
		master   string
		addrs    int
		wantFail bool
	}{
		{url: "redis://localhost:6379/0", addrs: 1},
		{url: "redis://:secret@h:1?master_name=m&addr=h2:2", master: "m", addrs: 2},
		{url: "redis+cluster://h1:1?addr=h2:2&addr=h3:3", cluster: true, addrs: 3},
		{url: "", wantFail: true},
		{url: "http://x", wantFail: true},
		{url: "redis://:hunter2@h:1/notadb", wantFail: true},
	} {
		o, err := ParseURL(tc.url)
		if tc.wantFail {
			if err == nil {
				t.Errorf("%q: no error", tc.url)
			} else if contains(err.Error(), "hunter2") {
				t.Errorf("%q: error shows the password: %v", tc.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.url, err)
			continue
		}
		if o.IsClusterMode != tc.cluster || o.MasterName != tc.master || len(o.Addrs) != tc.addrs {
			t.Errorf("%q: got cluster=%v master=%q addrs=%v", tc.url, o.IsClusterMode, o.MasterName, o.Addrs)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
