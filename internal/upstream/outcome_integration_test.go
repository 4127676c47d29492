package upstream_test

import (
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// TestWriteOutcomeUnknownUnlessRefused: every answer to a sent write that does not prove KooPhone refused it marks
// the outcome unknown (a proxy's 503 page, even one sent after KooPhone did the work; KooPhone's "unknown error"),
// while answers that do refuse it (the API gateway's 429, a bad parameter) do not. Each write is sent once.
func TestWriteOutcomeUnknownUnlessRefused(t *testing.T) {
	checkLeaks(t)
	cases := []struct {
		name    string
		fault   *sim.Fault
		phones  []string // nil: the fleet's first phone
		unknown bool
	}{
		{"done, then a 503 page", &sim.Fault{Kind: sim.FaultDone503, Count: 1}, nil, true},
		{"503 page", &sim.Fault{Kind: sim.Fault503, Count: 1}, nil, true},
		{"502 page", &sim.Fault{Kind: sim.Fault502, Count: 1}, nil, true},
		{"KooPhone 500 KOOPHONE.API.9999", &sim.Fault{Kind: sim.FaultError, Count: 1}, nil, true},
		{"API gateway 429", &sim.Fault{Kind: sim.Fault429, Count: 1}, nil, false},
		{"unknown phone (KooPhone refuses)", nil, []string{"no-such-phone"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newSimEnv(t, nil)
			cl := e.client(nil, nil)
			phones := c.phones
			if phones == nil {
				phones = e.ids(1)
			}
			if c.fault != nil {
				f := *c.fault
				f.Ops = []string{"BatchRebootInstance"}
				if err := e.sim.SetFaults([]sim.Fault{f}); err != nil {
					t.Fatal(err)
				}
			}
			before := e.sim.Calls("BatchRebootInstance")
			err := cl.BatchRebootInstance(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: phones})
			ue, ok := upstream.AsError(err)
			if !ok {
				t.Fatalf("want an *upstream.Error, got %v", err)
			}
			if ue.OutcomeUnknown != c.unknown {
				t.Fatalf("OutcomeUnknown = %v, want %v (%s)", ue.OutcomeUnknown, c.unknown, describeErr(err))
			}
			if n := e.sim.Calls("BatchRebootInstance") - before; n != 1 {
				t.Fatalf("the write was sent %d times, want once", n)
			}
		})
	}
}

// TestReadRetriesAfter503: reads keep retrying on a 503 (only writes changed).
func TestReadRetriesAfter503(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	cl := e.client(nil, nil)
	if err := e.sim.SetFaults([]sim.Fault{{Kind: sim.FaultDone503, Count: 1, Ops: []string{"BatchQueryStatus"}}}); err != nil {
		t.Fatal(err)
	}
	_, err := cl.BatchQueryStatus(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: e.ids(1)})
	mustOK(t, "BatchQueryStatus after one 503", err) // the step clock lets the back-off pass at once
	if n := e.sim.Calls("BatchQueryStatus"); n != 2 {
		t.Fatalf("the read was sent %d times, want 2", n)
	}
}
