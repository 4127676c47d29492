package stream

import "sync/atomic"

// Stats is a cheap, lock-free reading of a hub's counters (each field is read atomically, the set is not a
// consistent cut).
type Stats struct {
	Watchers   int64  // open subscriptions
	Pollers    int64  // keys being polled now
	Cached     int64  // finished keys kept for late joiners (terminal or failed)
	Polls      uint64 // upstream polls started
	PollErrors uint64 // polls that returned an error (transient or not)
	Delivered  uint64 // snapshots returned by Next
	Conflated  uint64 // snapshots a watcher never received because a newer one replaced them first
	Shared     uint64 // snapshots received from another replica's poller (with a Peer)
}

type counters struct {
	watchers, pollers, cached                       atomic.Int64
	polls, pollErrors, delivered, conflated, shared atomic.Uint64
}

func (c *counters) read() Stats {
	return Stats{
		Watchers:   c.watchers.Load(),
		Pollers:    c.pollers.Load(),
		Cached:     c.cached.Load(),
		Polls:      c.polls.Load(),
		PollErrors: c.pollErrors.Load(),
		Delivered:  c.delivered.Load(),
		Conflated:  c.conflated.Load(),
		Shared:     c.shared.Load(),
	}
}
