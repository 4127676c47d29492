package server

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// A REST caller's traceparent reaches the gRPC hop (the mirror's client stats handler carries it), so the gRPC
// call's log line carries the caller's trace id, even with tracing export off.
func TestTraceIDReachesTheLogsThroughTheRESTHop(t *testing.T) {
	e := newFaultEnv(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	status := restCallInTrace(t, e, traceID)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d", status)
	}
	for _, line := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(line, "BatchQueryStatus") && strings.Contains(line, "trace_id="+traceID) && strings.Contains(line, "span_id=") {
			return
		}
	}
	t.Fatalf("no log line of the call with trace_id=%s:\n%s", traceID, e.log.String())
}

// Health checks are logged at debug only, so a load balancer's probes do not flood the INFO log.
func TestHealthChecksAreNotLoggedAtInfo(t *testing.T) {
	e := newFaultEnv(t) // its readiness wait made health checks already
	if strings.Contains(e.log.String(), "grpc.health.v1.Health") {
		t.Fatalf("health checks logged at INFO:\n%s", e.log.String())
	}
}

// A gRPC caller's traceparent reaches the call's log line too, unary and streaming, with tracing export off (no
// stats handler: the request-id step joins the call to the caller's trace).
func TestTraceIDReachesTheLogsOverGRPC(t *testing.T) {
	e := newFaultEnv(t)
	const unaryTrace, streamTrace = "4bf92f3577b34da6a3ce929d0e0e4737", "4bf92f3577b34da6a3ce929d0e0e4738"
	client := pb.NewInstanceServiceClient(e.conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+unaryTrace+"-00f067aa0ba902b7-01")
	if _, err := client.BatchQueryStatus(ctx, &pb.BatchQueryStatusRequest{InstanceIds: []string{e.sim.InstanceIDs()[0]}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+streamTrace+"-00f067aa0ba902b7-01"))
	w, err := client.WatchTask(ctx, &pb.WatchTaskRequest{TaskId: "no-such-task"})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Recv() // the unknown task ends the stream with an error, and its log line
	cancel()
	for _, want := range []struct{ rpc, trace string }{{"BatchQueryStatus", unaryTrace}, {"WatchTask", streamTrace}} {
		found := false
		// The server logs a stream's line as its handler returns, which may be just after the caller has the status.
		for deadline := time.Now().Add(10 * time.Second); !found && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, line := range strings.Split(e.log.String(), "\n") {
				if strings.Contains(line, want.rpc) && strings.Contains(line, "trace_id="+want.trace) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("no log line of %s with trace_id=%s:\n%s", want.rpc, want.trace, e.log.String())
		}
	}
}

// With an OTLP endpoint configured, every gRPC call is a span of its caller's trace, exported by the gateway
// (otelgrpc's stats handler is on only then).
func TestSpansAreExportedWhenTracingIsOn(t *testing.T) {
	var mu sync.Mutex
	var spans []*tracepb.Span
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				spans = append(spans, ss.GetSpans()...)
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	defer collector.Close()
	// The gateway reads the OTEL_* variables from the environment its configuration came from; the OTLP exporter
	// reads the rest of them from the process's.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")

	e := newFaultEnvIn(t, os.Getenv)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4739"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if _, err := pb.NewInstanceServiceClient(e.conn).BatchQueryStatus(ctx, &pb.BatchQueryStatusRequest{InstanceIds: []string{e.sim.InstanceIDs()[0]}}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Shutdown(context.Background()); err != nil { // flushes the spans
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range spans {
		if s.GetName() == "koophone.v1.InstanceService/BatchQueryStatus" && hex.EncodeToString(s.GetTraceId()) == traceID &&
			s.GetKind() == tracepb.Span_SPAN_KIND_SERVER {
			return
		}
	}
	names := []string{}
	for _, s := range spans {
		names = append(names, s.GetName())
	}
	t.Fatalf("no server span of BatchQueryStatus in trace %s; exported: %v", traceID, names)
}

// restCallInTrace makes one REST BatchQueryStatus call whose traceparent names traceID, and returns its HTTP status.
func restCallInTrace(t *testing.T, e *faultEnv, traceID string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+e.srv.HTTPAddr()+"/v1/instances/batch-query-status",
		strings.NewReader(`{"instance_ids":["`+e.sim.InstanceIDs()[0]+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}
