package main

import (
	"testing"
	"time"
)

// A sample belongs to the first category one of its frames matches; TLS's system calls are I/O, not TLS.
func TestParseTraces(t *testing.T) {
	out := []byte(`File: server
Type: cpu
-----------+-------------------------------------------------------
      10ms   crypto/internal/fips140/aes/gcm.seal
             crypto/tls.(*Conn).Write
             net/http.(*conn).serve
-----------+-------------------------------------------------------
      20ms   internal/runtime/syscall.Syscall6
             internal/poll.(*FD).Write
             crypto/tls.(*Conn).Write
-----------+-------------------------------------------------------
      30ms   runtime.mallocgc
             github.com/koophone-gateway/koophone-gateway/internal/auth.(*Guard).authenticate
             github.com/koophone-gateway/koophone-gateway/internal/calllog.UnaryServerInterceptor.func1
-----------+-------------------------------------------------------
     1.5s    runtime.futex
             runtime.findRunnable
-----------+-------------------------------------------------------
`)
	a, err := parseTraces(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{
		"TLS (encryption, handshakes)":                                    10 * time.Millisecond,
		"system calls (network I/O)":                                      20 * time.Millisecond,
		"authentication (API key / certificate, credential files' stat)":  30 * time.Millisecond,
		"the rest (gRPC/HTTP transport, proxying, scheduler, allocation)": 1500 * time.Millisecond,
	}
	for i, c := range categories {
		if a.by[i] != want[c.name] {
			t.Errorf("%s: %v, want %v", c.name, a.by[i], want[c.name])
		}
	}
	if a.total != 1560*time.Millisecond {
		t.Errorf("total %v", a.total)
	}
}
