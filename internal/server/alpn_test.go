package server

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// Issue 18, finding 6: with a client CA set, the REST port negotiated no ALPN (HTTP/1.1 only). Both ports now offer
// h2 by ALPN, with and without a client CA; the REST port still speaks HTTP/1.1 to clients that ask for it.
func TestALPNWithAndWithoutClientCA(t *testing.T) {
	for _, mtls := range []bool{false, true} {
		e := newSecureEnv(t, secureOpts{keys: map[string]string{"k1": "alice"}, tls: true, mtls: mtls})
		for _, c := range []struct {
			port, addr string
			offer      []string
			want       string
		}{
			{"REST", e.srv.HTTPAddr(), []string{"h2", "http/1.1"}, "h2"},
			{"REST", e.srv.HTTPAddr(), []string{"http/1.1"}, "http/1.1"},
			{"gRPC", e.grpcAddr, []string{"h2"}, "h2"},
		} {
			cfg := e.tlsClient()
			cfg.ServerName = "localhost"
			cfg.NextProtos = c.offer
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", c.addr, cfg)
			if err != nil {
				t.Fatalf("client CA %v, %s port: %v", mtls, c.port, err)
			}
			got := conn.ConnectionState().NegotiatedProtocol
			_ = conn.Close()
			if got != c.want {
				t.Errorf("client CA %v, %s port offered %v: negotiated %q, want %q", mtls, c.port, c.offer, got, c.want)
			}
		}
	}
}
