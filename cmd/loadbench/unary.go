package main

import (
	"context"
	"fmt"
	"time"
)

// load is one load shape: saturation (closed loop) or a fixed rate (open loop).
type load struct {
	name string
	rate int // calls/s; 0 = saturation with o.conc callers
}

// measured is a path's totals under one load, summed over the rounds.
type measured struct {
	sample
	cpu, simCPU time.Duration // of the path's own process, and of the simulator
}

func (m *measured) cpuPerCall() time.Duration {
	if ok := m.calls - m.errs; ok > 0 {
		return m.cpu / time.Duration(ok)
	}
	return 0
}

func (m *measured) simCPUPerCall() time.Duration {
	if ok := m.calls - m.errs; ok > 0 {
		return m.simCPU / time.Duration(ok)
	}
	return 0
}

// compare runs every load on every path, alternating paths within each round so that the machine's noise falls on
// all of them alike. It returns results[load][path].
func compare(ctx context.Context, o *options, simPID int, loads []load, paths []path) ([][]measured, error) {
	out := make([][]measured, len(loads))
	for i := range out {
		out[i] = make([]measured, len(paths))
	}
	// Warm up every path (connections, token caches, JIT-free but cache-cold code) outside the figures.
	for _, p := range paths {
		if s := closedLoop(ctx, o.conc, o.warmup, 0, p.call); s.errs > 0 {
			return nil, fmt.Errorf("%s: warm-up: %d of %d calls failed, first: %v", p.name, s.errs, s.calls, s.firstErr)
		}
	}
	for round := range o.rounds {
		for li, l := range loads {
			for pi, p := range paths {
				before, simBefore := cpuOrZero(p.pid), cpuOrZero(simPID)
				var s sample
				if l.rate == 0 {
					s = closedLoop(ctx, o.conc, o.segment, 0, p.call)
				} else {
					s = openLoop(ctx, l.rate, o.segment, o.maxInFlight, p.call)
				}
				m := &out[li][pi]
				m.add(s)
				m.cpu += cpuOrZero(p.pid) - before
				m.simCPU += cpuOrZero(simPID) - simBefore
				logf("round %d %-12s %-14s %8.0f calls/s p50 %-9v p99 %-9v errors %d", round+1, l.name, p.name,
					s.rate(), s.quantile(0.5).Round(time.Microsecond), s.quantile(0.99).Round(time.Microsecond), s.errs)
				if s.firstErr != nil {
					logf("  first error: %v", s.firstErr)
				}
			}
		}
	}
	return out, nil
}

func cpuOrZero(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	d, err := cpuTime(pid)
	if err != nil {
		return 0
	}
	return d
}
