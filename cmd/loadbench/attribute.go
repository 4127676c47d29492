package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// A feature's share of a CPU profile: each sample goes to the first category below that one of its frames
// matches, so a feature owns its own allocations and system calls (the call log's write), and nothing is counted
// twice. Only functions that return before the handler runs are named (an interceptor's own frame sits above
// the whole call, so naming it would claim everything under it).
var categories = []struct {
	name string
	re   *regexp.Regexp
	not  *regexp.Regexp // a sample with one of these frames is not this category's
}{
	// Encryption and handshakes; the system calls under crypto/tls are I/O that a plaintext path makes too.
	{"TLS (encryption, handshakes)", regexp.MustCompile(`^crypto/tls\.`), regexp.MustCompile(`^internal/poll\.|^syscall\.`)},
	{"authentication (API key / certificate, credential files' stat)", regexp.MustCompile(`internal/auth\.\(\*Guard\)\.(authenticate|MirrorMetadata)($|\.)`), nil},
	{"authorization (policy)", regexp.MustCompile(`internal/auth\.\(\*Guard\)\.check($|\.)`), nil},
	{"audit", regexp.MustCompile(`internal/auth\.\(\*Guard\)\.auditLine`), nil},
	{"shares (per-caller limits, fairness key)", regexp.MustCompile(`internal/share\.\(\*Shares\)\.(admitRate|acquire|stateFor)|internal/upstream\.WithFairnessKey`), nil},
	{"metrics (Prometheus: recording, scrapes)", regexp.MustCompile(`^github\.com/prometheus/|providers/prometheus\.\(\*reporter\)|v2/interceptors\.(NewServerCallMeta|splitFullMethodName)`), nil},
	{"call log", regexp.MustCompile(`internal/calllog\.\(\*options\)\.finished`), nil},
	{"validation", regexp.MustCompile(`internal/service\.[^ ]*[Vv]alidat|buf\.build/go/protovalidate`), nil},
	{"KooPhone answer decoding", regexp.MustCompile(`internal/upstream\.decode`), nil},
	{"system calls (network I/O)", regexp.MustCompile(`^internal/poll\.|^syscall\.|^internal/runtime/syscall`), nil},
	{"GC (background marking)", regexp.MustCompile(`^runtime\.gcBgMarkWorker`), nil},
	{"the rest (gRPC/HTTP transport, proxying, scheduler, allocation)", regexp.MustCompile(`.`), nil},
}

type attribution struct {
	total time.Duration
	by    []time.Duration // per category
}

// attribute reads a CPU profile (go tool pprof -traces) and sums its samples by category.
func attribute(bin, profile string) (*attribution, error) {
	out, err := exec.Command("go", "tool", "pprof", "-traces", bin, profile).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -traces %s: %w", profile, err)
	}
	return parseTraces(out)
}

func parseTraces(out []byte) (*attribution, error) {
	a := &attribution{by: make([]time.Duration, len(categories))}
	var value time.Duration
	var frames []string
	flush := func() {
		if value == 0 {
			return
		}
		for i, c := range categories {
			if matchAny(c.re, frames) && (c.not == nil || !matchAny(c.not, frames)) {
				a.by[i] += value
				break
			}
		}
		a.total += value
		value, frames = 0, frames[:0]
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	inTraces := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			flush()
			inTraces = true
			continue
		}
		if !inTraces || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(line) > 0 && line[0] == ' ' && len(f) >= 2 && value == 0 {
			if d, err := time.ParseDuration(f[0]); err == nil {
				value = d
				frames = append(frames, f[1])
				continue
			}
		}
		if value != 0 && len(f) >= 1 {
			frames = append(frames, f[0])
		}
	}
	flush()
	if a.total == 0 {
		return nil, fmt.Errorf("no samples in the profile")
	}
	return a, sc.Err()
}

func matchAny(re *regexp.Regexp, frames []string) bool {
	for _, f := range frames {
		if re.MatchString(f) {
			return true
		}
	}
	return false
}

// markdown is the attribution as a table row per category; calls is how many calls the profile covered.
func (a *attribution) markdown(title string, calls float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#### %s: %.2fs of CPU over %.0f calls (%.0f µs per call)\n\n", title, a.total.Seconds(), calls,
		float64(a.total.Microseconds())/calls)
	b.WriteString("| category (first match wins) | CPU | share | per call |\n|---|---:|---:|---:|\n")
	for i, c := range categories {
		fmt.Fprintf(&b, "| %s | %.2fs | %.1f%% | %.1f µs |\n", c.name, a.by[i].Seconds(),
			100*float64(a.by[i])/float64(a.total), float64(a.by[i].Microseconds())/calls)
	}
	b.WriteString("\n")
	return b.String()
}
