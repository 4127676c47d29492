package server

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
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
