package sim

import (
	"net/url"
	"sync/atomic"
)

// Counters that let a test check, at the simulator, what a client did to it: how many requests of an operation
// were served at once (a fan-out's concurrency bound) and what the newest request carried (fields that must
// round-trip).

// inFlight counts the requests of one operation being served now and the most ever served at once.
type inFlight struct {
	now, peak atomic.Int64
}

func (f *inFlight) enter() {
	n := f.now.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (f *inFlight) leave() { f.now.Add(-1) }

// PeakInFlight returns the most requests of op (a seed operation name) ever served at once.
func (s *Server) PeakInFlight(op string) int64 {
	if f, ok := s.load[op]; ok {
		return f.peak.Load()
	}
	return 0
}

// ResetPeaks sets every PeakInFlight back to the requests in flight now.
func (s *Server) ResetPeaks() {
	for _, f := range s.load {
		f.peak.Store(f.now.Load())
	}
}

// LastRequest is the newest request of an operation as it arrived: its query and its body.
type LastRequest struct {
	RequestID string // the x-request-id header
	Query     url.Values
	Body      []byte
}

// Last returns the newest request of op, and whether there was one.
func (s *Server) Last(op string) (LastRequest, bool) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	r, ok := s.last[op]
	return r, ok
}

func (s *Server) remember(op, requestID string, q url.Values, body []byte) {
	s.lastMu.Lock()
	s.last[op] = LastRequest{RequestID: requestID, Query: q, Body: body}
	s.lastMu.Unlock()
}
