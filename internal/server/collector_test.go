package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

// otelcolBin is the test collector `make otelcol` builds (tools/otelcol); KOOPHONE_OTELCOL names another.
func otelcolBin() string {
	if p := os.Getenv("KOOPHONE_OTELCOL"); p != "" {
		return p
	}
	p, _ := filepath.Abs("../../bin/otelcol")
	return p
}

// TestRealCollector exports the gateway's spans to a real OpenTelemetry Collector (OTLP over gRPC), which passes
// them on over OTLP/HTTP to a receiver of the test's: a REST call's three hops arrive nested in one trace, with
// http.route and the resource's service.name and service.version, and the polls serving two watches link both
// watches' traces. The collector is built from the Go module proxy by `make otelcol` (minutes cold, seconds once
// cached; make test's tools stage builds it): without bin/otelcol this test is skipped, saying why.
func TestRealCollector(t *testing.T) {
	bin := otelcolBin()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no OpenTelemetry Collector at %s: run `make otelcol` (make test builds it in its tools stage): %v", bin, err)
	}
	receiverURL, received := fakeReceiver(t)
	grpcPort, httpPort := freePort(t), freePort(t)
	dir := t.TempDir()
	config := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:%d"}
      http: {endpoint: "127.0.0.1:%d"}
exporters:
  otlphttp:
    endpoint: %q
    compression: none
    retry_on_failure: {enabled: false}
service:
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
  pipelines:
    traces: {receivers: [otlp], exporters: [otlphttp]}
`, grpcPort, httpPort, receiverURL)
	if err := os.WriteFile(filepath.Join(dir, "collector.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testsupport.SyncBuffer{}
	col := exec.Command(bin, "--config=file:"+filepath.Join(dir, "collector.yaml"))
	col.Stdout, col.Stderr = logs, logs
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when the collector has exited, with its error in waitErr
	var waitErr error
	go func() { waitErr = col.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = col.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = col.Process.Kill()
			<-exited
		}
	})
	// Wait for its OTLP/HTTP port (a wait for readiness, not a timing assertion).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
		if err == nil {
			_ = c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("the collector exited: %v\n%s", waitErr, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector never listened on %d: %v\n%s", httpPort, err, logs.String())
		}
	}

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", fmt.Sprintf("http://127.0.0.1:%d", grpcPort))
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	e := newFaultEnvIn(t, os.Getenv) // the gateway reads OTEL_* from the environment its configuration came from
	const traceID = "6bf92f3577b34da6a3ce929d0e0e4731"
	restCallInTrace(t, e, traceID)
	// Two watches of one task, whose polls link both watches' traces.
	const grpcTrace, restTrace = "6bf92f3577b34da6a3ce929d0e0e4732", "6bf92f3577b34da6a3ce929d0e0e4733"
	watchTwice(t, e, grpcTrace, restTrace)
	if err := e.srv.Shutdown(context.Background()); err != nil { // flushes to the collector
		t.Fatal(err)
	}
	// The collector passes them on in its own time: wait for the three hops and the polls' links.
	var spans []*tracepb.Span
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		spans = received()
		n := 0
		for _, s := range spans {
			if strings.HasPrefix(s.GetName(), "REST ") || s.GetName() == "koophone.v1.InstanceService/BatchQueryStatus" || strings.HasPrefix(s.GetName(), "koophone ") {
				n++
			}
		}
		if linked, _ := pollLinks(t, spans, restTrace); n >= 3 && linked[grpcTrace] && linked[restTrace] {
			break
		}
	}
	checkRESTTrace(t, spans, traceID)
	checkPollLinks(t, spans, grpcTrace, restTrace)
	for _, s := range spans {
		if attr(s, "service.name") != "koophone-gateway" {
			t.Errorf("span %s: service.name %q", s.GetName(), attr(s, "service.name"))
			break
		}
	}
}

// freePort is a loopback port free a moment ago, for a program that takes its port in a file.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
