package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// report turns the measurements into markdown tables, ratios first.
type report struct {
	opts  *options
	loads []load
	paths []path
	unary [][]measured // [load][path]
	slow  []burstResult
	watch []*watchResult
	// watchFloor: the same watchers on the bare watcher floor (barewatch.go), one per entry of watch
	watchFloor []*watchResult
	tools      []toolRun     // the cross-check with ghz and bombardier: direct, bare proxy, gateway gRPC, gateway REST
	fair       []*fairResult // this build's, then the earlier build's

	dress                  *dress // the production dress's files, when it was measured
	scrapes, scrapesFailed int64  // of the dressed gateways' /metrics
}

func (r *report) markdown() string {
	var b strings.Builder
	o := r.opts
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## Run of %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs (%s), %s %s/%s. Gateway, simulator, bare proxy and load generator share the CPUs.\n\n",
		host, runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if r.unary != nil {
		r.targetTable(&b)
		r.unaryTables(&b)
		r.dressTables(&b)
	}
	if r.tools != nil {
		r.toolTable(&b)
	}
	if r.slow != nil {
		fmt.Fprintf(&b, "### Slow upstream: %d calls at once, %v added by the simulator\n\n", o.slowCalls, o.slowLatency)
		b.WriteString("| path | bound on upstream calls in flight | ok / calls | elapsed | calls/s | calls/s ÷ the bound's limit | upstream connections opened | connections open at once: before → peak | RSS before | peak RSS (VmHWM) | peak goroutines |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range r.slow {
			gor := "—"
			if s.peakGorou > 0 {
				gor = fmt.Sprintf("%d (idle %d)", s.peakGorou, s.idleGoroutines)
			}
			rate := float64(s.ok) / s.elapsed.Seconds()
			bound, ofLimit := "—", "—"
			if s.bound > 0 {
				// One call per HTTP/1.1 connection at a time: B connections carry at most B per latency.
				limit := float64(s.bound) / o.slowLatency.Seconds()
				bound, ofLimit = fmt.Sprint(s.bound), fmt.Sprintf("%.2f", rate/limit)
			}
			fmt.Fprintf(&b, "| %s | %s | %d / %d | %v | %.0f | %s | %d | %d → %d | %s | %s | %s |\n", s.path, bound, s.ok, s.calls,
				s.elapsed.Round(time.Millisecond), rate, ofLimit, s.connsOpened, s.openBefore, s.peakOpen, mb(s.idleRSS), mb(s.peakRSS), gor)
		}
		for _, s := range r.slow {
			if s.firstErr != nil {
				fmt.Fprintf(&b, "\n%s: first error: %v\n", s.path, s.firstErr)
			}
		}
		b.WriteString("\n")
	}
	if r.watch != nil {
		fmt.Fprintf(&b, "### Idle watchers (WatchTask over real gRPC connections, %d per connection; gateway defaults: polls from 500ms backing off to 10s)\n\n", streamsPerConn)
		b.WriteString("| watchers | tasks | RSS per watcher | heap per watcher | stack per watcher | goroutines per watcher | RSS above idle gateway | upstream polls/s | gateway CPU while idle | task end → last watcher p50 / max | watchers told | time to open |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, w := range r.watch {
			p50, mx := time.Duration(0), time.Duration(0)
			if len(w.delays) > 0 {
				p50, mx = w.delays[len(w.delays)/2], w.delays[len(w.delays)-1]
			}
			fmt.Fprintf(&b, "| %d | %d | %.1f KB | %.1f KB | %.1f KB | %.2f | %s | %.1f | %.1f%% of a CPU | %v / %v | %d / %d | %v |\n",
				w.watchers, w.tasks, w.perWatcher(w.rss, w.idleRSS)/1024, w.perWatcher(w.heap, w.idleHeap)/1024,
				w.perWatcher(w.stack, w.idleStack)/1024,
				w.perWatcher(int64(w.goroutines), int64(w.idleGoroutines)), mb(w.rss-w.idleRSS), w.pollsPerSec,
				100*w.cpuPerSecond.Seconds(), p50.Round(time.Millisecond), mx.Round(time.Millisecond), w.terminal, w.watchers,
				w.openTime.Round(time.Millisecond))
		}
		for _, f := range r.watchFloor {
			fmt.Fprintf(&b, "| %d (bare watcher floor) | — | %.1f KB | %.1f KB | %.1f KB | %.2f | %s | — | — | — | — | %v |\n",
				f.watchers, f.perWatcher(f.rss, f.idleRSS)/1024, f.perWatcher(f.heap, f.idleHeap)/1024,
				f.perWatcher(f.stack, f.idleStack)/1024, f.perWatcher(int64(f.goroutines), int64(f.idleGoroutines)),
				mb(f.rss-f.idleRSS), f.openTime.Round(time.Millisecond))
		}
		b.WriteString("\n")
		r.floorRatios(&b)
	}
	if r.fair != nil {
		r.fairTables(&b)
	}
	return b.String()
}

func (r *report) unaryTables(b *strings.Builder) {
	o := r.opts
	idx := func(name string) int {
		for i, p := range r.paths {
			if p.name == name {
				return i
			}
		}
		return -1
	}
	direct, bare, grpcI, grpcBefore := idx("direct"), idx("bare proxy"), idx("gateway gRPC"), idx("before: gateway gRPC")
	fmt.Fprintf(b, "### Unary: BatchQueryStatus of 10 phones — ratios\n\n%d rounds of %v per load and path, alternating; "+
		"CPU per call is user+system time of the serving process (/proc/<pid>/stat) over successful calls.\n\n", o.rounds, o.segment)
	b.WriteString("| load | path | calls/s ÷ direct | calls/s ÷ bare | p50 ÷ bare | p99 ÷ bare | CPU/call ÷ bare | CPU/call ÷ same build's gRPC |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for li, l := range r.loads {
		m := r.unary[li]
		for pi := range r.paths {
			if pi == direct || isDress(r.paths[pi].name) {
				continue
			}
			sameGRPC := grpcI
			if strings.HasPrefix(r.paths[pi].name, "before:") {
				sameGRPC = grpcBefore
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", l.name, r.paths[pi].name,
				ratio(m[pi].rate(), m[direct].rate()), ratio(m[pi].rate(), m[bare].rate()),
				ratio(float64(m[pi].quantile(0.5)), float64(m[bare].quantile(0.5))),
				ratio(float64(m[pi].quantile(0.99)), float64(m[bare].quantile(0.99))),
				ratio(float64(m[pi].cpuPerCall()), float64(m[bare].cpuPerCall())),
				ratio(float64(m[pi].cpuPerCall()), float64(m[sameGRPC].cpuPerCall())))
		}
	}
	if grpcBefore >= 0 {
		restI, restBefore := idx("gateway REST"), idx("before: gateway REST")
		b.WriteString("\n### Unary: this build ÷ the earlier build (-gateway-before), same run\n\n")
		b.WriteString("| load | path | calls/s | p50 | p99 | CPU/call |\n|---|---|---:|---:|---:|---:|\n")
		for li, l := range r.loads {
			m := r.unary[li]
			for _, pair := range [][2]int{{grpcI, grpcBefore}, {restI, restBefore}} {
				a, o := &m[pair[0]], &m[pair[1]]
				fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", l.name, r.paths[pair[0]].name, ratio(a.rate(), o.rate()),
					ratio(float64(a.quantile(0.5)), float64(o.quantile(0.5))), ratio(float64(a.quantile(0.99)), float64(o.quantile(0.99))),
					ratio(float64(a.cpuPerCall()), float64(o.cpuPerCall())))
			}
		}
	}
	b.WriteString("\n### Unary: absolute figures\n\n")
	b.WriteString("| load | path | calls/s | p50 | p99 | CPU/call of the path's process | simulator CPU/call | failed / calls |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for li, l := range r.loads {
		for pi, p := range r.paths {
			m := &r.unary[li][pi]
			cpu := "—"
			if p.pid != 0 {
				cpu = us(m.cpuPerCall())
			}
			fmt.Fprintf(b, "| %s | %s | %.0f | %s | %s | %s | %s | %d / %d |\n", l.name, p.name, m.rate(),
				ms(m.quantile(0.5)), ms(m.quantile(0.99)), cpu, us(m.simCPUPerCall()), m.errs, m.calls)
		}
	}
	b.WriteString("\n")
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
func mb(n int64) string         { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// toolTable is the cross-check: the same saturation load generated by ghz and bombardier.
func (r *report) toolTable(b *strings.Builder) {
	o := r.opts
	fmt.Fprintf(b, "### Cross-check with ghz and bombardier: saturation (%d callers), %d rounds of %v per path, alternating\n\n", o.conc, o.rounds, o.segment)
	b.WriteString("| path | tool | calls/s | calls/s ÷ direct | calls/s ÷ bare | p50 | p99 (worst round) | CPU/call of the path's process | CPU/call ÷ bare | simulator CPU/call | failed / calls |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	direct, bare := r.tools[0], r.tools[1]
	perCall := func(t toolRun, d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(t.ok, 1)) }
	for i, t := range r.tools {
		cpu, cpuRatio := "—", "—"
		if i > 0 { // direct's serving process is the simulator, in its own column
			cpu = fmt.Sprintf("%.0f µs", perCall(t, t.cpu))
			cpuRatio = fmt.Sprintf("%.2f", perCall(t, t.cpu)/perCall(bare, bare.cpu))
		}
		fmt.Fprintf(b, "| %s | %s | %.0f | %.2f | %.2f | %s | %s | %s | %s | %.0f µs | %d / %d |\n", t.path, t.tool, t.rate(),
			t.rate()/direct.rate(), t.rate()/bare.rate(), ms(t.p50), ms(t.p99), cpu, cpuRatio, perCall(t, t.simCPU), t.failed, t.ok+t.failed)
	}
	b.WriteString("\n")
}

// floorRatios writes each watcher count's gateway cost ÷ the bare watcher floor's, per watcher.
func (r *report) floorRatios(b *strings.Builder) {
	if len(r.watchFloor) == 0 {
		return
	}
	b.WriteString("The bare watcher floor is a gRPC server with the gateway's transport settings and no interceptors, whose WatchTask sends one snapshot and waits (`loadbench barewatch`). Gateway ÷ floor, per watcher:\n\n")
	for i, f := range r.watchFloor {
		if i >= len(r.watch) {
			break
		}
		w := r.watch[i]
		ratio := func(gw, gIdle, fl, fIdle int64) string {
			d := f.perWatcher(fl, fIdle)
			if d <= 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f", w.perWatcher(gw, gIdle)/d)
		}
		fmt.Fprintf(b, "- %d watchers: RSS %s, heap %s, stack %s\n", w.watchers, ratio(w.rss, w.idleRSS, f.rss, f.idleRSS),
			ratio(w.heap, w.idleHeap, f.heap, f.idleHeap), ratio(w.stack, w.idleStack, f.stack, f.idleStack))
	}
	b.WriteString("\n")
}
