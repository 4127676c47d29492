package share

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shares.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const sample = `
defaults:
  open_streams: 100
groups:
  operators: {requests_per_second: 50, concurrent_fleet_runs: 2}
  auditors: {requests_per_second: 20, concurrent_fleet_runs: 0}
principals:
  ci-bot: {requests_per_second: 5, open_streams: 10}
  free: {open_streams: 0}
`

func TestLimitsResolveDefaultsGroupsPrincipals(t *testing.T) {
	s, err := New(Config{Defaults: Limits{RequestsPerSecond: 10, ConcurrentCalls: 8}, File: writeFile(t, sample)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		groups []string
		want   Limits
	}{
		// The file's defaults replace the table's field by field; the rest stay.
		{"nobody", nil, Limits{RequestsPerSecond: 10, Burst: 10, ConcurrentCalls: 8, OpenStreams: 100}},
		{"op", []string{"operators"}, Limits{RequestsPerSecond: 50, Burst: 50, ConcurrentCalls: 8, OpenStreams: 100, ConcurrentFleetRuns: 2}},
		// Several groups: the most generous of each field, and 0 (unlimited) is the most generous.
		{"both", []string{"auditors", "operators"}, Limits{RequestsPerSecond: 50, Burst: 50, ConcurrentCalls: 8, OpenStreams: 100}},
		// The principal's own entry beats its groups.
		{"ci-bot", []string{"operators"}, Limits{RequestsPerSecond: 5, Burst: 5, ConcurrentCalls: 8, OpenStreams: 10, ConcurrentFleetRuns: 2}},
		{"free", nil, Limits{RequestsPerSecond: 10, Burst: 10, ConcurrentCalls: 8}},
	} {
		if got := s.Limits(tc.name, tc.groups); got != tc.want {
			t.Errorf("%s %v: got %+v, want %+v", tc.name, tc.groups, got, tc.want)
		}
	}
}

func TestBadFilesNameTheField(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"principals:\n  ci-bot: {open_streams: -1}\n", "principals.ci-bot.open_streams: must not be negative"},
		{"groups:\n  ops: {requests_per_second: -2}\n", "groups.ops.requests_per_second: must not be negative"},
		{"defaults: {concurent_calls: 3}\n", "field concurent_calls not found"},
		{"principal: {}\n", "not a shares file"},
	} {
		_, err := New(Config{File: writeFile(t, tc.body)}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.body, err, tc.want)
		}
	}
	if _, err := New(Config{File: filepath.Join(t.TempDir(), "missing.yaml")}, nil, nil); err == nil || !strings.Contains(err.Error(), "shares file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := New(Config{Defaults: Limits{ConcurrentCalls: -1}}, nil, nil); err == nil || !strings.Contains(err.Error(), "defaults.concurrent_calls") {
		t.Errorf("negative default: %v", err)
	}
	if _, err := New(Config{File: writeFile(t, "")}, nil, nil); err != nil {
		t.Errorf("an empty file is no overrides: %v", err)
	}
}

// call runs the unary step for principal p; h runs inside it.
func call(s *Shares, p auth.Principal, h grpc.UnaryHandler) error {
	return callIn(context.Background(), s, p, h)
}

// callIn is call made from within another call's handler (ctx is that call's): p's principal replaces the caller's.
func callIn(ctx context.Context, s *Shares, p auth.Principal, h grpc.UnaryHandler) error {
	ctx = auth.ContextWithPrincipal(ctx, p)
	_, err := s.Unary()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/koophone.v1.InstanceService/GetTask"}, h)
	return err
}

func ok(context.Context, any) (any, error) { return nil, nil }

func refusedWith(t *testing.T, err error, reason, limit string) time.Duration {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("got %v, want RESOURCE_EXHAUSTED", err)
	}
	var retry time.Duration
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.RetryInfo:
			retry = d.GetRetryDelay().AsDuration()
		}
	}
	if info == nil || info.GetReason() != reason || info.GetMetadata()[KeyLimit] != limit || info.GetMetadata()[KeyPrincipal] == "" {
		t.Fatalf("ErrorInfo %v, want reason %s naming limit %s and the principal", info, reason, limit)
	}
	if retry <= 0 {
		t.Fatalf("no RetryInfo in %v", st.Details())
	}
	return retry
}

func TestRateRefusesWithRetryInfoOnTheClock(t *testing.T) {
	clk := clocktest.NewFake(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	s, err := New(Config{Defaults: Limits{RequestsPerSecond: 2, Burst: 2}}, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := auth.Principal{Name: "a"}, auth.Principal{Name: "b"}
	for range 2 {
		if err := call(s, a, ok); err != nil {
			t.Fatal(err)
		}
	}
	if d := refusedWith(t, call(s, a, ok), "PRINCIPAL_RATE_LIMITED", LimitRate); d != 500*time.Millisecond {
		t.Fatalf("RetryInfo %v, want 500ms (one token at 2/s)", d)
	}
	if err := call(s, b, ok); err != nil { // another caller's share is its own
		t.Fatalf("b refused by a's flood: %v", err)
	}
	clk.Advance(500 * time.Millisecond)
	if err := call(s, a, ok); err != nil {
		t.Fatalf("after the delay: %v", err)
	}
}

func TestConcurrentCallsAndStreams(t *testing.T) {
	s, err := New(Config{Defaults: Limits{ConcurrentCalls: 1, OpenStreams: 1, ConcurrentFleetRuns: 1}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := auth.Principal{Name: "a"}
	err = call(s, a, func(ctx context.Context, _ any) (any, error) {
		refusedWith(t, callIn(ctx, s, a, ok), "PRINCIPAL_CONCURRENCY_LIMITED", LimitCalls)
		if err := callIn(ctx, s, auth.Principal{Name: "b"}, ok); err != nil {
			t.Errorf("b: %v", err)
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := call(s, a, ok); err != nil {
		t.Fatalf("after the first call ended: %v", err)
	}

	open := func(method string, h grpc.StreamHandler) error {
		ss := &fakeStream{ctx: auth.ContextWithPrincipal(context.Background(), a)}
		return s.Stream()(nil, ss, &grpc.StreamServerInfo{FullMethod: method}, h)
	}
	watch, fleet := "/koophone.v1.InstanceService/WatchTask", "/koophone.v1.FleetService/ResetFleet"
	err = open(watch, func(any, grpc.ServerStream) error {
		refusedWith(t, open(watch, func(any, grpc.ServerStream) error { return nil }), "PRINCIPAL_STREAM_LIMITED", LimitStreams)
		// A fleet run is counted apart from the streams.
		return open(fleet, func(any, grpc.ServerStream) error {
			refusedWith(t, open(fleet, func(any, grpc.ServerStream) error { return nil }), "PRINCIPAL_CONCURRENCY_LIMITED", LimitFleet)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f *fakeStream) Context() context.Context { return f.ctx }

// TestFairnessKeyWithoutLimits: with nothing configured the step still names the caller to the upstream quota.
func TestFairnessKeyWithoutLimits(t *testing.T) {
	s, err := New(Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = call(s, auth.Principal{Name: "ci-bot"}, func(ctx context.Context, _ any) (any, error) {
		if k := upstream.FairnessKey(ctx); k != "ci-bot" {
			t.Errorf("fairness key %q", k)
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMetricLabelsBounded: only principals the shares file names get a label of their own.
func TestMetricLabelsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Config{Defaults: Limits{ConcurrentCalls: 1}, File: writeFile(t, "principals:\n  ci-bot: {concurrent_calls: 1}\n")}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		p := auth.Principal{Name: "stranger-" + strings.Repeat("x", i%7) + string(rune('a'+i%26))}
		if i == 0 {
			p.Name = "ci-bot"
		}
		_ = call(s, p, func(ctx context.Context, _ any) (any, error) {
			_ = callIn(ctx, s, p, ok) // refused: the second call in flight
			return nil, nil
		})
	}
	if n := series(s.refused); n != 2 {
		t.Fatalf("%d refusal series for 50 principals, want 2 (ci-bot and other)", n)
	}
	if got := value(s.refused.WithLabelValues(Other, LimitCalls)); got != 49 {
		t.Fatalf("other: %v refusals, want 49", got)
	}
	if got := value(s.refused.WithLabelValues("ci-bot", LimitCalls)); got != 1 {
		t.Fatalf("ci-bot: %v refusals, want 1", got)
	}
	if got := value(s.inUse.WithLabelValues(Other, LimitCalls)); got != 0 {
		t.Fatalf("in use after every call ended: %v", got)
	}
}

// BenchmarkUnary compares a call through the step with nothing configured against a call without the step.
func BenchmarkUnary(b *testing.B) {
	s, err := New(Config{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := auth.ContextWithPrincipal(context.Background(), auth.Principal{Name: "ci-bot"})
	info := &grpc.UnaryServerInfo{FullMethod: "/koophone.v1.InstanceService/GetTask"}
	step := s.Unary()
	b.Run("without-step", func(b *testing.B) {
		for b.Loop() {
			_, _ = ok(ctx, nil)
		}
	})
	b.Run("step-no-limits", func(b *testing.B) {
		for b.Loop() {
			_, _ = step(ctx, nil, info, ok)
		}
	})
	limited, err := New(Config{Defaults: Limits{RequestsPerSecond: 1e9, ConcurrentCalls: 1 << 20}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	lstep := limited.Unary()
	b.Run("step-with-limits", func(b *testing.B) {
		for b.Loop() {
			_, _ = lstep(ctx, nil, info, ok)
		}
	})
}

// series counts the series c has.
func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// value is a counter's or gauge's value.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
