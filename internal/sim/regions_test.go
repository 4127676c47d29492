package sim_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

// The default starting fleet spans two regions (contiguous halves) and two pools (round robin), so every client
// meets KooPhone's rule that a batch holds phones of one region. Its first phones keep the ids the README and the
// tests use, and share a region.
func TestDefaultFleetSpansTwoRegionsAndTwoPools(t *testing.T) {
	e := newEnv(t, nil)
	rows := e.list("")
	if len(rows) != 20 || rows[0].InstanceID != "GbQj4kNO" || rows[1].InstanceID != "zP2dozhs" {
		t.Fatalf("first phones %v", rows[:2])
	}
	var layout []string
	for i, r := range rows {
		layout = append(layout, r.Region)
		if want := fmt.Sprintf("sim-%05d", i+1); r.InstanceName != want {
			t.Fatalf("phone %d named %s", i, r.InstanceName)
		}
	}
	want := slices.Concat(slices.Repeat([]string{"cn-north-7"}, 10), slices.Repeat([]string{"cn-north-208"}, 10))
	if !slices.Equal(layout, want) {
		t.Fatalf("regions %v", layout)
	}
	if got := e.sim.InstancesIn("cn-north-7"); len(got) != 10 || got[0] != "GbQj4kNO" || got[9] != rows[9].InstanceID {
		t.Fatalf("InstancesIn: %v", got)
	}
	// Odd-numbered phones in sim-pool-1, even-numbered ones in sim-pool-2.
	for _, pool := range sim.DefaultPools {
		got := e.list("pool_name=" + pool)
		if len(got) != 10 || got[0].InstanceName != map[string]string{"sim-pool-1": "sim-00001", "sim-pool-2": "sim-00002"}[pool] {
			t.Fatalf("pool %s: %d phones", pool, len(got))
		}
	}
	// A batch inside a region runs; one across regions is refused with 1002, and counted.
	e.call("POST", "/v1/instances/reboot", map[string]any{"instance_ids": []string{rows[0].InstanceID, rows[9].InstanceID}}).want(t, 200, "0")
	if n := e.sim.Answered("KOOPHONE.API.1002"); n != 0 {
		t.Fatalf("%d answers 1002", n)
	}
	across := []string{rows[9].InstanceID, rows[10].InstanceID}
	e.call("POST", "/v1/instances/reboot", map[string]any{"instance_ids": across}).want(t, 400, "KOOPHONE.API.1002")
	e.call("POST", "/v1/instances/batch-reset", map[string]any{"instance_ids": across}).want(t, 400, "KOOPHONE.API.1002")
	e.call("POST", "/v1/instances/async-command", map[string]any{"command": "ls", "instance_ids": across}).want(t, 400, "KOOPHONE.API.1002")
	if n := e.sim.Answered("KOOPHONE.API.1002"); n != 3 {
		t.Fatalf("%d answers 1002, want 3", n)
	}
	if got := e.raw("GET", "/_sim/answers", nil, nil); got.status != 200 || !strings.Contains(string(got.body), `"KOOPHONE.API.1002":3`) {
		t.Fatalf("/_sim/answers: %d %s", got.status, got.body)
	}
	e.sim.ResetCalls()
	if n := e.sim.Answered("KOOPHONE.API.1002"); n != 0 {
		t.Fatalf("%d answers 1002 after ResetCalls", n)
	}
}

// Regions take contiguous blocks of nearly equal size, the first ones one phone larger.
func TestFleetRegionsInBlocks(t *testing.T) {
	for _, tc := range []struct {
		size    int
		regions []string
		want    string
	}{
		{5, []string{"a", "b", "c"}, "a a b b c"},
		{7, []string{"a", "b", "c"}, "a a a b b c c"},
		{2, []string{"a", "b", "c"}, "a b"},
		{3, []string{"a"}, "a a a"},
	} {
		e := newEnv(t, func(c *sim.Config) { c.FleetSize, c.Regions = tc.size, tc.regions })
		var got []string
		for _, r := range e.list("") {
			got = append(got, r.Region)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%d phones over %v: %v, want %s", tc.size, tc.regions, got, tc.want)
		}
	}
}
