package server

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
	return string(b)
}

// /metrics carries the series an operator needs, on the HTTP port and on the metrics port, with bounded labels
// and no secret: no credential, no token, no phone or request id.
func TestMetricsScrape(t *testing.T) {
	e := newFaultEnv(t, "--metrics-addr=127.0.0.1:0")
	phone := e.sim.InstanceIDs()[0]
	ctx := callCtx(t, 10*time.Second)
	if _, err := e.inst.ListInstances(ctx, listReq); err != nil {
		t.Fatal(err)
	}
	if _, err := e.inst.GetDeviceToken(ctx, &pb.GetDeviceTokenRequest{InstanceId: phone}); err != nil {
		t.Logf("GetDeviceToken: %v", err) // its answer does not matter here, only that no token leaks
	}
	// A REST call, and a watch that ends with an upstream error, so the hub counters move.
	res, err := http.Post("http://"+e.srv.HTTPAddr()+"/v1/instances/batch-query-status", "application/json",
		strings.NewReader(`{"instance_ids":["`+phone+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	e.faults(sim.Fault{Kind: sim.Fault503, Ops: []string{"ListInstances"}})
	_, _ = e.inst.ListInstances(ctx, listReq) // retried: a retry and a 503 in the series
	e.faults()
	w, err := e.inst.WatchTask(ctx, &pb.WatchTaskRequest{TaskId: "no-such-task"})
	if err == nil {
		_, _ = w.Recv()
	}

	scrape(t, "http://"+e.srv.HTTPAddr()+"/metrics")
	body := scrape(t, "http://"+e.srv.HTTPAddr()+"/metrics")
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="ListInstances",grpc_service="koophone.v1.InstanceService",grpc_type="unary"}`,
		`grpc_server_handling_seconds_bucket{grpc_method="ListInstances"`,
		`grpc_server_started_total{grpc_method="WatchTask"`,
		`koophone_http_requests_total{code="200",method="POST",route="/v1/instances/batch-query-status"}`,
		`koophone_http_request_duration_seconds_bucket{method="POST",route="/v1/instances/batch-query-status"`,
		`koophone_upstream_attempts_total{attempt="1",op="ListInstances",result="ok",status="200"}`,
		`koophone_upstream_attempts_total{attempt="2",op="ListInstances",result="http_error",status="503"}`,
		`koophone_upstream_attempt_duration_seconds_bucket{op="ListInstances"`,
		`koophone_upstream_retries_total{budget="allowed",op="ListInstances"}`,
		`koophone_upstream_token_refreshes_total{result="ok"} 1`,
		`koophone_upstream_breaker_state{state="closed"} 1`,
		`koophone_upstream_breaker_state{state="open"} 0`,
		`koophone_upstream_limiter_wait_seconds_bucket{class="read"`,
		`koophone_upstream_in_flight`,
		`koophone_watch_watchers{hub="task"}`,
		`koophone_watch_pollers{hub="prepare"}`,
		`koophone_watch_polls_total{hub="task"}`,
		`koophone_watch_poll_errors_total{hub="task"}`,
		`koophone_watch_conflated_total{hub="task"}`,
		`koophone_http_requests_total{code="200",method="GET",route="GET /metrics"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no series %s", want)
		}
	}
	creds := e.sim.Credentials()
	for _, secret := range []string{creds.Password, phone, "no-such-task", "X-Auth-Token", "device_token"} {
		if secret != "" && strings.Contains(body, secret) {
			t.Errorf("/metrics contains %q", secret)
		}
	}
	// Request ids (UUIDs) never become labels.
	if m := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).FindString(body); m != "" {
		t.Errorf("/metrics contains an id: %s", m)
	}
	if !strings.Contains(scrape(t, "http://"+e.srv.MetricsAddr()+"/metrics"), "koophone_upstream_attempts_total") {
		t.Error("the metrics port does not serve the same registry")
	}
}
