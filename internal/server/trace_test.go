package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A REST caller's traceparent reaches the gRPC hop (the mirror's client stats handler carries it), so the gRPC
// call's log line carries the caller's trace id, even with tracing export off.
func TestTraceIDReachesTheLogsThroughTheRESTHop(t *testing.T) {
	e := newFaultEnv(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
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
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d", res.StatusCode)
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
