package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

// One replica, no Redis: request_id and the Idempotency-Key header make a write happen once, over both transports.
func TestIdempotentWritesOnOneReplica(t *testing.T) {
	e := newEnv(t)
	const key = "0b8e5f4c-6a1d-4f3e-9c2b-7d5a4e3f2a10"
	before := e.sim.Calls("CreateInstance")

	first := e.rest("POST", "/v1/instances/create", createBody(goodSku, 1), "Idempotency-Key", key)
	again := e.rest("POST", "/v1/instances/create", createBody(goodSku, 1), "Idempotency-Key", key)
	if first.status != http.StatusOK || again.status != http.StatusOK || first.body["order_id"] != again.body["order_id"] {
		t.Fatalf("repeat over REST: %d %v, then %d %v", first.status, first.raw, again.status, again.raw)
	}
	// The same key in the body over gRPC is the same write.
	req := createReq(goodSku, 1)
	req.RequestId = key
	res, err := e.order.CreateInstance(e.ctx(), req)
	if err != nil || res.GetOrderId() != first.body["order_id"] {
		t.Fatalf("repeat over gRPC: %v %v", res, err)
	}
	if n := e.sim.Calls("CreateInstance") - before; n != 1 {
		t.Fatalf("%d CreateInstance calls reached KooPhone, want 1", n)
	}

	// Same key, different request: 409 naming the key, and nothing sent.
	other := e.rest("POST", "/v1/instances/create", createBody(goodSku, 2), "Idempotency-Key", key)
	if other.status != http.StatusConflict || !strings.Contains(other.raw, key) || restReason(other.body) != idempotency.ReasonKeyReused {
		t.Fatalf("reused key: %d %s", other.status, other.raw)
	}
	// A key that is not a UUID is refused before anything happens, naming the field.
	bad := e.rest("POST", "/v1/instances/create", createBody(goodSku, 1), "Idempotency-Key", "not-a-uuid")
	if bad.status != http.StatusBadRequest || !strings.Contains(bad.raw, "Idempotency-Key") {
		t.Fatalf("bad header: %d %s", bad.status, bad.raw)
	}
	req.RequestId = "not-a-uuid"
	if _, err := e.order.CreateInstance(e.ctx(), req); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "request_id") {
		t.Fatalf("bad request_id: %v", err)
	}
	if n := e.sim.Calls("CreateInstance") - before; n != 1 {
		t.Fatalf("%d CreateInstance calls reached KooPhone, want 1", n)
	}
}

// Issue 18, finding 6: KooPhone reboots the phone and a proxy then answers 503. The caller learns the outcome is
// unknown (never UNAVAILABLE, which invites a retry), and the request_id remembers it: sent three times (gRPC, REST,
// gRPC), the phone is rebooted once, and the repeats say IDEMPOTENT_OUTCOME_UNKNOWN.
func TestWriteDoneThen503IsRememberedAsUnknown(t *testing.T) {
	e := newFaultEnv(t)
	phone := e.sim.InstanceIDs()[0]
	const key = "5d0c7a1e-2b3f-4c8d-9e0a-1f2b3c4d5e6f"
	e.faults(sim.Fault{Kind: sim.FaultDone503, Ops: []string{"BatchRebootInstance"}})
	req := &pb.BatchRebootInstanceRequest{InstanceIds: []string{phone}, RequestId: key}

	_, err := e.inst.BatchRebootInstance(callCtx(t, 5*time.Second), req)
	if code, r, _ := reason(err); code != codes.Unknown || r != service.ReasonOutcomeUnknown {
		t.Fatalf("first call: %v %q (%v), want UNKNOWN %s", code, r, err, service.ReasonOutcomeUnknown)
	}
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	hreq, _ := http.NewRequestWithContext(callCtx(t, 5*time.Second), http.MethodPost, "http://"+e.srv.HTTPAddr()+"/v1/instances/reboot",
		strings.NewReader(`{"instance_ids":["`+phone+`"]}`))
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Idempotency-Key", key)
	res, err := hc.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = io.Copy(body, res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError || !strings.Contains(body.String(), idempotency.ReasonOutcomeUnknown) {
		t.Fatalf("REST repeat: %d %s", res.StatusCode, body)
	}
	_, err = e.inst.BatchRebootInstance(callCtx(t, 5*time.Second), req)
	if code, r, _ := reason(err); code != codes.Unknown || r != idempotency.ReasonOutcomeUnknown {
		t.Fatalf("gRPC repeat: %v %q (%v)", code, r, err)
	}
	if n := e.sim.Calls("BatchRebootInstance"); n != 1 {
		t.Fatalf("the phone was rebooted %d times, want once", n)
	}
}
