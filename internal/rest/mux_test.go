package rest

import (
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
)

// The mux forwards the request id and the idempotency key to the gRPC side under the keys it reads, any spelling of
// the HTTP header alike, leaves the rest to grpc-gateway's defaults, and lets only the request id back out.
func TestMuxHeaderMatchers(t *testing.T) {
	for _, c := range []struct {
		header, key string
		ok          bool
	}{
		{"X-Request-Id", requestid.Header, true},
		{"x-request-id", requestid.Header, true},
		{"Idempotency-Key", idempotency.HeaderName, true},
		{"idempotency-key", idempotency.HeaderName, true},
		{"X-Custom", "", false}, // grpc-gateway's default: not forwarded
	} {
		if key, ok := incomingHeader(c.header); key != c.key || ok != c.ok {
			t.Errorf("incoming %s: %q %v, want %q %v", c.header, key, ok, c.key, c.ok)
		}
	}
	if h, ok := outgoingHeader(requestid.Header); h != "X-Request-Id" || !ok {
		t.Errorf("outgoing request id: %q %v", h, ok)
	}
	if h, ok := outgoingHeader("x-koophone-internal"); ok {
		t.Errorf("outgoing internal metadata let out as %q", h)
	}
}
