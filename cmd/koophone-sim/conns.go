package main

import (
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
)

// connCounter counts the TCP connections clients open to the simulator: load tests read it to check that the
// gateway keeps its upstream connections bounded and reuses them.
type connCounter struct {
	opened, open, peak atomic.Int64
}

// track is the http.Server's ConnState hook.
func (c *connCounter) track(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		c.opened.Add(1)
		n := c.open.Add(1)
		for p := c.peak.Load(); n > p; p = c.peak.Load() {
			if c.peak.CompareAndSwap(p, n) {
				break
			}
		}
	case http.StateClosed, http.StateHijacked:
		c.open.Add(-1)
	}
}

// serve is GET /_sim/connections: {"opened": connections accepted since start, "open": connections open now,
// "peak": the most open at once since start or since the last POST /_sim/connections/peak-reset}.
func (c *connCounter) serve(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int64{"opened": c.opened.Load(), "open": c.open.Load(), "peak": c.peak.Load()})
}

// resetPeak is POST /_sim/connections/peak-reset: the peak starts again from the connections open now.
func (c *connCounter) resetPeak(w http.ResponseWriter, _ *http.Request) {
	c.peak.Store(c.open.Load())
	w.WriteHeader(http.StatusNoContent)
}
