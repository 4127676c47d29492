package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Simulated durations of the test fleet (on the fake clock).
const (
	jobDuration  = 2 * time.Second
	prepareStep  = time.Second
	prepareQueue = 3
	restore      = 2 * time.Second
	readyAfter   = prepareQueue*prepareStep + restore
)

// env is a whole gateway on loopback ports, on the embedded simulator, with the simulator and the streams on one
// fake clock, and clients for both transports.
type env struct {
	t     *testing.T
	srv   *Server
	sim   *sim.Server
	clk   *clock.Fake
	conn  *grpc.ClientConn
	inst  pb.InstanceServiceClient
	order pb.OrderServiceClient
	app   pb.AppServiceClient
	base  string // the REST mirror's base URL
	http  *http.Client

	mu     sync.Mutex
	phones []string // fleet phones not yet handed to a test
	shut   bool
}

// newEnv starts the gateway; flags adds to (or overrides) its test configuration.
func newEnv(t *testing.T, flags ...string) *env {
	t.Helper()
	return newEnvVars(t, nil, flags...)
}

// newEnvVars is newEnv with KOOPHONE_* variables set (the settings that have no flag, such as KOOPHONE_REDIS_URL).
func newEnvVars(t *testing.T, vars map[string]string, flags ...string) *env {
	t.Helper()
	// No rate limit toward the simulator (its pacing runs on the fake clock, which these tests move only on
	// purpose), and no breaker (it runs on the wall clock while the tests race the fake one through faults); the
	// fault suite (fault_test.go) tests both.
	cfg, err := config.Load(append([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--sim-fleet=200",
		"--upstream-read-rate=0", "--upstream-write-rate=0", "--breaker-failures=1000000", "--audit-log=off"}, flags...),
		func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.NewFake(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = NewLogger(testWriter{t}, "text", slog.LevelDebug)
	}
	srv, err := Start(context.Background(), cfg, log, WithClock(clk),
		WithSimConfig(func(c *sim.Config) {
			c.JobDuration = jobDuration
			c.PrepareStep = prepareStep
			c.PrepareQueue = prepareQueue
			c.RestoreDuration = restore
			c.RebootDuration = 2 * time.Second
			c.Stock = 50
			c.Seed = 7
		}),
		WithWatchOptions(func(o *service.WatchOptions) {
			o.Rand = func() float64 { return 0.5 } // no jitter: the same steps every run
			// The poll timeout runs on the fake clock too: keep it out of reach of the steps tests take, so a
			// slow loopback call on a loaded machine never turns into an extra poll.
			o.PollTimeout = 24 * time.Hour
		}))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.GRPCAddr(), append(checkErrorInfos(t), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		t: t, srv: srv, sim: srv.Sim(), clk: clk, conn: conn,
		inst:  pb.NewInstanceServiceClient(conn),
		order: pb.NewOrderServiceClient(conn),
		app:   pb.NewAppServiceClient(conn),
		base:  "http://" + srv.HTTPAddr(),
		http:  &http.Client{Transport: &http.Transport{}},
	}
	e.phones = append(e.phones, e.sim.InstanceIDs()...)
	t.Cleanup(e.close)
	e.waitServing()
	return e
}

func (e *env) close() {
	e.mu.Lock()
	done := e.shut
	e.shut = true
	e.mu.Unlock()
	_ = e.conn.Close()
	e.http.CloseIdleConnections()
	if !done {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			e.t.Error(err)
		}
	}
}

// shutdown stops the server now (and keeps Cleanup from doing it again).
func (e *env) shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.shut = true
	e.mu.Unlock()
	return e.srv.Shutdown(ctx)
}

// waitServing waits, in real time, for the readiness probe to see the simulator.
func (e *env) waitServing() {
	e.t.Helper()
	hc := healthpb.NewHealthClient(e.conn)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		res, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatal("server never became SERVING")
}

// phone hands out a fleet phone no other test step has used.
func (e *env) phone() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.phones) == 0 {
		e.t.Fatal("fleet exhausted")
	}
	p := e.phones[0]
	e.phones = e.phones[1:]
	return p
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// advanceUntil moves the fake clock in steps until done reports true, waiting a little real time between steps
// so the pollers run. It bounds the real time spent, so a broken stream fails the test instead of hanging it.
func (e *env) advanceUntil(step time.Duration, done func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			e.t.Fatal("condition not reached")
		}
		e.clk.Advance(step)
		time.Sleep(2 * time.Millisecond)
	}
}

// runClock moves the fake clock forward in the background, 100ms every 2ms of real time, until the returned stop is
// called: for calls that wait on the gateway's clock (the client honouring a Retry-After) with no stream to drive.
func (e *env) runClock() (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
				e.clk.Advance(100 * time.Millisecond)
			}
		}
	}()
	// Then past any Retry-After the call met: the gateway holds every caller back until it ends (issue 9).
	return func() { close(done); <-finished; e.clk.Advance(2 * time.Second) }
}

// prepared assigns phone to user and prepares it until ready.
func (e *env) prepared(user, phone string) {
	e.t.Helper()
	ctx := e.ctx()
	if _, err := e.inst.AssignInstance(ctx, &pb.AssignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: user, InstanceId: phone}}}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.inst.BatchPrepareInstances(ctx, &pb.BatchPrepareInstancesRequest{UserId: user, InstanceIds: []string{phone}}); err != nil {
		e.t.Fatal(err)
	}
	e.clk.Advance(readyAfter + time.Second)
}

// restResult is a REST mirror answer.
type restResult struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) rest(method, path, body string, header ...string) restResult {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx(), method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := restResult{status: res.StatusCode, header: res.Header, raw: string(b)}
	if err := json.Unmarshal(b, &out.body); err != nil {
		e.t.Fatalf("%s %s: HTTP %d body is not a JSON object: %q", method, path, res.StatusCode, b)
	}
	// Every error answer: Retry-After where RetryInfo says to wait, no empty ErrorInfo metadata.
	errStatus, _ := out.body["error"].(map[string]any)
	checkRESTError(e.t, method+" "+path, restAnswer{status: res.StatusCode, header: res.Header, raw: out.raw, err: errStatus})
	return out
}

// asJSON renders a gRPC reply the way the REST mirror does, so one check serves both transports.
func asJSON(t *testing.T, m proto.Message) map[string]any {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// errorInfoReason returns the ErrorInfo reason of a gRPC error, or "".
func errorInfoReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// errorInfoDomain returns the ErrorInfo domain of a gRPC error, or "".
func errorInfoDomain(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetDomain()
		}
	}
	return ""
}

// restError returns the google.rpc.Status of a REST error body ({"error": status}), or nil.
func restError(body map[string]any) map[string]any {
	st, _ := body["error"].(map[string]any)
	return st
}

// restReason returns the ErrorInfo reason inside a REST error body, or "".
func restReason(body map[string]any) string {
	details, _ := restError(body)["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		if m["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" {
			r, _ := m["reason"].(string)
			return r
		}
	}
	return ""
}

func httpStatus(c codes.Code) int { return runtime.HTTPStatusFromCode(c) }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
