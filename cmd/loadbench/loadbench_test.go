package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for loadbench when the harness re-executes itself as a bare server.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "bareproxy" || os.Args[1] == "barewatch") {
		if err := runBare(os.Args[1], os.Args[2:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs every phase of the harness at a tiny scale (a few hundred calls per path, 200 watchers) against
// real gateway and simulator processes, and checks that every figure was measured and every call succeeded.
// It guards the harness, not the gateway's speed: nothing here is timed.
func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/server", "./cmd/koophone-sim")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var progress strings.Builder
	logOut = &progress
	o, err := parse([]string{
		"-gateway", filepath.Join(dir, "server"), "-sim", filepath.Join(dir, "koophone-sim"), "-logs", dir,
		"-conc", "4", "-rounds", "1", "-segment", "300ms", "-warmup", "100ms", "-rates", "200",
		"-slow-calls", "200", "-slow-latency", "50ms",
		"-watchers", "200", "-tasks", "5", "-job-duration", "8s", "-poll-window", "1s", "-gateway-before", filepath.Join(dir, "server"),
		"-gateway-env", "KOOPHONE_WATCH_FIRST_INTERVAL=100ms", "-gateway-env", "KOOPHONE_WATCH_MAX_INTERVAL=500ms",
		"-skip", "fairness", // TestFairnessSmoke
	}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := execute(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}

	// unary: direct, bare, gRPC, REST, the earlier build's two, then the bare TLS proxy and six dressed or shared
	// paths; slow: this build at two connection bounds, the earlier build, the bare proxy
	if len(rep.unary) != 2 || len(rep.paths) != 13 || len(rep.slow) != 4 {
		t.Fatalf("%d loads, %d paths, %d slow bursts", len(rep.unary), len(rep.paths), len(rep.slow))
	}
	for li, row := range rep.unary {
		for pi, m := range row {
			name := rep.loads[li].name + " / " + rep.paths[pi].name
			if m.calls == 0 || m.errs != 0 {
				t.Errorf("%s: %d of %d calls failed, first: %v", name, m.errs, m.calls, m.firstErr)
			}
			if rep.paths[pi].pid != 0 && m.cpu <= 0 && li == 0 {
				t.Errorf("%s: no CPU time measured", name)
			}
		}
	}
	for _, b := range rep.slow {
		// Open at once: the gateway's KooPhone connections plus those open before the burst (the harness's own, the
		// IAM client's), which the bound does not cover.
		if b.bound > 0 && b.peakOpen > int64(b.bound)+b.openBefore {
			t.Errorf("slow burst %s: %d connections open at once (%d before), over the bound of %d", b.path, b.peakOpen, b.openBefore, b.bound)
		}
		if b.ok != b.calls || b.connsOpened < 1 || b.peakRSS <= 0 {
			t.Errorf("slow burst %s: %d of %d ok, %d connections, peak RSS %d, first error %v",
				b.path, b.ok, b.calls, b.connsOpened, b.peakRSS, b.firstErr)
		}
	}
	if len(rep.watch) != 1 {
		t.Fatalf("%d watch results", len(rep.watch))
	}
	w := rep.watch[0]
	if w.terminal != 200 || w.failed != 0 || len(w.delays) != 5 || w.pollsPerSec <= 0 || w.heap <= 0 || w.rss <= 0 || w.stack <= 0 {
		t.Errorf("watchers: %+v", *w)
	}
	if len(rep.watchFloor) != 1 || rep.watchFloor[0].heap <= 0 || rep.watchFloor[0].rss <= 0 || rep.watchFloor[0].stack <= 0 {
		t.Fatalf("bare watcher floor: %d results", len(rep.watchFloor))
	}
	// A count, not a timing: grpc-go's own handler already needs an 8 KiB stack, so a watch whose deepest point
	// (its first Send under the whole chain) crosses 8 KiB doubles every watcher's stack to 16 KiB. (Against a fixed
	// bound, not the floor's figure: under -race the floor, this test binary re-executed, is race-built.)
	f := rep.watchFloor[0]
	gs, fs := w.perWatcher(w.stack, w.idleStack), f.perWatcher(f.stack, f.idleStack)
	t.Logf("stack per watcher: gateway %.0f B, bare watcher floor %.0f B", gs, fs)
	if gs > 12<<10 {
		t.Errorf("stack per watcher %.0f B, over 12 KiB: a watch's goroutine grew to 16 KiB", gs)
	}
	md := rep.markdown()
	for _, want := range []string{"calls/s ÷ bare", "| gateway REST |", "| before: gateway REST |", "this build ÷ the earlier build",
		"upstream connections opened", "RSS per watcher", "(bare watcher floor)", "Gateway ÷ floor", "### Targets", "| " + pathBareTLS + " |", "| " + pathMTLSREST + " |",
		"| " + pathDressShares + " |", "Unary in production dress"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestFairnessSmoke runs the fairness phase alone at a tiny scale (a 4-worker flood, 20 made-up watches, a share
// of 50 open streams) on this build and, as the earlier build, the same binary: every part measured, the other
// caller's calls all answered, and the flood's watchers refused at its share with the reason naming the limit.
// Nothing here is timed: the figures are make bench's.
func TestFairnessSmoke(t *testing.T) {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/server", "./cmd/koophone-sim")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var progress strings.Builder
	logOut = &progress
	o, err := parse([]string{
		"-gateway", filepath.Join(dir, "server"), "-sim", filepath.Join(dir, "koophone-sim"), "-logs", dir,
		"-gateway-before", filepath.Join(dir, "server"), "-skip", "unary,slow,watch,dress",
		"-fair-window", "1s", "-fair-flood", "4", "-fair-watches", "20", "-fair-streams", "300", "-fair-open-streams", "50",
	}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := execute(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if len(rep.fair) != 2 || rep.unary != nil || rep.watch != nil {
		t.Fatalf("%d fairness results, unary %v, watch %v", len(rep.fair), rep.unary != nil, rep.watch != nil)
	}
	for _, f := range rep.fair {
		for name, s := range map[string]*sample{"reads alone": &f.aloneRead, "reads with the flood": &f.withRead,
			"GetTask alone": &f.aloneGet, "GetTask with the watches": &f.watchGet} {
			if s.calls == 0 || s.errs != 0 {
				t.Errorf("%s, %s: %d of %d calls failed, first: %v", f.build, name, s.errs, s.calls, s.firstErr)
			}
		}
		if f.flood.calls == 0 {
			t.Errorf("%s: the flood made no calls", f.build)
		}
		if w := f.watches; w.open+w.notFound+w.failed != 20 || w.failed != 0 {
			t.Errorf("%s: made-up watches %+v", f.build, w)
		}
		sf := f.streams
		if sf.opened != 50 || sf.refused < 1 || sf.failed != 0 || sf.reason != "PRINCIPAL_STREAM_LIMITED" || sf.limit != "50" ||
			sf.rss <= 0 || sf.goroutines <= sf.idleGoroutines || sf.otherWatch != "opened" {
			t.Errorf("%s: watchers until refused: %+v", f.build, sf)
		}
	}
	md := rep.markdown()
	for _, want := range []string{"### Fairness", "| before | with the flood |", "| this build | with the watches |",
		"PRINCIPAL_STREAM_LIMITED, 50"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// The public tools' JSON reports are read as they print them (samples trimmed from ghz v0.121.0 and bombardier
// v1.2.6); calls ghz cuts off at the end of its duration are not failures.
func TestParseToolReports(t *testing.T) {
	g, err := parseGhz([]byte(`{"count":1020,"total":3000000000,"latencyDistribution":[{"percentage":50,"latency":10680000},` +
		`{"percentage":99,"latency":34570000}],"statusCodeDistribution":{"OK":1000,"Unavailable":20},` +
		`"errorDistribution":{"rpc error: code = Unavailable desc = error reading from server: read tcp 127.0.0.1:1->127.0.0.1:2: use of closed network connection":20}}`))
	if err != nil || g.ok != 1000 || g.failed != 0 || g.elapsed != 3*time.Second || g.p50 != 10680*time.Microsecond || g.p99 != 34570*time.Microsecond {
		t.Errorf("ghz: %+v %v", g, err)
	}
	b, err := parseBombardier([]byte(`{"spec":{},"result":{"bytesRead":1,"bytesWritten":1,"timeTakenSeconds":3.0,` +
		`"req1xx":0,"req2xx":900,"req3xx":0,"req4xx":2,"req5xx":1,"others":0,` +
		`"latency":{"mean":2270,"stddev":1,"max":9000,"percentiles":{"50":2270,"99":10140}},"rps":{"mean":300}}}`))
	if err != nil || b.ok != 900 || b.failed != 3 || b.elapsed != 3*time.Second || b.p50 != 2270*time.Microsecond || b.p99 != 10140*time.Microsecond {
		t.Errorf("bombardier: %+v %v", b, err)
	}
	if _, err := parseGhz([]byte(`{"count":0}`)); err == nil {
		t.Error("ghz report without calls accepted")
	}
}
