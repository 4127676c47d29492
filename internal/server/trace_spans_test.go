package server

import (
	"bufio"
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

	koophonegateway "github.com/koophone-gateway/koophone-gateway"
	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// fakeCollector is an OTLP/HTTP trace receiver on loopback; the gateway started after it exports to it. spans
// returns what arrived (call it after the server's Shutdown, which flushes).
func fakeCollector(t *testing.T) (spans func() []*tracepb.Span) {
	url, spans := fakeReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	return spans
}

// fakeReceiver is an OTLP/HTTP trace receiver on loopback (uncompressed protobuf); it keeps the spans and the
// resource attributes they came with.
func fakeReceiver(t *testing.T) (url string, spans func() []*tracepb.Span) {
	var mu sync.Mutex
	var got []*tracepb.Span
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
				for _, sp := range ss.GetSpans() {
					// Keep the resource with each span: service.name as the collector passed it on.
					sp.Attributes = append(sp.Attributes, rs.GetResource().GetAttributes()...)
					got = append(got, sp)
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(collector.Close)
	return collector.URL, func() []*tracepb.Span {
		mu.Lock()
		defer mu.Unlock()
		return append([]*tracepb.Span(nil), got...)
	}
}

func spanNames(spans []*tracepb.Span) []string {
	var n []string
	for _, s := range spans {
		n = append(n, s.GetName()+"@"+hex.EncodeToString(s.GetTraceId())[:8])
	}
	return n
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// A REST unary call is one trace of three hops: the REST request's span (named and tagged by its route), the gRPC
// handler's span under it (the mirror runs unary calls in process, without a gRPC transport), and the KooPhone
// call's span under that.
func TestRESTCallTraceHasTheGRPCHop(t *testing.T) {
	exported := fakeCollector(t)
	e := newFaultEnvIn(t, os.Getenv) // the gateway reads OTEL_* from the environment its configuration came from
	const traceID = "5bf92f3577b34da6a3ce929d0e0e4731"
	if status := restCallInTrace(t, e, traceID); status != http.StatusOK {
		t.Fatalf("HTTP %d", status)
	}
	if err := e.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkRESTTrace(t, exported(), traceID)
}

// checkRESTTrace finds the three hops of a REST unary call to BatchQueryStatus in trace traceID, nested.
func checkRESTTrace(t *testing.T, spans []*tracepb.Span, traceID string) {
	t.Helper()
	var rest, grpcSpan, up *tracepb.Span
	for _, s := range spans {
		if hex.EncodeToString(s.GetTraceId()) != traceID {
			continue
		}
		switch {
		case s.GetKind() == tracepb.Span_SPAN_KIND_SERVER && strings.HasPrefix(s.GetName(), "REST "):
			rest = s
		case s.GetName() == "koophone.v1.InstanceService/BatchQueryStatus" && s.GetKind() == tracepb.Span_SPAN_KIND_SERVER:
			grpcSpan = s
		case s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT && strings.HasPrefix(s.GetName(), "koophone "):
			up = s
		}
	}
	if rest == nil || grpcSpan == nil || up == nil {
		t.Fatalf("want the REST, gRPC and KooPhone spans in trace %s; exported: %v", traceID, spanNames(spans))
	}
	if rest.GetName() != "REST POST /v1/instances/batch-query-status" || attr(rest, "http.route") != "/v1/instances/batch-query-status" {
		t.Errorf("REST span %q http.route=%q", rest.GetName(), attr(rest, "http.route"))
	}
	if string(grpcSpan.GetParentSpanId()) != string(rest.GetSpanId()) || string(up.GetParentSpanId()) != string(grpcSpan.GetSpanId()) {
		t.Errorf("hops not nested: REST %x, gRPC %x (parent %x), KooPhone parent %x",
			rest.GetSpanId(), grpcSpan.GetSpanId(), grpcSpan.GetParentSpanId(), up.GetParentSpanId())
	}
	// The resource says which release made the spans: VERSION, as --version and koophone_build_info say.
	for _, s := range []*tracepb.Span{rest, grpcSpan, up} {
		if got := attr(s, "service.version"); got != koophonegateway.Version {
			t.Errorf("span %s: resource service.version %q, want VERSION %q", s.GetName(), got, koophonegateway.Version)
		}
	}
	for k, want := range map[string]string{"rpc.system.name": "grpc", "rpc.service": "koophone.v1.InstanceService",
		"rpc.method": "koophone.v1.InstanceService/BatchQueryStatus", "rpc.response.status_code": "OK"} {
		if got := attr(grpcSpan, k); got != want {
			t.Errorf("gRPC span %s=%q, want %q", k, got, want)
		}
	}
}

// Two watches of one task, one over gRPC and one over REST, each in its caller's trace: the polls that serve them
// are spans of their own, linked to both watches' traces. The REST watch's span carries its route template.
func TestWatchPollsLinkTheWatchesTraces(t *testing.T) {
	exported := fakeCollector(t)
	e := newFaultEnvIn(t, os.Getenv) // the gateway reads OTEL_* from the environment its configuration came from
	const grpcTrace, restTrace = "5bf92f3577b34da6a3ce929d0e0e4732", "5bf92f3577b34da6a3ce929d0e0e4733"
	watchTwice(t, e, grpcTrace, restTrace)
	if err := e.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkPollLinks(t, exported(), grpcTrace, restTrace)
}

// watchTwice starts a task and watches it to its end twice at once: over gRPC in trace grpcTrace and over REST in
// trace restTrace.
func watchTwice(t *testing.T, e *faultEnv, grpcTrace, restTrace string) {
	t.Helper()
	task, err := e.inst.AsyncCommand(context.Background(), &pb.AsyncCommandRequest{Command: "ls", InstanceIds: []string{e.sim.InstanceIDs()[0]}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // only keeps a broken test from hanging
	defer cancel()
	w, err := e.inst.WatchTask(metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+grpcTrace+"-00f067aa0ba902b7-01"),
		&pb.WatchTaskRequest{TaskId: task.GetTaskId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.srv.HTTPAddr()+"/v1/instances/tasks/"+task.GetTaskId()+"/watch", nil)
	req.Header.Set("traceparent", "00-"+restTrace+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	lines := bufio.NewScanner(res.Body)
	if !lines.Scan() {
		t.Fatalf("REST watch: %v", lines.Err())
	}
	// Both watch now: let the fake clock run until the task ends, polling with both watchers attached.
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
				e.clk.Advance(time.Second)
			}
		}
	}()
	defer close(done)
	for {
		m, err := w.Recv()
		if err != nil {
			t.Fatalf("gRPC watch: %v", err)
		}
		if m.GetTerminal() {
			break
		}
	}
	for lines.Scan() {
	}
}

// pollLinks are the traces the exported "watch poll task" spans link to, and the REST watch's route in restTrace.
func pollLinks(t *testing.T, spans []*tracepb.Span, restTrace string) (linked map[string]bool, restRoute string) {
	t.Helper()
	linked = map[string]bool{}
	for _, s := range spans {
		if hex.EncodeToString(s.GetTraceId()) == restTrace && strings.HasPrefix(s.GetName(), "REST ") {
			restRoute = attr(s, "http.route")
		}
		if s.GetName() != "watch poll task" {
			continue
		}
		if len(s.GetParentSpanId()) != 0 {
			t.Errorf("a poll span with a parent: %x", s.GetParentSpanId())
		}
		for _, l := range s.GetLinks() {
			linked[hex.EncodeToString(l.GetTraceId())] = true
		}
	}
	return linked, restRoute
}

// checkPollLinks: the poll spans link both watches' traces, and the REST watch's span has its route template.
func checkPollLinks(t *testing.T, spans []*tracepb.Span, grpcTrace, restTrace string) {
	t.Helper()
	linked, restRoute := pollLinks(t, spans, restTrace)
	if !linked[grpcTrace] || !linked[restTrace] {
		t.Errorf("poll spans link traces %v, want %s and %s; exported: %v", linked, grpcTrace, restTrace, spanNames(spans))
	}
	if restRoute != "/v1/instances/tasks/{task_id}/watch" {
		t.Errorf("REST watch http.route %q", restRoute)
	}
}
