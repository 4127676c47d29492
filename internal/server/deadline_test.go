package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

// Issue 18, finding 6: a gRPC caller whose own deadline ends while its write hangs at KooPhone hears the gateway's
// DEADLINE_EXCEEDED with OUTCOME_UNKNOWN (as a REST caller does), not its own timer's bare DEADLINE_EXCEEDED. Over
// real gRPC; several times, since the two used to race.
func TestCallerDeadlineDuringWriteSaysOutcomeUnknown(t *testing.T) {
	e := newFaultEnv(t)
	phone := e.sim.InstanceIDs()[0]
	e.faults(sim.Fault{Kind: sim.FaultLatency, Latency: time.Hour, Ops: []string{"SyncCommand", "BatchReset"}})
	// Five seconds leave the gateway a reserve of 500ms (its most) to answer before the caller's own timer: enough
	// on a loaded machine, where a tenth of one second was not. The three calls run at once.
	const callTimeout = 5 * time.Second
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			_, err := e.inst.SyncCommand(ctx, &pb.SyncCommandRequest{Command: "ls", InstanceIds: []string{phone}})
			errs <- err
		}()
	}
	for i := range 3 {
		err := <-errs
		if code, r, _ := reason(err); code != codes.DeadlineExceeded || r != service.ReasonOutcomeUnknown {
			t.Fatalf("SyncCommand #%d: %v %q (%v), want DEADLINE_EXCEEDED %s", i, code, r, err, service.ReasonOutcomeUnknown)
		}
	}
	// A keyed write too: the key remembers the unknown outcome, and nothing is sent again.
	req := &pb.BatchResetRequest{InstanceIds: []string{phone}, RequestId: "7f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"}
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err := e.inst.BatchReset(ctx, req)
		cancel()
		code, r, _ := reason(err)
		if i == 0 && (code != codes.DeadlineExceeded || r != service.ReasonOutcomeUnknown) {
			t.Fatalf("BatchReset: %v %q (%v)", code, r, err)
		}
		if i == 1 && code != codes.Unknown {
			t.Fatalf("BatchReset repeated: %v %q (%v), want UNKNOWN", code, r, err)
		}
	}
	if n := e.sim.Calls("BatchReset"); n != 1 {
		t.Fatalf("BatchReset reached KooPhone %d times, want once", n)
	}
}

func TestAnswerReserve(t *testing.T) {
	for _, c := range []struct{ left, want time.Duration }{
		{time.Second, 100 * time.Millisecond},
		{30 * time.Second, maxAnswerReserve},
		{0, 0},
	} {
		if got := answerReserve(c.left); got != c.want {
			t.Errorf("answerReserve(%v) = %v, want %v", c.left, got, c.want)
		}
	}
	ctx, cancel := callDeadline(context.Background(), time.Minute)
	defer cancel()
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > time.Minute {
		t.Errorf("a call without a deadline gets the default: %v %v", dl, ok)
	}
}
