package telemetry

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	koophonegateway "github.com/koophone-gateway/koophone-gateway"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

// Without an OTLP endpoint tracing is a no-op provider; an unknown protocol is refused by name.
func TestTracerProviderFollowsOTELVariables(t *testing.T) {
	tel, err := New(context.Background(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tel.Tracer.(noop.TracerProvider); !ok {
		t.Fatalf("no endpoint: provider %T, want the no-op one", tel.Tracer)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}))
	if err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL") {
		t.Fatalf("bad protocol: %v", err)
	}
}

// Log lines of a traced call carry its trace and span ids; others do not.
func TestLogHandlerAddsTraceIDs(t *testing.T) {
	var buf strings.Builder
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil))).With("component", "x")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.InfoContext(ctx, "traced")
	log.InfoContext(context.Background(), "untraced")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if !strings.Contains(lines[0], "trace_id=4bf92f3577b34da6a3ce929d0e0e4736") || !strings.Contains(lines[0], "span_id=00f067aa0ba902b7") {
		t.Fatalf("traced line: %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Fatalf("untraced line: %s", lines[1])
	}
}

// The registry carries koophone_build_info with the version, and spans' resource carries service.version, unless
// the operator's OTEL_RESOURCE_ATTRIBUTES sets its own.
func TestVersionInMetricsAndResource(t *testing.T) {
	tel, err := New(context.Background(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := `koophone_build_info{go_version="` + runtime.Version() + `",revision="` + koophonegateway.Revision() +
		`",version="` + koophonegateway.Version + `"} 1`
	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %s", want)
	}

	version := func(getenv func(string) string) string {
		v, _ := newResource(getenv).Set().Value(attribute.Key("service.version"))
		return v.AsString()
	}
	if got := version(env(nil)); got != koophonegateway.Version {
		t.Errorf("service.version = %q, want %q", got, koophonegateway.Version)
	}
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=9.9.9")
	if got := version(env(map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.version=9.9.9"})); got != "9.9.9" {
		t.Errorf("service.version with OTEL_RESOURCE_ATTRIBUTES = %q, want the operator's 9.9.9", got)
	}
}
