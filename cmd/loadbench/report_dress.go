package main

import (
	"fmt"
	"strings"
	"time"
)

// isDress tells the production dress's paths (and the bare TLS proxy) from the plain ones.
func isDress(name string) bool { return name == pathBareTLS || strings.HasPrefix(name, "dress:") }

func (r *report) pathIndex(name string) int {
	for i, p := range r.paths {
		if p.name == name {
			return i
		}
	}
	return -1
}

// cell is one measured path under one load, or nil when the path or the load was not run.
func (r *report) cell(li int, name string) *measured {
	pi := r.pathIndex(name)
	if li < 0 || pi < 0 {
		return nil
	}
	return &r.unary[li][pi]
}

// loadIndex finds the load at rate (0: saturation).
func (r *report) loadIndex(rate int) int {
	for i, l := range r.loads {
		if l.rate == rate {
			return i
		}
	}
	return -1
}

// cpuRatio is a's CPU per call ÷ b's, or 0 when either is missing.
func cpuRatio(a, b *measured) float64 {
	if a == nil || b == nil || b.cpuPerCall() == 0 {
		return 0
	}
	return float64(a.cpuPerCall()) / float64(b.cpuPerCall())
}

// dressTables: the production dress against the bare TLS proxy, the bare proxy and the plain gateway, same run.
func (r *report) dressTables(b *strings.Builder) {
	if r.pathIndex(pathBareTLS) < 0 {
		return
	}
	d := r.dress
	fmt.Fprintf(b, "### Unary in production dress — ratios\n\n"+
		"TLS on both ports (ECDSA P-256 certificate, TLS 1.2+; Go negotiates TLS 1.3), callers by API key (bearer, %d keys "+
		"in the file, SHA-256) or by client certificate (mTLS), a policy of %d statements naming key: and cert: principals "+
		"and groups, the audit log to a file (one line per write call: the benchmark's call is a read, so it writes none), "+
		"/metrics scraped every %v (%d scrapes, %d failed). The REST client speaks HTTP/2 when offered, as curl and "+
		"browsers do. \"shares on\": the defaults (2,000 streams, 256 calls) and a shares file with a rate of %d/s. "+
		"Same rounds as the plain table, alternating with it.\n\n",
		d.keyCount, d.policyStatements, scrapeEvery, r.scrapes, r.scrapesFailed, sharesRate)
	b.WriteString("| load | path | calls/s ÷ bare TLS | p50 ÷ bare TLS | p99 − bare TLS's | CPU/call ÷ bare TLS | CPU/call ÷ bare proxy (plain) | CPU/call ÷ same dress's gRPC | CPU/call ÷ the same path plain |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	rows := []struct{ name, sameGRPC, plain string }{
		{pathBareTLS, "", "bare proxy"},
		{pathDressGRPC, pathDressGRPC, "gateway gRPC"},
		{pathDressREST, pathDressGRPC, "gateway REST"},
		{pathMTLSGRPC, pathMTLSGRPC, "gateway gRPC"},
		{pathMTLSREST, pathMTLSGRPC, "gateway REST"},
		{pathDressShares, pathDressGRPC, pathSharesGRPC},
	}
	for li, l := range r.loads {
		bt, bare := r.cell(li, pathBareTLS), r.cell(li, "bare proxy")
		for _, row := range rows {
			m := r.cell(li, row.name)
			if m == nil {
				continue
			}
			same := "—"
			if s := r.cell(li, row.sameGRPC); s != nil {
				same = fmt.Sprintf("%.2f", cpuRatio(m, s))
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %+.2f ms | %.2f | %.2f | %s | %.2f |\n", l.name, row.name,
				ratio(m.rate(), bt.rate()), ratio(float64(m.quantile(0.5)), float64(bt.quantile(0.5))),
				float64(m.quantile(0.99)-bt.quantile(0.99))/float64(time.Millisecond),
				cpuRatio(m, bt), cpuRatio(m, bare), same, cpuRatio(m, r.cell(li, row.plain)))
		}
	}
	b.WriteString("\n")
}

// targetTable states the targets against this run's figures, each with its verdict.
func (r *report) targetTable(b *strings.Builder) {
	sat, r1000 := r.loadIndex(0), r.loadIndex(1000)
	b.WriteString("### Targets (ratios from this run)\n\n| target | measured | verdict |\n|---|---|---|\n")
	perLoad := func(a, base string, limit float64) (string, string) {
		var parts []string
		met := true
		for li, l := range r.loads {
			x := cpuRatio(r.cell(li, a), r.cell(li, base))
			if x == 0 {
				continue
			}
			parts = append(parts, fmt.Sprintf("%.2f at %s", x, l.name))
			met = met && x <= limit
		}
		if len(parts) == 0 {
			return "not measured", "—"
		}
		return strings.Join(parts, ", "), verdict(met)
	}
	row := func(target, measured, v string) { fmt.Fprintf(b, "| %s | %s | %s |\n", target, measured, v) }
	m, v := perLoad("gateway gRPC", "bare proxy", 1.10)
	row("gateway gRPC CPU/call ≤ 1.10 × bare proxy (plain)", m, v)
	if r.pathIndex(pathBareTLS) >= 0 {
		m, v = perLoad(pathDressGRPC, pathBareTLS, 1.20)
		row("dressed gateway gRPC (API key) CPU/call ≤ 1.20 × bare TLS proxy", m, v)
		m, v = perLoad(pathMTLSGRPC, pathBareTLS, 1.20)
		row("dressed gateway gRPC (mTLS) CPU/call ≤ 1.20 × bare TLS proxy", m, v)
	}
	if r1000 >= 0 {
		for _, p := range [][2]string{{"gateway gRPC", "bare proxy"}, {pathDressGRPC, pathBareTLS}, {pathMTLSGRPC, pathBareTLS}} {
			a, base := r.cell(r1000, p[0]), r.cell(r1000, p[1])
			if a == nil || base == nil {
				continue
			}
			diff := a.quantile(0.99) - base.quantile(0.99)
			row(fmt.Sprintf("p99 at 1,000 calls/s within 1 ms of the bare proxy's: %s vs %s", p[0], p[1]),
				fmt.Sprintf("%s vs %s: %+.2f ms", ms(a.quantile(0.99)), ms(base.quantile(0.99)), float64(diff)/float64(time.Millisecond)),
				verdict(diff <= time.Millisecond))
		}
	}
	if sat >= 0 {
		for _, p := range [][2]string{{"gateway REST", "gateway gRPC"}, {pathDressREST, pathDressGRPC}, {pathMTLSREST, pathMTLSGRPC}} {
			x := cpuRatio(r.cell(sat, p[0]), r.cell(sat, p[1]))
			if x == 0 {
				continue
			}
			row(fmt.Sprintf("REST CPU/call ≤ 1.3 × gRPC at saturation: %s ÷ %s", p[0], p[1]), fmt.Sprintf("%.2f", x), verdict(x <= 1.3))
		}
	}
	if r.pathIndex(pathSharesGRPC) >= 0 {
		m, _ = perLoad(pathSharesGRPC, "gateway gRPC", 0)
		row("shares configured (defaults on + a file with a rate) ÷ unconfigured, gateway gRPC CPU/call", m, "(see the shares note)")
		m, v = perLoad(pathSharesGRPC, "bare proxy", 1.10)
		row("shares configured: gateway gRPC CPU/call ≤ 1.10 × bare proxy", m, v)
		m, v = perLoad(pathDressShares, pathBareTLS, 1.20)
		row("shares configured, dressed (API key): CPU/call ≤ 1.20 × bare TLS proxy", m, v)
	}
	for _, w := range r.watch {
		limit, label := int64(0), ""
		switch w.watchers {
		case 10000:
			limit, label = 110<<20, "110 MB"
		case 100000:
			limit, label = 1100<<20, "1.1 GB"
		default:
			continue
		}
		above := w.rss - w.idleRSS
		row(fmt.Sprintf("%d idle watchers ≤ %s above an idle gateway", w.watchers, label),
			fmt.Sprintf("%s (%.1f KB per watcher; RSS %s)", mb(above), w.perWatcher(w.rss, w.idleRSS)/1024, mb(w.rss)),
			verdict(above <= limit && w.terminal == int64(w.watchers)))
	}
	b.WriteString("\n")
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "**not met**"
}
