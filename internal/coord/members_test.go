package coord

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/coord/redistest"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
)

func (c *Coord) heldKeys() []string {
	c.leases.mu.Lock()
	defer c.leases.mu.Unlock()
	return slices.Sorted(maps.Keys(c.leases.held))
}

// Three replicas watch the same 30 keys: each polls the keys it owns by rendezvous hashing, about a third. When
// one dies, the others keep their own leases and share out its keys; nothing else moves.
func TestLeasesSpreadOverReplicas(t *testing.T) {
	const keys = 30
	rs := redistest.Start(t)
	up := &watched{}
	up.value.Store("v1")
	var coords [3]*Coord
	var hubs [3]*stream.Local[string]
	var subs []stream.Subscription[string]
	for i := range 3 {
		c, err := Open(Config{URL: rs.URL(), ID: fmt.Sprintf("gw-%c", 'a'+i), LeaseTTL: 300 * time.Millisecond, OpTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		coords[i] = c
		hubs[i] = stream.NewShared(hubCfg, c, stringCodec)
	}
	dead := -1
	defer func() {
		for _, s := range subs {
			s.Close()
		}
		for i := range 3 {
			hubs[i].Close()
			if i != dead {
				_ = coords[i].Close()
			}
		}
	}()
	for k := range keys {
		for i := range 3 {
			sub, err := hubs[i].Watch(context.Background(), stream.Key{Identity: "id", Kind: "task", ID: fmt.Sprint("t", k)}, up.source(i))
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, sub)
		}
	}
	// Settled: every replica sees the three, and holds exactly the keys it owns.
	settled := func(live ...int) bool {
		total := 0
		for _, i := range live {
			if coords[i].Status().Replicas != len(live) {
				return false
			}
			for _, k := range coords[i].heldKeys() {
				if coords[i].Owner(k) != coords[i].ID() {
					return false
				}
			}
			total += len(coords[i].heldKeys())
		}
		return total == keys
	}
	eventually(t, "each replica holds the keys it owns", func() bool { return settled(0, 1, 2) })
	var held [3][]string
	for i := range 3 {
		held[i] = coords[i].heldKeys()
		if n := len(held[i]); n < 5 || n > 15 {
			t.Errorf("replica %d holds %d of %d leases, want 5 to 15", i, n, keys)
		}
	}
	t.Logf("leases over 3 replicas: %d/%d/%d", len(held[0]), len(held[1]), len(held[2]))

	// The replica holding the most dies without releasing anything: its leases expire after the TTL.
	dead = 0
	for i := range 3 {
		if len(held[i]) > len(held[dead]) {
			dead = i
		}
	}
	_ = coords[dead].shutdown(false)
	var live []int
	for i := range 3 {
		if i != dead {
			live = append(live, i)
		}
	}
	// Until the dead replica's leases expire, the others go on polling exactly what they held: only the dead
	// one's third stalls.
	for _, i := range live {
		if got := coords[i].heldKeys(); !slices.Equal(got, held[i]) {
			t.Errorf("replica %d's leases changed when another died: %v, was %v", i, got, held[i])
		}
	}
	eventually(t, "the survivors hold every lease", func() bool { return settled(live...) })
	for _, i := range live {
		got := coords[i].heldKeys()
		for _, k := range held[i] {
			if !slices.Contains(got, k) {
				t.Errorf("replica %d lost its lease of %s when replica %d died", i, k, dead)
			}
		}
		t.Logf("replica %d: %d leases, then %d after replica %d (%d leases) died", i, len(held[i]), len(got), dead, len(held[dead]))
	}
}

// A replica that does not own a key takes its free lease after Handoff, so a key whose owner has no watcher
// (or cannot poll) is still polled; the owner takes it over when it comes.
func TestNonOwnerTakesOverAfterHandoff(t *testing.T) {
	rs := redistest.Start(t)
	a := openCoord(t, rs.URL())
	defer func() { _ = a.Close() }()
	b := openCoord(t, rs.URL())
	defer func() { _ = b.Close() }()
	eventually(t, "both see two replicas", func() bool { return a.Status().Replicas == 2 && b.Status().Replicas == 2 })
	// A key b owns.
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprint("task/id/", i); a.Owner(k) == b.ID() && b.Owner(k) == b.ID() {
			key = k
		}
	}
	ctx := context.Background()
	lead, retry := a.Lead(ctx, key)
	if lead || retry <= 0 {
		t.Fatalf("non-owner led a free key at once: %v %v", lead, retry)
	}
	eventually(t, "the non-owner leads after the handoff wait", func() bool { lead, _ := a.Lead(ctx, key); return lead })
	if lead, _ := b.Lead(ctx, key); !lead || b.Status().Takeovers != 1 {
		t.Fatalf("owner did not take its key over: lead %v, %+v", lead, b.Status())
	}
	eventually(t, "the non-owner lets go at its next renewal", func() bool { return a.Status().Leases == 0 })
	if lead, _ := a.Lead(ctx, key); lead {
		t.Fatal("non-owner leads a key its owner holds")
	}
}
