package fleet_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/fleet"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

func TestResolveFilters(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) {
		c.FleetSize = 250
		c.Pools = []string{"pool-a", "pool-b"}
	})
	r := fleet.NewResolver(e.up, fleet.ResolverConfig{})
	ctx := context.Background()
	all := e.sim.InstanceIDs()

	got, err := r.Resolve(ctx, fleet.Selector{Filter: &fleet.Filter{All: true}})
	if err != nil || !slices.Equal(got, all) {
		t.Fatalf("all: %v, %d phones", err, len(got))
	}
	if n := e.sim.Calls("ListInstances"); n != 3 {
		t.Fatalf("%d ListInstances calls for 250 phones, want 3 pages of 100", n)
	}
	got, err = r.Resolve(ctx, fleet.Selector{Filter: &fleet.Filter{PoolName: "pool-b"}})
	if err != nil || len(got) != 125 || got[0] != all[1] {
		t.Fatalf("pool-b: %v, %d phones", err, len(got))
	}
	got, err = r.Resolve(ctx, fleet.Selector{Filter: &fleet.Filter{NamePrefix: "sim-001"}})
	if err != nil || len(got) != 100 || got[0] != all[99] { // sim-00100 .. sim-00199
		t.Fatalf("prefix: %v, %d phones", err, len(got))
	}
	// Assign one phone; filter by user.
	if err := e.up.AssignInstance(ctx, upstream.UserInstancesRequest{UserInstances: []upstream.UserInstance{{UserID: "u1", InstanceID: all[7]}}}); err != nil {
		t.Fatal(err)
	}
	got, err = r.Resolve(ctx, fleet.Selector{Filter: &fleet.Filter{All: true, AssignUser: "u1"}})
	if err != nil || !slices.Equal(got, []string{all[7]}) {
		t.Fatalf("user: %v %v", err, got)
	}
	running := 2
	if got, err = r.Resolve(ctx, fleet.Selector{Filter: &fleet.Filter{RunningStatus: &running}}); err != nil || len(got) != 250 {
		t.Fatalf("running: %v %d", err, len(got))
	}
	// Explicit ids: no listing, duplicates once.
	e.sim.ResetCalls()
	got, err = r.Resolve(ctx, fleet.Selector{IDs: []string{"b", "a", "b"}})
	if err != nil || !slices.Equal(got, []string{"b", "a"}) || e.sim.Calls("ListInstances") != 0 {
		t.Fatalf("ids: %v %v", err, got)
	}
}

func TestWalkResumesFromCursor(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.FleetSize = 1050 })
	r := fleet.NewResolver(e.up, fleet.ResolverConfig{Prefetch: 3})
	sel := fleet.Selector{Filter: &fleet.Filter{All: true}}
	stop := errors.New("stop")
	var first []string
	var cursor string
	err := r.Walk(context.Background(), sel, "", func(in upstream.Instance, c fleet.Cursor) error {
		first = append(first, in.InstanceID)
		cursor = c.String()
		if len(first) == 437 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatal(err)
	}
	var rest []string
	if err := r.Walk(context.Background(), sel, cursor, func(in upstream.Instance, _ fleet.Cursor) error {
		rest = append(rest, in.InstanceID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := append(first, rest...); !slices.Equal(got, e.sim.InstanceIDs()) {
		t.Fatalf("first %d + rest %d phones do not make the fleet of 1050 in order", len(first), len(rest))
	}
	// A cursor is only good for its selector, and garbage is refused.
	other := fleet.Selector{Filter: &fleet.Filter{PoolName: sim.DefaultPool}}
	for _, c := range []string{cursor, "not-a-cursor", strings.Repeat("A", 40)} {
		s := other
		if c != cursor {
			s = sel
		}
		if err := r.Walk(context.Background(), s, c, func(upstream.Instance, fleet.Cursor) error { return nil }); !errors.Is(err, fleet.ErrBadCursor) {
			t.Fatalf("cursor %q: %v", c, err)
		}
	}
}
