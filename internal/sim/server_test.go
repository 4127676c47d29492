package sim_test

import (
	"bytes"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func TestDeterministicFleet(t *testing.T) {
	clk := clock.NewFake(start)
	a := sim.New(sim.Config{Clock: clk, Seed: 42}).InstanceIDs()
	b := sim.New(sim.Config{Clock: clk, Seed: 42, Project: sim.Project{Name: "x"}}).InstanceIDs()
	c := sim.New(sim.Config{Clock: clk, Seed: 43}).InstanceIDs()
	if len(a) != 20 || !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatalf("seed 42: %v\nagain: %v\nseed 43: %v", a, b, c)
	}
	id := regexp.MustCompile(`^[A-Za-z0-9]{8}$`)
	for _, x := range a {
		if !id.MatchString(x) {
			t.Fatalf("id %q", x)
		}
	}
	if n := len(sim.New(sim.Config{Clock: clk, FleetSize: -1}).InstanceIDs()); n != 0 {
		t.Fatalf("FleetSize -1 gave %d phones", n)
	}
	if p := sim.New(sim.Config{Clock: clk, Project: sim.Project{Name: "p"}}).Project(); p.ID != sim.DefaultProjectID || p.Name != "p" {
		t.Fatalf("project %+v", p)
	}
	if cr := sim.New(sim.Config{Clock: clk}).Credentials(); cr.User != sim.DefaultUser || cr.AK != sim.DefaultAK ||
		cr.ProjectID != sim.DefaultProjectID || cr.ProjectName != "cn-north-7" {
		t.Fatalf("%+v", cr)
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, nil)
	big := bytes.Repeat([]byte(" "), 12<<20+1)
	r := e.call("POST", "/v1/instances/batch-query-status", big)
	r.want(t, http.StatusRequestEntityTooLarge, "KOOPHONE.API.1000")
	// Just under the limit: parsed (and rejected as empty, since it is all spaces).
	e.call("POST", "/v1/instances/batch-query-status", big[1:]).want(t, 400, "KOOPHONE.API.1000")
}

func TestIAMMethod(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.raw("GET", "/v3/auth/tokens", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("HTTP %d", r.status)
	}
}

func TestOperationNames(t *testing.T) {
	names := sim.OperationNames()
	// The seed's 20 in its order, then operation 21 of the newer reference.
	if len(names) != 21 || names[0] != "SyncCommand" || names[19] != "InstallApp" || names[20] != "ListInstanceApp" {
		t.Fatalf("%v", names)
	}
}
