package sim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func (e *env) setFaults(f ...sim.Fault) {
	e.t.Helper()
	if err := e.sim.SetFaults(f); err != nil {
		e.t.Fatal(err)
	}
}

func TestFaultKinds(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.ids(1)
	status := map[string]any{"instance_ids": ids}

	e.setFaults(sim.Fault{Kind: sim.FaultError, Count: 1})
	r := e.call("POST", "/v1/instances/batch-query-status", status)
	r.want(t, 500, "KOOPHONE.API.9999")
	if r.str("error_msg") == "" {
		t.Errorf("body %s", r.body)
	}
	e.setFaults(sim.Fault{Kind: sim.FaultError, Count: 1})
	r = e.call("POST", "/v1/instances/sync-command", map[string]any{"command": "id", "instance_ids": ids})
	r.want(t, 500, "KOOPHONE.API.9999")
	if r.str("error_info") == "" {
		t.Errorf("SyncCommand 500 without error_info: %s", r.body)
	}

	e.setFaults(sim.Fault{Kind: sim.Fault429, Count: 1, RetryAfter: 1500 * time.Millisecond})
	r = e.call("POST", "/v1/instances/batch-query-status", status)
	r.want(t, 429, "APIGW.0308")
	if r.header.Get("Retry-After") != "2" || r.str("error_msg") != "The throttling threshold has been reached" {
		t.Errorf("429: Retry-After %q body %s", r.header.Get("Retry-After"), r.body)
	}
	e.setFaults(sim.Fault{Kind: sim.Fault429, Count: 1})
	if r = e.call("POST", "/v1/instances/batch-query-status", status); r.header.Get("Retry-After") != "1" {
		t.Errorf("default Retry-After %q", r.header.Get("Retry-After"))
	}

	for _, kind := range []string{sim.Fault502, sim.Fault503} {
		e.setFaults(sim.Fault{Kind: kind, Count: 1})
		r = e.call("POST", "/v1/instances/batch-query-status", status)
		if strconv.Itoa(r.status) != kind || !strings.Contains(string(r.body), "<html>") ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: HTTP %d %s", kind, r.status, r.body)
		}
	}

	e.setFaults(sim.Fault{Kind: sim.FaultMalformed, Count: 1})
	r = e.call("POST", "/v1/instances/batch-query-status", status)
	if r.status != 200 || json.Valid(r.body) || len(r.body) == 0 {
		t.Errorf("malformed: HTTP %d %s", r.status, r.body)
	}

	// Truncated: the operation really ran (the task exists), but only half its answer arrives.
	e.setFaults(sim.Fault{Kind: sim.FaultTruncated, Count: 1, Ops: []string{"AsyncCommand"}})
	r = e.call("POST", "/v1/instances/async-command", map[string]any{"command": "id", "instance_ids": ids})
	full := e.call("POST", "/v1/instances/async-command", map[string]any{"command": "id", "instance_ids": ids})
	if r.status != 200 || json.Valid(r.body) || len(r.body) < len(full.body)/2-2 || len(r.body) > len(full.body)/2+2 ||
		!bytes.HasPrefix(full.body, r.body[:20]) {
		t.Errorf("truncated: HTTP %d %q (full %q)", r.status, r.body, full.body)
	}

	// Drop: the connection closes with no answer at all.
	e.setFaults(sim.Fault{Kind: sim.FaultDrop, Count: 1})
	req, _ := http.NewRequest("POST", e.url+"/v1/instances/batch-query-status", strings.NewReader(`{"instance_ids":["`+ids[0]+`"]}`))
	req.Header = e.headers()
	if res, err := e.client.Do(req); err == nil {
		_ = res.Body.Close()
		t.Errorf("drop: got HTTP %d", res.StatusCode)
	}
	e.call("POST", "/v1/instances/batch-query-status", status).want(t, 200, "0")
}

func TestFaultSelection(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) {
		c.Faults = []sim.Fault{{Kind: sim.Fault503, Ops: []string{"GetTask"}, Count: 2}}
	})
	ids := e.ids(1)
	task := e.startTask("/v1/instances/async-command", map[string]any{"command": "id", "instance_ids": ids})
	path := "/v1/instances/tasks/" + task.TaskID

	// Counted before faults and before authentication: tests count exactly what the client sent.
	if r := e.raw("GET", path, nil, nil); r.status != 503 {
		t.Fatalf("HTTP %d", r.status)
	}
	if f := e.sim.Faults(); len(f) != 1 || f[0].Count != 1 {
		t.Fatalf("faults %+v", f)
	}
	if r := e.call("GET", path, nil); r.status != 503 {
		t.Fatalf("HTTP %d", r.status)
	}
	e.call("GET", path, nil).want(t, 200, "0")
	if n := e.sim.Calls("GetTask"); n != 3 {
		t.Errorf("GetTask calls %d", n)
	}
	if f := e.sim.Faults(); len(f) != 0 {
		t.Errorf("used-up fault still there: %+v", f)
	}
	e.sim.ResetCalls()
	if n := e.sim.Calls("GetTask"); n != 0 {
		t.Errorf("after reset %d", n)
	}

	// Rate: a seeded fraction of requests; the IAM endpoint only when named.
	e.setFaults(sim.Fault{Kind: sim.FaultError, Rate: 0.5})
	failed := 0
	for range 200 {
		if e.call("GET", path, nil).status == 500 {
			failed++
		}
	}
	if failed < 60 || failed > 140 {
		t.Errorf("rate 0.5 failed %d of 200", failed)
	}
	e.setFaults(sim.Fault{Kind: sim.FaultError})
	e.login(sim.DefaultUser, sim.DefaultPassword) // not faulted: IAM is not listed
	e.setFaults(sim.Fault{Kind: sim.FaultError, Ops: []string{sim.OpIAM}})
	r := e.raw("POST", "/v3/auth/tokens", keystone(sim.DefaultDomain, sim.DefaultUser, sim.DefaultPassword, map[string]string{"name": "cn-north-7"}), nil)
	if r.status != 500 || !strings.Contains(string(r.body), `"error"`) {
		t.Errorf("IAM fault: HTTP %d %s", r.status, r.body)
	}
	e.call("GET", path, nil).want(t, 200, "0")

	if err := e.sim.SetFaults([]sim.Fault{{Kind: "teapot"}}); err == nil {
		t.Error("unknown kind accepted")
	}
	if err := e.sim.SetFaults([]sim.Fault{{Kind: sim.FaultError, Ops: []string{"Nope"}}}); err == nil {
		t.Error("unknown op accepted")
	}
	if err := e.sim.SetFaults([]sim.Fault{{Kind: sim.FaultLatency}}); err == nil {
		t.Error("latency without a duration accepted")
	}
}

func TestLatencyFault(t *testing.T) {
	// On the real clock, as a gateway test would use it.
	e := newEnv(t, func(c *sim.Config) {
		c.Clock = clock.Real{}
		c.Faults = []sim.Fault{{Kind: sim.FaultLatency, Latency: 150 * time.Millisecond, Ops: []string{"BatchQueryStatus"}}}
	})
	body := map[string]any{"instance_ids": e.ids(1)}
	t0 := time.Now()
	e.call("POST", "/v1/instances/batch-query-status", body).want(t, 200, "0")
	if d := time.Since(t0); d < 150*time.Millisecond {
		t.Errorf("answered after %v", d)
	}

	// On the fake clock the answer waits until the clock moves.
	f := newEnv(t, func(c *sim.Config) {
		c.Faults = []sim.Fault{{Kind: sim.FaultLatency, Latency: time.Minute, Count: 1}}
	})
	var wg sync.WaitGroup
	var got *resp
	wg.Add(1)
	go func() {
		defer wg.Done()
		got = f.call("POST", "/v1/instances/batch-query-status", map[string]any{"instance_ids": f.ids(1)})
	}()
	f.clk.WaitForTimers(1, nil)
	f.clk.Advance(time.Minute)
	wg.Wait()
	got.want(t, 200, "0")
}

func TestAdminAPI(t *testing.T) {
	e := newEnv(t, nil)
	put := `[{"kind":"latency","ops":["GetTask"],"latency":"250ms"},{"kind":"429","rate":0.25,"retry_after":"3s"},{"kind":"drop","count":2}]`
	r := e.raw("PUT", "/_sim/faults", put, nil)
	if r.status != 200 {
		t.Fatalf("PUT: HTTP %d %s", r.status, r.body)
	}
	faults := e.sim.Faults()
	if len(faults) != 3 || faults[0].Latency != 250*time.Millisecond || faults[1].RetryAfter != 3*time.Second ||
		faults[2].Count != 2 {
		t.Fatalf("%+v", faults)
	}
	r = e.raw("GET", "/_sim/faults", nil, nil)
	if !jsonEqual(t, r.body, []byte(put)) {
		t.Errorf("GET %s", r.body)
	}
	if r = e.raw("POST", "/_sim/faults", `{"kind":"502","ops":["ListInstances"]}`, nil); r.status != 200 || len(e.sim.Faults()) != 4 {
		t.Errorf("POST: HTTP %d %s", r.status, r.body)
	}
	if r = e.raw("PUT", "/_sim/faults", `[{"kind":"nope"}]`, nil); r.status != 400 || len(e.sim.Faults()) != 4 {
		t.Errorf("bad PUT: HTTP %d %s", r.status, r.body)
	}
	if r = e.raw("PUT", "/_sim/faults", `[{"kind":"502","delay":"1s"}]`, nil); r.status != 400 {
		t.Errorf("unknown member: HTTP %d %s", r.status, r.body)
	}
	if r = e.raw("DELETE", "/_sim/faults", nil, nil); r.status != 204 || len(e.sim.Faults()) != 0 {
		t.Errorf("DELETE: HTTP %d", r.status)
	}

	e.call("GET", "/v1/instances/sku?type=0", nil)
	r = e.raw("GET", "/_sim/calls", nil, nil)
	var calls map[string]int64
	if err := json.Unmarshal(r.body, &calls); err != nil || calls["BatchShowSku"] != 1 || calls["IAM"] != 1 {
		t.Errorf("calls %s", r.body)
	}
	if r = e.raw("DELETE", "/_sim/calls", nil, nil); r.status != 204 || e.sim.Calls("IAM") != 0 {
		t.Errorf("DELETE calls: HTTP %d", r.status)
	}
	r = e.raw("GET", "/_sim/credentials", nil, nil)
	if !strings.Contains(string(r.body), sim.DefaultSK) {
		t.Errorf("credentials %s", r.body)
	}
	if r = e.raw("GET", "/_sim/instances", nil, nil); !strings.Contains(string(r.body), e.ids(1)[0]) {
		t.Errorf("instances %s", r.body)
	}
	if r = e.raw("GET", "/_sim/nothing", nil, nil); r.status != 404 {
		t.Errorf("unknown admin path: HTTP %d", r.status)
	}
	if r = e.raw("POST", "/_sim/orders/CS000/pay", nil, nil); r.status != 404 {
		t.Errorf("unknown order: HTTP %d", r.status)
	}
}

func TestFaultJSON(t *testing.T) {
	f := sim.Fault{Kind: sim.Fault429, Ops: []string{"GetTask"}, Count: 3, RetryAfter: 2 * time.Second}
	b, err := json.Marshal(f)
	if err != nil || string(b) != `{"kind":"429","ops":["GetTask"],"count":3,"retry_after":"2s"}` {
		t.Fatalf("%s %v", b, err)
	}
	var back sim.Fault
	if err := json.Unmarshal(b, &back); err != nil || back.RetryAfter != f.RetryAfter || back.Count != 3 {
		t.Fatalf("%+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"kind":"latency","latency":"soon"}`), &back); err == nil {
		t.Error("bad duration accepted")
	}
}
