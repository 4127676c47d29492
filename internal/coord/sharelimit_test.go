package coord

import (
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/coord/redistest"
	"github.com/koophone-gateway/koophone-gateway/internal/share"
)

// The ShareLimiter is internal/share's RateLimiter (the server plugs one into the other).
var _ share.RateLimiter = (*ShareLimiter)(nil)

// admit runs one call of principal through a replica's share step: nil when admitted, else the refusal's
// RetryInfo delay (the test fails on any other answer).
func admit(t *testing.T, s *share.Shares, principal string) *time.Duration {
	t.Helper()
	ctx := auth.ContextWithPrincipal(context.Background(), auth.Principal{Name: principal})
	_, err := s.Unary()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/koophone.v1.InstanceService/GetTask"},
		func(context.Context, any) (any, error) { return nil, nil })
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	var retry *time.Duration
	var reason string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.RetryInfo:
			r := d.GetRetryDelay().AsDuration()
			retry = &r
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		}
	}
	if st.Code() != codes.ResourceExhausted || reason != "PRINCIPAL_RATE_LIMITED" || retry == nil || *retry <= 0 {
		t.Fatalf("%s: got %v (details %v), want RESOURCE_EXHAUSTED PRINCIPAL_RATE_LIMITED with RetryInfo", principal, err, st.Details())
	}
	return retry
}

// A caller's requests_per_second share is one across replicas that share Redis: with a rate too small to refill
// during the test (one call per 1000 s, on Redis's clock) and a burst of 4, exactly 4 calls are admitted in all,
// whichever replica they reach. While Redis is down each replica admits its 1/Replicas part at once (burst 4/2)
// without sending Redis a command per call.
func TestShareRateSharedAcrossReplicas(t *testing.T) {
	rs := redistest.Start(t)
	const replicas = 2
	var (
		coords [replicas]*Coord
		shares [replicas]*share.Shares
		clks   [replicas]*clock.Fake
	)
	for i := range replicas {
		clks[i] = clock.NewFake(time.Now())
		coords[i] = openFake(t, rs.URL(), clks[i], &logBuf{})
		s, err := share.New(share.Config{
			Defaults: share.Limits{RequestsPerSecond: 0.001, Burst: 4},
			Limiter:  coords[i].NewShareLimiter(share.NewLocal(clks[i]), replicas),
		}, clks[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		shares[i] = s
	}

	admitted := 0
	for i := range 10 {
		if admit(t, shares[i%replicas], "flood") == nil {
			admitted++
		}
	}
	if admitted != 4 {
		t.Fatalf("%d of 10 calls admitted across 2 replicas, want 4 (the burst, shared)", admitted)
	}
	for i := range replicas {
		if d := admit(t, shares[i], "flood"); d == nil || *d < 900*time.Second {
			t.Fatalf("replica %d: RetryInfo %v, want about 1000s (one call per 1000s)", i, d)
		}
	}
	// Another caller's share is its own.
	for i := range 4 {
		if d := admit(t, shares[i%replicas], "other"); d != nil {
			t.Fatalf("other's call %d refused (retry %v) after flood's burst", i, *d)
		}
	}
	for i := range coords {
		if st := coords[i].Status(); st.LocalShare != 0 || st.ErrorsBy[OpShare] != 0 {
			t.Fatalf("replica %d with Redis up: %+v", i, st)
		}
	}

	// Redis down: the first call to find it pays a refused dial, and from then on every call takes the local
	// branch at once, at 1/2 of the rate and burst: two calls per replica, with RetryInfo on the local bucket.
	rs.Stop()
	c, s := coords[0], shares[0]
	if d := admit(t, s, "flood"); d != nil {
		t.Fatalf("first call with Redis stopped refused (retry %v), want the local share's first", *d)
	}
	if !c.Status().Degraded {
		t.Fatal("Redis stopped and the replica is not degraded")
	}
	before := c.Status()
	if d := admit(t, s, "flood"); d != nil {
		t.Fatalf("second local call refused (retry %v), want the local burst of 2", *d)
	}
	for range 20 {
		if d := admit(t, s, "flood"); d == nil || *d != 2000*time.Second {
			t.Fatalf("local refusal: RetryInfo %v, want 2000s (0.0005/s, the local half of 0.001/s)", d)
		}
	}
	after := c.Status()
	if n := after.Commands - before.Commands; n != 0 {
		t.Errorf("%d Redis commands sent by 21 calls during the outage, want 0", n)
	}
	if n := after.Skipped[OpShare] - before.Skipped[OpShare]; n != 21 {
		t.Errorf("%d share calls skipped Redis, want 21", n)
	}
	if after.LocalShare != 2 {
		t.Errorf("%d calls admitted by the local share, want 2", after.LocalShare)
	}
}
