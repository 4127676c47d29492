package scaleout_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/coord"
	"github.com/koophone-gateway/koophone-gateway/internal/coord/redistest"
	"github.com/koophone-gateway/koophone-gateway/internal/server"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	replicas       = 3
	tasks          = 30
	watchersPerKey = 100 // 3,000 watchers in all
	readRate       = 80  // upstream reads per second, all replicas together
	jobDuration    = 5 * time.Minute
)

// upstreamCounter counts what reaches the simulator. The replicas share one endpoint (pollers are shared only
// between clients of the same endpoint and principal), so calls are counted per task, not per replica.
type upstreamCounter struct {
	mu      sync.Mutex
	getTask map[string]int // task id -> GetTask calls
	reads   atomic.Int64   // every read (GET, and the read-only POSTs)
	creates atomic.Int64
}

func (c *upstreamCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/v1/instances/tasks/"); ok && r.Method == http.MethodGet {
			c.mu.Lock()
			c.getTask[id]++
			c.mu.Unlock()
		}
		if r.Method == http.MethodGet || strings.HasSuffix(r.URL.Path, "/batch-query-status") {
			c.reads.Add(1)
		}
		if r.URL.Path == "/v1/instances/create" {
			c.creates.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

func (c *upstreamCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.getTask {
		out[k] = v
	}
	return out
}

type gateway struct {
	srv  *server.Server
	conn *grpc.ClientConn
	inst pb.InstanceServiceClient
	ord  pb.OrderServiceClient
	// up is what the watchers see (read and written only under the test's aliveMu); stopped makes stop() run once
	// and is the test goroutine's alone. One field for both was written without the lock the watchers read it with.
	up      bool
	stopped bool
}

func startGateway(t *testing.T, endpoint, redisURL string, creds sim.Credentials) *gateway {
	t.Helper()
	env := map[string]string{"KOOPHONE_AK": creds.AK, "KOOPHONE_SK": creds.SK, "KOOPHONE_REDIS_URL": redisURL}
	cfg, err := config.Load([]string{
		"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--endpoint=" + endpoint,
		// A fixed poll interval (500ms ± 20% jitter): one poller makes at most one call per 400ms.
		"--watch-first-interval=500ms", "--watch-max-interval=500ms", "--redis-lease-ttl=1500ms",
		fmt.Sprintf("--upstream-read-rate=%d", readRate), fmt.Sprintf("--upstream-read-burst=%d", readRate),
		"--upstream-write-rate=20", fmt.Sprintf("--quota-replicas=%d", replicas), "--audit-log=off",
		// 3,030 anonymous watchers over three replicas, and all of them on two after a stop: above one caller's
		// default share of streams, which is not what this test is about.
		"--share-open-streams=0",
	}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{srv: srv, conn: conn, inst: pb.NewInstanceServiceClient(conn), ord: pb.NewOrderServiceClient(conn), up: true}
	hc := healthpb.NewHealthClient(conn)
	eventually(t, "gateway SERVING", func() bool {
		res, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
	return g
}

func (g *gateway) stop() {
	if g.stopped {
		return
	}
	g.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = g.srv.Shutdown(ctx)
	_ = g.conn.Close()
}

func (g *gateway) leases() int {
	st, _ := g.srv.CoordStatus()
	return st.Leases
}

// scrape reads one series from the gateway's /metrics (-1 when absent).
func scrape(t *testing.T, g *gateway, series string) float64 {
	t.Helper()
	res, err := http.Get("http://" + g.srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// eventually waits for cond; the bound only keeps a broken build from hanging, it asserts no timing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testsupport.Eventually(t, 60*time.Second, what, cond)
}

// watcher follows one task until its terminal snapshot, moving to another replica when its own shuts down (as a
// client behind a load balancer would). It records how it ended.
type watcher struct {
	task     string
	gw       int
	moves    int
	got      atomic.Bool // received at least one snapshot
	terminal bool
	err      error
}

func (w *watcher) run(ctx context.Context, gws []*gateway, alive func(int) bool) {
	for {
		stream, err := gws[w.gw].inst.WatchTask(ctx, &pb.WatchTaskRequest{TaskId: w.task})
		if err == nil {
			for {
				var res *pb.WatchTaskResponse
				res, err = stream.Recv()
				if err != nil {
					break
				}
				w.got.Store(true)
				if res.GetTerminal() {
					w.terminal = true
				}
			}
		}
		if errors.Is(err, io.EOF) && w.terminal {
			w.err = nil
			return
		}
		// Only a replica that is going away may end a stream; then the client reconnects elsewhere.
		if status.Code(err) == codes.Unavailable && !alive(w.gw) {
			w.moves++
			w.gw = (w.gw + 1) % len(gws)
			for !alive(w.gw) {
				w.gw = (w.gw + 1) % len(gws)
			}
			continue
		}
		w.err = err
		return
	}
}

func TestThreeReplicasShareOneUpstream(t *testing.T) {
	rs := redistest.Start(t)
	simClock := clock.NewFake(time.Now()) // AK/SK signatures carry the wall clock: start the simulator near it
	simCfg := sim.DefaultConfig()
	simCfg.Clock, simCfg.FleetSize, simCfg.JobDuration = simClock, tasks, jobDuration
	s := sim.New(simCfg)
	counter := &upstreamCounter{getTask: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: counter.wrap(s), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	defer func() { _ = hs.Close() }()
	endpoint := "http://" + l.Addr().String()
	gws := make([]*gateway, replicas)
	for i := range replicas {
		gws[i] = startGateway(t, endpoint, rs.URL(), s.Credentials())
	}
	defer func() {
		for _, g := range gws {
			g.stop()
		}
	}()
	var aliveMu sync.Mutex
	alive := func(i int) bool { aliveMu.Lock(); defer aliveMu.Unlock(); return gws[i].up }
	ctx := context.Background()

	// 30 tasks, one per phone; they run until the simulator's clock passes jobDuration.
	ids := make([]string, 0, tasks)
	for _, phone := range s.InstanceIDs()[:tasks] {
		res, err := gws[0].inst.AsyncCommand(ctx, &pb.AsyncCommandRequest{Command: "ls", InstanceIds: []string{phone}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.GetTaskId())
	}

	// One poller per task across the replicas: Redis holds one lease per task, and the simulator sees no more
	// GetTask calls per task than one poller can make (one per 400ms at the shortest jittered interval).
	leases := func(idx ...int) int {
		n := 0
		for _, i := range idx {
			n += gws[i].leases()
		}
		return n
	}
	// slack: calls one task may get beyond one poller's, for a handover in the window.
	measure := func(what string, slack int) {
		t.Helper()
		a := counter.snapshot()
		start := time.Now()
		time.Sleep(3 * time.Second)
		b := counter.snapshot()
		window := time.Since(start)
		most, calls := 0, 0
		for _, id := range ids {
			calls += b[id] - a[id]
			most = max(most, b[id]-a[id])
		}
		t.Logf("%s: %d GetTask calls for %d tasks in %v (%.1f/s, at most %d for one task)", what, calls, tasks,
			window.Round(time.Millisecond), float64(calls)/window.Seconds(), most)
		if limit := int(window/(400*time.Millisecond)) + 1 + slack; most > limit {
			t.Errorf("%s: a task had %d GetTask calls in %v; one poller makes at most %d", what, most, window, limit)
		}
	}
	// First one watcher per task, all on replica 0: the upstream load of a single replica, for comparison.
	wctx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	var ws []*watcher
	var wg sync.WaitGroup
	for i := range tasks {
		w := &watcher{task: ids[i], gw: 0}
		ws = append(ws, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, gws, alive) }()
	}
	eventually(t, "replica 0 polls every task", func() bool { return gws[0].leases() == tasks })
	measure("1 replica", 0)

	// Then 3,000 more watchers, each task's spread over the three replicas.
	for i := range tasks * watchersPerKey {
		w := &watcher{task: ids[i%tasks], gw: (i / tasks) % replicas}
		ws = append(ws, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, gws, alive) }()
	}
	eventually(t, "every watcher has a first snapshot", func() bool {
		for _, w := range ws {
			if !w.got.Load() {
				return false
			}
		}
		return true
	})

	// The leases spread: each task's owner by rendezvous hashing over the three takes its lease over from
	// replica 0, which took them all while it alone had watchers.
	eventually(t, "one lease per task, spread over the replicas", func() bool {
		for _, g := range gws {
			if st, _ := g.srv.CoordStatus(); st.Replicas != replicas {
				return false
			}
		}
		return leases(0, 1, 2) == tasks && gws[0].leases() <= 20 && gws[1].leases() > 0 && gws[2].leases() > 0
	})
	if n := scrape(t, gws[1], "koophone_redis_lease_takeovers_total") + scrape(t, gws[2], "koophone_redis_lease_takeovers_total"); n < 1 {
		t.Errorf("koophone_redis_lease_takeovers_total: %v on replicas 1 and 2", n)
	}
	spread := []int{gws[0].leases(), gws[1].leases(), gws[2].leases()}
	t.Logf("leases over %d replicas: %v", replicas, spread)
	for i, n := range spread {
		// Binomial(30, 1/3) with random replica ids: outside 2..20 once in ~2,500 runs.
		if n < 2 || n > 20 {
			t.Errorf("replica %d holds %d of %d leases: not spread", i, n, tasks)
		}
	}
	measure("3 replicas sharing Redis", 0)

	// The shared quota: every replica hammers reads; the simulator sees at most the budget (plus its burst).
	qctx, stopLoad := context.WithCancel(ctx)
	var lwg sync.WaitGroup
	for i := range 3 * replicas {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			for qctx.Err() == nil {
				_, _ = gws[i%replicas].ord.BatchShowSku(qctx, &pb.BatchShowSkuRequest{})
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let the burst drain first
	r0, q0 := counter.reads.Load(), time.Now()
	time.Sleep(3 * time.Second)
	reads, window := counter.reads.Load()-r0, time.Since(q0)
	stopLoad()
	lwg.Wait()
	t.Logf("shared quota %d reads/s: %d reads reached the simulator in %v (%.1f/s)", readRate, reads, window.Round(time.Millisecond),
		float64(reads)/window.Seconds())
	if limit := int64(float64(readRate)*(window.Seconds()+0.5)) + readRate; reads > limit {
		t.Errorf("%d reads in %v exceed the shared quota (%d/s, at most %d with the burst)", reads, window, readRate, limit)
	}

	// One CreateInstance with one request_id sent to all three replicas at once: one order.
	create := &pb.CreateInstanceRequest{Os: "AOSP9", InstanceSkuId: "kp.professional.xlarge.32g.2", BandSkuId: "kp.bandwidth",
		RegionId: "cn-north-7", InstanceNamePrefix: "scale", BandSize: 4, Count: 1,
		ChargeParam: &pb.ChargeParam{ChargingMode: pb.ChargingMode_CHARGING_MODE_YEARLY_MONTHLY,
			PeriodType: pb.PeriodType_PERIOD_TYPE_MONTH, PeriodNum: 1, IsAutoPay: true},
		RequestId: "8e7d7a5c-2f0e-4a57-9d1b-6c3b2a1f0e9d"}
	creates0 := counter.creates.Load()
	orders := make([]string, 3*replicas)
	var cwg sync.WaitGroup
	for i := range orders {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			res, err := gws[i%replicas].ord.CreateInstance(ctx, create)
			if err != nil {
				t.Errorf("CreateInstance on replica %d: %v", i%replicas, err)
				return
			}
			orders[i] = res.GetOrderId()
		}()
	}
	cwg.Wait()
	if n := counter.creates.Load() - creates0; n != 1 {
		t.Errorf("%d CreateInstance calls reached KooPhone, want 1", n)
	}
	for _, o := range orders {
		if o != orders[0] || o == "" {
			t.Errorf("orders %v: want one order id everywhere", orders)
			break
		}
	}

	// The replica holding the most leases stops mid-watch: its pollers move, every stream carries on.
	leader := 0
	for i := range gws {
		if gws[i].leases() > gws[leader].leases() {
			leader = i
		}
	}
	led := gws[leader].leases()
	stopped := time.Now()
	aliveMu.Lock()
	gws[leader].up = false
	aliveMu.Unlock()
	gws[leader].stop()
	var others []int
	for i := range gws {
		if i != leader {
			others = append(others, i)
		}
	}
	eventually(t, "the others hold every lease", func() bool { return leases(others...) == tasks })
	t.Logf("failover: replica %d (%d of %d leases) stopped; the others held every lease %v later",
		leader, led, tasks, time.Since(stopped).Round(time.Millisecond))
	for _, i := range others {
		// Only the stopped replica's share moves; the others keep theirs.
		if gws[i].leases() < spread[i] {
			t.Errorf("replica %d held %d leases, %d after replica %d stopped", i, spread[i], gws[i].leases(), leader)
		}
	}
	if led > tasks*2/3 {
		t.Errorf("the stopped replica held %d of %d leases: its stop stalled most tasks", led, tasks)
	}

	// Redis dies: the replicas degrade (local pollers), keyed writes are refused, streams carry on.
	rs.Stop()
	eventually(t, "degraded", func() bool {
		for _, r := range others {
			if st, _ := gws[r].srv.CoordStatus(); !st.Degraded {
				return false
			}
		}
		return true
	})
	// Degraded: every call takes the local branch at once. Reads during the outage send no Redis command; only
	// the background probes do. The series say so.
	g := gws[others[0]]
	if up, deg := scrape(t, g, "koophone_redis_up"), scrape(t, g, "koophone_redis_degraded"); up != 0 || deg != 1 {
		t.Errorf("redis down: koophone_redis_up %v, koophone_redis_degraded %v", up, deg)
	}
	if n := scrape(t, g, `koophone_redis_transitions_total{to="down"}`); n != 1 {
		t.Errorf(`koophone_redis_transitions_total{to="down"} %v, want 1`, n)
	}
	st0, _ := g.srv.CoordStatus()
	for range 20 {
		if _, err := g.ord.BatchShowSku(ctx, &pb.BatchShowSkuRequest{}); err != nil {
			t.Errorf("read with Redis down: %v", err)
		}
	}
	st1, _ := g.srv.CoordStatus()
	if sent, probes := st1.Commands-st0.Commands, st1.Probes-st0.Probes; sent > probes {
		t.Errorf("20 reads with Redis down: %d Redis commands, only %d probes", sent, probes)
	}
	if n := st1.Skipped[coord.OpQuota] - st0.Skipped[coord.OpQuota]; n < 20 {
		t.Errorf("20 reads with Redis down: %d quota calls skipped Redis", n)
	}
	creates1 := counter.creates.Load()
	create.RequestId = "9e7d7a5c-2f0e-4a57-9d1b-6c3b2a1f0e9d"
	if _, err := gws[others[0]].ord.CreateInstance(ctx, create); status.Code(err) != codes.Unavailable {
		t.Errorf("keyed write with Redis down: %v, want UNAVAILABLE", err)
	}
	if counter.creates.Load() != creates1 {
		t.Error("a keyed write reached KooPhone while Redis was down")
	}
	rs.Restart()
	eventually(t, "recovered", func() bool {
		for _, r := range others {
			if st, _ := gws[r].srv.CoordStatus(); st.Degraded {
				return false
			}
		}
		return true
	})
	if up := scrape(t, g, "koophone_redis_up"); up != 1 {
		t.Errorf("redis back: koophone_redis_up %v", up)
	}
	// Recovered: one poller per task again.
	eventually(t, "one lease per task again", func() bool { return leases(others...) == tasks })
	// A replica that polled a task while Redis was down stops when its next lease renewal (every third of the lease
	// TTL, 500ms here) finds the task's owner holding it: let that round pass before counting one poller per task.
	// On a loaded machine that round can come late and the stopping replica make one last poll in the window
	// (seen in CI: 9 calls for a limit of 8); two pollers for the whole window would make ~6 more, so one call of
	// slack still tells one poller from two.
	time.Sleep(600 * time.Millisecond)
	measure("2 replicas after Redis came back", 1)
	if _, err := gws[others[1]].ord.CreateInstance(ctx, create); err != nil {
		t.Errorf("keyed write after Redis came back: %v", err)
	}

	// The jobs finish: every one of the 3,000 streams ends with the terminal snapshot, none with an error.
	simClock.Advance(jobDuration)
	wg.Wait()
	moved := 0
	for _, w := range ws {
		if w.err != nil || !w.terminal {
			t.Errorf("watcher of %s on replica %d: terminal %v, err %v", w.task, w.gw, w.terminal, w.err)
			break
		}
		moved += w.moves
	}
	t.Logf("%d watchers finished; %d moved off the stopped replica", len(ws), moved)
}
