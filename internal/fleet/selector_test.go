package fleet_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
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
	resolve := func(f fleet.Filter) []string {
		t.Helper()
		got, err := r.Resolve(ctx, fleet.Selector{Filter: &f})
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		return idsOf(got)
	}

	got, err := r.Resolve(ctx, fleet.Selector{Filter: &fleet.Filter{All: true}})
	if err != nil || !slices.Equal(idsOf(got), all) {
		t.Fatalf("all: %v, %d phones", err, len(got))
	}
	if n := e.sim.Calls("ListInstances"); n != 3 {
		t.Fatalf("%d ListInstances calls for 250 phones, want 3 pages of 100", n)
	}
	// Every phone comes with its region: the simulator's first 125 in cn-north-7, the others in cn-north-208.
	north7 := e.sim.InstancesIn(sim.DefaultRegion)
	for i, p := range got {
		if want := sim.DefaultRegions[min(i/125, 1)]; p.Region != want || p.Missing {
			t.Fatalf("phone %d: %+v, want region %s", i, p, want)
		}
	}
	if ids := resolve(fleet.Filter{Region: sim.DefaultRegion}); !slices.Equal(ids, north7) || len(ids) != 125 {
		t.Fatalf("region: %d phones", len(ids))
	}
	if ids := resolve(fleet.Filter{Region: "cn-southwest-252"}); len(ids) != 0 {
		t.Fatalf("a region without phones: %d phones", len(ids))
	}
	if ids := resolve(fleet.Filter{PoolName: "pool-b"}); len(ids) != 125 || ids[0] != all[1] {
		t.Fatalf("pool-b: %d phones", len(ids))
	}
	if ids := resolve(fleet.Filter{PoolName: "pool-b", Region: "cn-north-208"}); len(ids) != 63 || ids[0] != all[125] {
		t.Fatalf("pool-b in cn-north-208: %d phones", len(ids)) // sim-00126, 128, ... 250
	}
	if ids := resolve(fleet.Filter{NamePrefix: "sim-001"}); len(ids) != 100 || ids[0] != all[99] { // sim-00100 .. sim-00199
		t.Fatalf("prefix: %d phones", len(ids))
	}
	// Assign one phone; filter by user.
	if err := e.up.AssignInstance(ctx, upstream.UserInstancesRequest{UserInstances: []upstream.UserInstance{{UserID: "u1", InstanceID: all[7]}}}); err != nil {
		t.Fatal(err)
	}
	if ids := resolve(fleet.Filter{All: true, AssignUser: "u1"}); !slices.Equal(ids, []string{all[7]}) {
		t.Fatalf("user: %v", ids)
	}
	running := 2
	if ids := resolve(fleet.Filter{RunningStatus: &running}); len(ids) != 250 {
		t.Fatalf("running: %d", len(ids))
	}
}

// Explicit ids are resolved to their regions with as few ListInstances calls as the fleet's size allows: one by
// one when there are fewer ids than pages, else by listing the fleet (stopping once every id is found). Unknown
// ids come back Missing, never dropped.
func TestResolveIDsWithFewestCalls(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.FleetSize = 1000 }) // 10 pages; 500 phones in each region
	ctx := context.Background()
	all := e.sim.InstanceIDs()
	resolve := func(r *fleet.Resolver, ids ...string) ([]fleet.Phone, int64) {
		t.Helper()
		e.sim.ResetCalls()
		got, err := r.Resolve(ctx, fleet.Selector{IDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		return got, e.sim.Calls("ListInstances")
	}
	north7, north208 := sim.DefaultRegions[0], sim.DefaultRegions[1]

	// A fresh resolver knows nothing of the fleet's size. One id: one lookup.
	r := fleet.NewResolver(e.up, fleet.ResolverConfig{})
	got, calls := resolve(r, all[999])
	if calls != 1 || !slices.Equal(got, []fleet.Phone{{ID: all[999], Region: north208}}) {
		t.Fatalf("one id: %d calls, %+v", calls, got)
	}
	// Several ids: the first page of the fleet (it tells the size and holds all[3]), then the two others one by
	// one (2 lookups < 9 pages left), and "nosuch01" is looked up too.
	got, calls = resolve(r, all[3], all[600], "nosuch01", all[3], all[998])
	want := []fleet.Phone{{ID: all[3], Region: north7}, {ID: all[600], Region: north208}, {ID: "nosuch01", Missing: true},
		{ID: all[998], Region: north208}}
	if calls != 4 || !slices.Equal(got, want) {
		t.Fatalf("4 ids: %d calls, %+v", calls, got)
	}
	// Now the size is known (10 pages): 5 ids take 5 lookups, no listing.
	got, calls = resolve(r, all[1], all[2], all[500], all[501], "nosuch02")
	if calls != 5 || len(got) != 5 || got[2].Region != north208 || !got[4].Missing {
		t.Fatalf("5 ids: %d calls, %+v", calls, got)
	}
	// 300 ids in the fleet's order, up to phone 700: the first 7 pages find them all (listing stops there).
	ids := slices.Clone(all[400:700])
	got, calls = resolve(r, ids...)
	if calls != 7 || len(got) != 300 || got[0].Region != north7 || got[299].Region != north208 {
		t.Fatalf("300 ids: %d calls", calls)
	}
	// 50 ids of which 20 are unknown: the whole fleet is listed (10 calls), not 50 lookups.
	ids = slices.Clone(all[:30])
	for i := range 20 {
		ids = append(ids, "nosuch"+strconv.Itoa(10+i))
	}
	got, calls = resolve(r, ids...)
	if calls != 10 || len(got) != 50 || got[29].Missing || !got[30].Missing || got[49].Region != "" {
		t.Fatalf("50 ids: %d calls, %+v", calls, got[28:32])
	}
	// A fresh resolver and ids all on the first page: one call.
	got, calls = resolve(fleet.NewResolver(e.up, fleet.ResolverConfig{}), all[:40]...)
	if calls != 1 || len(got) != 40 || slices.ContainsFunc(got, func(p fleet.Phone) bool { return p.Missing || p.Region != north7 }) {
		t.Fatalf("first page: %d calls", calls)
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
	if got := slices.Concat(first, rest); !slices.Equal(got, e.sim.InstanceIDs()) {
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
