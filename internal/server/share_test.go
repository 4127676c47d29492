package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth/authtest"
	"github.com/koophone-gateway/koophone-gateway/internal/coord"
	"github.com/koophone-gateway/koophone-gateway/internal/coord/redistest"
	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

// Keys of the share tests' callers: "flood" and "other" (in group ops).
const (
	floodKey = "kpk_flood_0123456789abcdef"
	otherKey = "kpk_other_0123456789abcdef"
)

// newShareEnv is a gateway on the fake clock with two API-key callers, and flags added.
func newShareEnv(t *testing.T, sharesFile string, flags ...string) *env {
	t.Helper()
	return newShareEnvVars(t, nil, sharesFile, flags...)
}

// newShareEnvVars is newShareEnv with KOOPHONE_* variables set.
func newShareEnvVars(t *testing.T, vars map[string]string, sharesFile string, flags ...string) *env {
	t.Helper()
	dir := t.TempDir()
	keys := authtest.WriteFile(t, dir, "keys.yaml", []byte(keysDoc(map[string]string{floodKey: "flood", otherKey: "other:ops"})))
	flags = append([]string{"--auth-keys-file=" + keys}, flags...)
	if sharesFile != "" {
		flags = append(flags, "--share-file="+authtest.WriteFile(t, dir, "shares.yaml", []byte(sharesFile)))
	}
	return newEnvVars(t, vars, flags...)
}

func as(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// shareRefusal checks err is a share's refusal with reason and limit, and returns its RetryInfo delay.
func shareRefusal(t *testing.T, err error, reason, limit string) time.Duration {
	t.Helper()
	st := status.Convert(err)
	var info *errdetails.ErrorInfo
	var retry time.Duration
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.RetryInfo:
			retry = d.GetRetryDelay().AsDuration()
		}
	}
	if st.Code() != codes.ResourceExhausted || info.GetReason() != reason || info.GetDomain() != "koophone-gateway" ||
		info.GetMetadata()["limit"] != limit || retry <= 0 {
		t.Fatalf("got %v (details %v), want RESOURCE_EXHAUSTED %s naming %s with RetryInfo", err, st.Details(), reason, limit)
	}
	return retry
}

// TestShareRate: a caller past its rate is refused on both transports (429 with Retry-After over REST), and the
// other caller, in a group with a share of its own, is not.
func TestShareRate(t *testing.T) {
	e := newShareEnv(t, "groups:\n  ops: {requests_per_second: 100}\n", "--share-rate=1", "--share-burst=1")
	get := func(key string) error {
		_, err := e.inst.GetTask(as(e.ctx(), key), &pb.GetTaskRequest{TaskId: "feedfacefeedface"})
		return err
	}
	if err := get(floodKey); status.Code(err) != codes.NotFound { // the one call of its burst reaches KooPhone
		t.Fatalf("first call: %v", err)
	}
	if d := shareRefusal(t, get(floodKey), "PRINCIPAL_RATE_LIMITED", "requests_per_second"); d != time.Second {
		t.Fatalf("RetryInfo %v, want 1s at 1/s", d)
	}
	for range 5 {
		if err := get(otherKey); status.Code(err) != codes.NotFound {
			t.Fatalf("the other caller (group ops, 100/s): %v", err)
		}
	}
	r := e.rest(http.MethodGet, "/v1/instances/tasks/feedfacefeedface", "", "Authorization", "Bearer "+floodKey)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
		t.Fatalf("REST: HTTP %d, Retry-After %q: %s", r.status, r.header.Get("Retry-After"), r.raw)
	}
	e.clk.Advance(time.Second)
	if err := get(floodKey); status.Code(err) != codes.NotFound {
		t.Fatalf("after a second: %v", err)
	}
}

// TestShareOpenStreams: a caller with its streams' share open is refused another, while a principal override
// lets the other caller open more.
func TestShareOpenStreams(t *testing.T) {
	e := newShareEnv(t, "principals:\n  key:other: {open_streams: 2}\n", "--share-open-streams=1")
	task, err := e.inst.AsyncCommand(as(e.ctx(), otherKey), &pb.AsyncCommandRequest{Command: "getprop ro.serialno", InstanceIds: []string{e.phone()}})
	if err != nil {
		t.Fatal(err)
	}
	open := func(key string) (context.CancelFunc, error) {
		ctx, cancel := context.WithCancel(as(e.ctx(), key))
		s, err := e.inst.WatchTask(ctx, &pb.WatchTaskRequest{TaskId: task.GetTaskId()})
		if err == nil {
			_, err = s.Recv() // the first snapshot, or the refusal
		}
		return cancel, err
	}
	stop, err := open(floodKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = open(floodKey)
	shareRefusal(t, err, "PRINCIPAL_STREAM_LIMITED", "open_streams")
	for i := range 2 {
		if _, err := open(otherKey); err != nil {
			t.Fatalf("other's stream %d: %v", i+1, err)
		}
	}
	stop()
	// The slot frees once the server has seen the stream end.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := open(floodKey)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing its stream: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFairQueueFloodAndUnknownWatch: with KooPhone's read quota at 1/s, one caller floods GetTask; another's watch
// on a made-up task is served within a round of the fair queue and ends with NOT_FOUND, instead of waiting behind
// the whole flood (first come, first served).
func TestFairQueueFloodAndUnknownWatch(t *testing.T) {
	e := newShareEnv(t, "", "--upstream-read-rate=1", "--upstream-read-burst=1")
	// A poll's deadline is on the hub's clock and the limiter compares it with the wall clock's: a fake clock behind
	// the wall would make every poll that must wait look out of time. Forward only, so shifted dates still run.
	e.clk.Set(time.Now())
	before := e.sim.Calls("GetTask")
	const flood = 10
	events := make(chan string, flood+1) // who got an answer, in order
	for i := range flood {
		go func() {
			_, err := e.inst.GetTask(as(e.ctx(), floodKey), &pb.GetTaskRequest{TaskId: fmt.Sprintf("feedface%08d", i)})
			events <- "flood " + status.Code(err).String()
		}()
	}
	// One call holds the turn (waiting for the quota on the fake clock), the rest queue.
	waitFor(t, "the flood queued", func() bool {
		return e.srv.up.Queued("key:flood") == flood-1-int(e.sim.Calls("GetTask")-before)
	})
	s, err := e.inst.WatchTask(as(e.ctx(), otherKey), &pb.WatchTaskRequest{TaskId: "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	_, end := recvAll(s)
	go func() { events <- "watch " + status.Code(<-end).String() }()
	waitFor(t, "the watch's poll queued", func() bool { return e.srv.up.Queued("key:other") == 1 })
	// A second of quota at a time, until the other caller's poll has the turn: how many flood calls went out
	// before it is the queue's order, whatever the timing (with the turn held, nothing else is sent).
	sentBefore := -1
	deadline := time.Now().Add(15 * time.Second)
	for sentBefore < 0 && time.Now().Before(deadline) {
		e.clk.Advance(time.Second)
		time.Sleep(5 * time.Millisecond)
		if e.srv.up.Queued("key:other") == 0 {
			sentBefore = int(e.sim.Calls("GetTask") - before)
		}
	}
	// The call that took the burst or the turn first, the turn's holder, one more of the flood's (round robin):
	// first come, first served, all ten would have gone first.
	if sentBefore < 0 || sentBefore > 3 {
		t.Fatalf("%d flood calls reached KooPhone before the other caller's poll, want at most 3", sentBefore)
	}
	var order []string
	for len(order) < flood+1 && time.Now().Before(deadline) {
		e.clk.Advance(time.Second)
		select {
		case ev := <-events:
			order = append(order, ev)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !slices.Contains(order, "watch NotFound") || len(order) != flood+1 ||
		slices.ContainsFunc(order, func(ev string) bool { return ev != "flood NotFound" && ev != "watch NotFound" }) {
		t.Fatalf("answers %v: want the watch of a made-up task to end NOT_FOUND and every flood call to be answered", order)
	}
}

// waitFor polls cond until it holds, failing after a few seconds with what.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testsupport.Eventually(t, 5*time.Second, what, cond)
}

// TestShareRateAcrossReplicas: two gateways on one Redis keep one requests_per_second share per caller. The rate
// (one call per 1000 s, on Redis's clock) cannot refill during the test, so exactly the burst of 3 is admitted
// over both replicas, the rest refused with RetryInfo (429 with Retry-After over REST). With Redis stopped each
// replica admits its half of the burst at once (--quota-replicas=2) and asks Redis nothing per call.
func TestShareRateAcrossReplicas(t *testing.T) {
	rs := redistest.Start(t)
	vars := map[string]string{"KOOPHONE_REDIS_URL": rs.URL()}
	flags := []string{"--share-rate=0.001", "--share-burst=3", "--quota-replicas=2"}
	gws := []*env{newShareEnvVars(t, vars, "", flags...), newShareEnvVars(t, vars, "", flags...)}
	get := func(e *env, key string) error {
		_, err := e.inst.GetTask(as(e.ctx(), key), &pb.GetTaskRequest{TaskId: "feedfacefeedface"})
		return err
	}
	admitted := 0
	for i := range 8 {
		err := get(gws[i%2], floodKey)
		if status.Code(err) == codes.NotFound { // reached KooPhone, which knows no such task
			admitted++
			continue
		}
		if d := shareRefusal(t, err, "PRINCIPAL_RATE_LIMITED", "requests_per_second"); d < 900*time.Second {
			t.Fatalf("call %d: RetryInfo %v, want about 1000s", i, d)
		}
	}
	if admitted != 3 {
		t.Fatalf("%d of 8 calls admitted over two replicas, want 3 (one burst, shared)", admitted)
	}
	r := gws[1].rest(http.MethodGet, "/v1/instances/tasks/feedfacefeedface", "", "Authorization", "Bearer "+floodKey)
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); r.status != http.StatusTooManyRequests || ra < 900 {
		t.Fatalf("REST: HTTP %d, Retry-After %q: %s", r.status, r.header.Get("Retry-After"), r.raw)
	}
	if err := get(gws[0], otherKey); status.Code(err) != codes.NotFound { // another caller's share is its own
		t.Fatalf("the other caller: %v", err)
	}

	rs.Stop()
	e := gws[0]
	if err := get(e, floodKey); status.Code(err) != codes.NotFound { // finds Redis down, takes the local half (burst 1)
		t.Fatalf("first call with Redis stopped: %v", err)
	}
	before, _ := e.srv.CoordStatus()
	if !before.Degraded {
		t.Fatal("Redis stopped and the gateway is not degraded")
	}
	for range 10 {
		if d := shareRefusal(t, get(e, floodKey), "PRINCIPAL_RATE_LIMITED", "requests_per_second"); d != 2000*time.Second {
			t.Fatalf("local refusal: RetryInfo %v, want 2000s (the local half of 0.001/s)", d)
		}
	}
	after, _ := e.srv.CoordStatus()
	if n := after.Commands - before.Commands; n != 0 {
		t.Errorf("%d Redis commands sent by 10 calls while Redis is down, want 0", n)
	}
	if after.LocalShare != 1 || after.Skipped[coord.OpShare]-before.Skipped[coord.OpShare] != 10 {
		t.Errorf("local share admitted %d (want 1), share calls that skipped Redis %d (want 10)",
			after.LocalShare, after.Skipped[coord.OpShare]-before.Skipped[coord.OpShare])
	}
}
