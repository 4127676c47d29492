package server

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koophone-gateway/koophone-gateway/internal/telemetry"
)

// connsRefused counts connections closed at once because their source held its bound, per listener.
func connsRefused(tel *telemetry.Telemetry) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: telemetry.Namespace, Subsystem: "connections",
		Name: "refused_total",
		Help: "Connections closed as soon as accepted because their source (IPv4 address or IPv6 /64) held --max-connections-per-source, by listener."},
		[]string{"listener"})
	return c, tel.Registry.Register(c)
}

// refusedBy is listen's callback for the listener named flag.
func refusedBy(c *prometheus.CounterVec, flag string) func(net.Addr) {
	if c == nil {
		return nil
	}
	inc := c.WithLabelValues(flag).Inc
	return func(net.Addr) { inc() }
}

// listen opens the listener of --flag (named name in the refused-connections metric) with the connection bounds,
// sharing one metric of refused connections.
func (s *Server) listen(flag, addr, name string) (net.Listener, error) {
	if s.refused == nil {
		c, err := connsRefused(s.tel)
		if err != nil {
			return nil, err
		}
		s.refused = c
	}
	return listen(s.cfg, flag, addr, refusedBy(s.refused, name))
}
