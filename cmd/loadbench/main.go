// Command loadbench measures the gateway against the upstream itself and against a bare proxy, in one run, with
// the KooPhone simulator in its own process (`make bench` runs it; docs/benchmarks.md holds its figures):
//
//   - unary: BatchQueryStatus of 10 phones straight to the simulator over HTTP ("direct"), through a bare gRPC
//     proxy (bareproxy.go), through the gateway over gRPC with its full chain, and through the gateway's REST
//     mirror; at fixed rates and at saturation, alternating the paths within each round; throughput, p50/p99 and
//     CPU per call of the serving process from /proc/<pid>/stat, as ratios to direct and to the bare proxy;
//   - slow upstream: 5,000 calls at once against a 200 ms upstream: peak RSS, goroutines, upstream connections
//     opened and open at once (counted by the simulator);
//   - idle watchers: 10,000 and 100,000 WatchTask streams over 100 tasks on real gRPC connections: RSS, heap and
//     stack per watcher, upstream polls per second, and the delay from a task's end to its last watcher hearing it;
//     then the same watchers on the bare watcher floor (barewatch.go: grpc-go with the gateway's transport settings
//     and nothing else), for the gateway's cost per watcher ÷ the floor's;
//   - fairness (fairness.go): one API key's read flood, watches on made-up task ids and watchers until refused,
//     against another key's reads, with the KooPhone read quota on: the other caller's latency, the refusal and
//     the gateway's RSS and goroutines, on this build and on -gateway-before's.
//
// The load comes from this program: one generator drives all four paths, so its own cost, connection policy and
// latency accounting are the same on every path and cancel out of the ratios, the open-loop fixed rates count
// latency from each call's scheduled time, and the paths can alternate within one run. With -ghz and -bombardier
// the saturation load is run again by those public tools as a cross-check (tools.go). The generators' CPU is not
// in any of the figures: only the serving processes' is.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/koophone-gateway/koophone-gateway/internal/config"
)

type options struct {
	gatewayBin, simBin, logDir, out string
	gatewayBefore                   string // optional: an earlier build, measured alongside (unary and slow phases)
	gatewayEnv                      []string
	header                          http.Header // sent to the gateway on every call (REST headers, gRPC metadata)

	conc, rounds, maxInFlight int
	rates                     []int
	segment, warmup           time.Duration

	slowCalls   int
	slowLatency time.Duration

	watchers    []int
	tasks       int
	jobDuration time.Duration
	pollWindow  time.Duration

	fairWindow      time.Duration // fairness: how long the other caller is measured with the flood on (half that alone)
	fairFlood       int           // fairness: the flood's read workers
	fairWatches     int           // fairness: the flood's watches on made-up task ids
	fairStreams     int           // fairness: at most this many watchers from the flood key
	fairOpenStreams int           // fairness: this build's per-caller share of open streams

	skip         map[string]bool
	profileDir   string
	profileDress bool   // -profile: the gateway in production dress
	heapProfile  string // idle watchers: save the gateway's heap profile here (N and .pprof appended)
	ghz          string // cross-check: the ghz binary; with bombardier, the unary phase also runs the public tools
	bombardier   string
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "bareproxy" || os.Args[1] == "barewatch") {
		if err := runBare(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
		}
		os.Exit(1)
	}
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func parse(args []string, out io.Writer) (*options, error) {
	o := &options{header: http.Header{}, skip: map[string]bool{}}
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.gatewayBin, "gateway", "bin/koophone-gateway", "gateway binary")
	fs.StringVar(&o.simBin, "sim", "bin/koophone-sim", "simulator binary")
	fs.StringVar(&o.gatewayBefore, "gateway-before", "", "an earlier gateway binary to measure alongside, for before/after ratios in one run")
	fs.StringVar(&o.logDir, "logs", "", "directory for the processes' logs (default: a new temporary directory)")
	fs.StringVar(&o.out, "out", "", "also write the markdown tables to this file")
	var env, headers listFlag
	fs.Var(&env, "gateway-env", "extra KEY=VALUE for the gateway's environment (repeatable)")
	fs.Var(&headers, "header", `"Name: value" sent to the gateway on every call, e.g. a caller credential (repeatable)`)
	fs.IntVar(&o.conc, "conc", 50, "concurrent callers at saturation")
	rates := fs.String("rates", "500,1000", "fixed rates (calls/s), comma-separated")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every load on every path, alternating")
	fs.DurationVar(&o.segment, "segment", 5*time.Second, "length of one load on one path in one round")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up per path before the rounds")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 2000, "fixed rates: calls in flight beyond this count as failed")
	fs.IntVar(&o.slowCalls, "slow-calls", 5000, "slow upstream: calls fired at once")
	fs.DurationVar(&o.slowLatency, "slow-latency", 200*time.Millisecond, "slow upstream: the simulator's added latency")
	watch := fs.String("watchers", "10000,100000", "idle watcher counts, comma-separated")
	fs.IntVar(&o.tasks, "tasks", 100, "tasks the watchers spread over")
	fs.DurationVar(&o.jobDuration, "job-duration", 0, "how long the watched tasks run; it must outlast opening the watchers and the poll window (0: 30s + 1.5ms per watcher + the poll window)")
	fs.DurationVar(&o.pollWindow, "poll-window", 20*time.Second, "how long upstream polls are counted while the watchers idle")
	fs.DurationVar(&o.fairWindow, "fair-window", 20*time.Second, "fairness: how long the other caller is measured with the flood on (and half that alone)")
	fs.IntVar(&o.fairFlood, "fair-flood", 40, "fairness: the flood key's concurrent read workers")
	fs.IntVar(&o.fairWatches, "fair-watches", 2000, "fairness: the flood key's watches on made-up task ids")
	fs.IntVar(&o.fairStreams, "fair-streams", 9000, "fairness: the flood key opens watchers until refused, or this many")
	fs.IntVar(&o.fairOpenStreams, "fair-open-streams", 2000, "fairness: this build's per-caller share of open streams (KOOPHONE_SHARE_OPEN_STREAMS; 2000 is its default)")
	skip := fs.String("skip", "", "comma-separated phases to leave out: unary, slow, watch, dress (the production dress and the shares, measured with the unary phase), fairness (one API key flooding another's reads, watches and streams)")
	fs.StringVar(&o.heapProfile, "watch-heap-profile", "", "save the gateway's heap profile and goroutine stacks while the watchers idle, to this path + N.pprof and N.goroutines.txt")
	fs.StringVar(&o.ghz, "ghz", "", "ghz binary: with -bombardier, also load every path with ghz (gRPC) and bombardier (HTTP) at saturation")
	fs.StringVar(&o.bombardier, "bombardier", "", "bombardier binary (see -ghz)")
	fs.BoolVar(&o.profileDress, "profile-dress", false, "with -profile: the gateway in production dress (TLS, API keys, policy, audit, /metrics scraped, shares configured)")
	fs.StringVar(&o.profileDir, "profile", "", "instead of benchmarking, save CPU profiles (gRPC, REST) and allocations of a saturated gateway in this directory")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.gatewayEnv = env
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return nil, fmt.Errorf("-header %q: want \"Name: value\"", h)
		}
		o.header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	var err error
	if o.rates, err = ints(*rates); err != nil {
		return nil, fmt.Errorf("-rates: %w", err)
	}
	if o.watchers, err = ints(*watch); err != nil {
		return nil, fmt.Errorf("-watchers: %w", err)
	}
	for _, s := range strings.Split(*skip, ",") {
		if s != "" {
			o.skip[s] = true
		}
	}
	if o.fairFlood < 1 || o.fairWatches < 1 || o.fairStreams < 1 || o.fairOpenStreams < 0 || o.fairWindow <= 0 {
		return nil, errNoFairness
	}
	if o.tasks < 1 || o.tasks > 200 {
		return nil, errors.New("-tasks must be 1 to 200 (one phone of the simulator's 200 each)")
	}
	return o, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

var logOut io.Writer = os.Stderr

// logf reports progress on stderr; the tables go to stdout.
func logf(format string, args ...any) {
	_, _ = fmt.Fprintf(logOut, time.Now().Format("15:04:05 ")+format+"\n", args...) // progress only
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parse(args, out)
	if err != nil {
		return err
	}
	if o.logDir == "" {
		if o.logDir, err = os.MkdirTemp("", "loadbench-"); err != nil {
			return err
		}
	}
	if o.profileDir != "" {
		return profile(ctx, o, o.profileDir)
	}
	rep, err := execute(ctx, o)
	if err != nil {
		return err
	}
	md := rep.markdown()
	if _, err := fmt.Fprint(out, md); err != nil {
		return err
	}
	if o.out != "" {
		return os.WriteFile(o.out, []byte(md), 0o644) //nolint:gosec // G306: a report to read and commit, like the docs
	}
	return nil
}

// execute runs every phase not skipped and returns the measurements.
func execute(ctx context.Context, o *options) (*report, error) {
	var err error
	if o.logDir == "" {
		if o.logDir, err = os.MkdirTemp("", "loadbench-"); err != nil {
			return nil, err
		}
	}
	logf("process logs in %s", o.logDir)
	callOpts := callOptions(o)

	rep := &report{opts: o}
	if !o.skip["unary"] || !o.skip["slow"] {
		s, err := startSim(ctx, o, "sim", time.Minute)
		if err != nil {
			return nil, err
		}
		err = unaryAndSlow(ctx, o, s, rep, callOpts)
		s.stop()
		if err != nil {
			return nil, err
		}
	}
	if !o.skip["watch"] {
		for _, n := range o.watchers {
			if err := watchPhase(ctx, o, rep, n, callOpts); err != nil {
				return nil, fmt.Errorf("%d watchers: %w", n, err)
			}
		}
	}
	if !o.skip["fairness"] {
		if err := fairnessPhase(ctx, o, rep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// watchPhase runs n idle watchers on a simulator and a gateway of their own, with tasks long enough to open them.
func watchPhase(ctx context.Context, o *options, rep *report, n int, callOpts []grpc.CallOption) error {
	jd := o.jobDuration
	if jd == 0 {
		jd = 30*time.Second + time.Duration(n)*1500*time.Microsecond + o.pollWindow
	}
	s, err := startSim(ctx, o, fmt.Sprintf("sim-watch-%d", n), jd)
	if err != nil {
		return err
	}
	defer s.stop()
	g, err := startGateway(ctx, o, s, fmt.Sprintf("gateway-watch-%d", n), o.gatewayBin)
	if err != nil {
		return err
	}
	defer g.stop()
	w, err := watchers(ctx, o, s, g, n, jd, callOpts)
	if err != nil {
		return err
	}
	rep.watch = append(rep.watch, w)
	g.stop()
	floor, err := bareWatchFloor(ctx, o, s, n)
	if err != nil {
		return fmt.Errorf("bare watcher floor: %w", err)
	}
	rep.watchFloor = append(rep.watchFloor, floor)
	return nil
}

// bareWatchFloor measures n idle watchers on the bare watcher floor (barewatch.go), as on the gateway.
func bareWatchFloor(ctx context.Context, o *options, s *simulator, n int) (*watchResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := startProc(fmt.Sprintf("barewatch-%d", n), o.logDir, self, []string{"barewatch"},
		[]string{"GODEBUG=gcshrinkstackoff=1"}) // as the gateway runs
	if err != nil {
		return nil, err
	}
	defer p.stop()
	m, err := waitLog(ctx, p, bareWatchListening)
	if err != nil {
		return nil, err
	}
	return watchers(ctx, o, s, &gateway{proc: p, grpcAddr: m[1], pprofAddr: m[2]}, n, 0, nil)
}

// unaryAndSlow runs the side-by-side comparison and then the slow-upstream bursts, on one gateway and one bare
// proxy (each burst on a gateway of its own, so its peak RSS is the burst's).
func unaryAndSlow(ctx context.Context, o *options, s *simulator, rep *report, callOpts []grpc.CallOption) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bare, err := startProc("bareproxy", o.logDir, self, []string{"bareproxy", "-listen", "127.0.0.1:0", "-upstream", s.url},
		[]string{"LOADBENCH_TOKEN=" + s.token})
	if err != nil {
		return err
	}
	defer bare.stop()
	m, err := waitLog(ctx, bare, bareListening)
	if err != nil {
		return err
	}
	bareAddr := m[1]
	ids := s.ids[:10]
	barePath, err := grpcPath("bare proxy", bareAddr, bare.pid(), 4, ids)
	if err != nil {
		return err
	}
	defer barePath.close()
	if err := waitCall(ctx, bare, barePath.call); err != nil {
		return err
	}

	if !o.skip["unary"] {
		g, err := startGateway(ctx, o, s, "gateway-unary", o.gatewayBin)
		if err != nil {
			return err
		}
		defer g.stop()
		grpcP, err := grpcPath("gateway gRPC", g.grpcAddr, g.pid(), 4, ids, callOpts...)
		if err != nil {
			return err
		}
		paths := []path{directPath(s, ids), barePath, grpcP, restPath(g, ids, o.header)}
		if o.gatewayBefore != "" {
			gb, err := startGateway(ctx, o, s, "gateway-unary-before", o.gatewayBefore)
			if err != nil {
				return err
			}
			defer gb.stop()
			grpcB, err := grpcPath("before: gateway gRPC", gb.grpcAddr, gb.pid(), 4, ids, callOpts...)
			if err != nil {
				return err
			}
			paths = append(paths, grpcB, restPath(gb, ids, o.header))
			paths[len(paths)-1].name = "before: gateway REST"
		}
		defer func() {
			for _, p := range paths[2:] {
				p.close()
			}
			paths[0].close()
		}()
		var scr *scraper
		if !o.skip["dress"] {
			dp, scraped, stopAll, err := dressed(ctx, o, s, self, ids, rep)
			defer stopAll()
			if err != nil {
				return err
			}
			paths = append(paths, dp...)
			// Prometheus scrapes the dressed gateways every 15 s while they serve (and only then: the figures are
			// read per segment, and the dressed paths' segments spread over the whole comparison).
			scr = startScraper(ctx, scraped)
		}
		loads := []load{{name: fmt.Sprintf("saturation (%d callers)", o.conc)}}
		for _, r := range o.rates {
			loads = append(loads, load{name: fmt.Sprintf("%d calls/s", r), rate: r})
		}
		res, err := compare(ctx, o, s.pid(), loads, paths)
		if scr != nil {
			scr.close()
			rep.scrapes, rep.scrapesFailed = scr.count.Load(), scr.failed.Load()
		}
		if err != nil {
			return err
		}
		rep.loads, rep.paths, rep.unary = loads, paths, res
		if o.ghz != "" && o.bombardier != "" {
			body := toolBody(ids)
			headers, md := map[string]string{}, map[string]string{}
			for k, v := range o.header {
				headers[k], md[strings.ToLower(k)] = v[0], v[0]
			}
			targets := []toolTarget{
				bombardierTarget("direct", s.url+"/v1/instances/batch-query-status", 0, body,
					map[string]string{"X-Auth-Token": s.token, "X-Request-Id": "lb-tools"}),
				ghzTarget("bare proxy", bareAddr, bare.pid(), body, nil),
				ghzTarget("gateway gRPC", g.grpcAddr, g.pid(), body, md),
				bombardierTarget("gateway REST", "http://"+g.httpAddr+"/v1/instances/batch-query-status", g.pid(), body, headers),
			}
			if rep.tools, err = crossCheck(ctx, o, s.pid(), targets); err != nil {
				return err
			}
		}
	}

	if !o.skip["slow"] {
		if err := s.setFaults(fmt.Sprintf(`[{"kind":"latency","ops":["BatchQueryStatus"],"latency":%q}]`, o.slowLatency)); err != nil {
			return err
		}
		defer func() {
			if err := s.setFaults("[]"); err != nil {
				logf("clearing the slow upstream's fault: %v", err)
			}
		}()
		// The gateway at its default bounds (upstream connections, attempts in flight) and with both at 1,000, to
		// see both that the bound holds and what it costs: each HTTP/1.1 connection carries one call at a time, so a
		// bound of B against a 200 ms upstream allows at most B/0.2s calls/s.
		defaults, err := config.Load(nil, func(string) string { return "" }, io.Discard)
		if err != nil {
			return err
		}
		type run struct {
			name, bin string
			env       []string
			bound     int // what bounds the calls in flight upstream; 0: unknown (an earlier build's own defaults)
		}
		const generous = 1000
		runs := []run{
			{"gateway gRPC, defaults", o.gatewayBin, nil, min(defaults.UpstreamMaxConns, defaults.UpstreamMaxInFlight)},
			{"gateway gRPC, bounds 1000", o.gatewayBin, []string{fmt.Sprintf("KOOPHONE_UPSTREAM_MAX_CONNS=%d", generous),
				fmt.Sprintf("KOOPHONE_UPSTREAM_MAX_IN_FLIGHT=%d", generous)}, generous},
		}
		if o.gatewayBefore != "" {
			runs = append(runs, run{"before: gateway gRPC, defaults", o.gatewayBefore, nil, 0})
		}
		for i, rn := range runs {
			g, err := startGateway(ctx, o, s, fmt.Sprintf("gateway-slow-%d", i), rn.bin, rn.env...)
			if err != nil {
				return err
			}
			r, err := burst(ctx, o, s, rn.name, g.grpcAddr, g.pid(), g.pprofAddr, callOpts)
			g.stop()
			if err != nil {
				return err
			}
			r.bound = rn.bound
			rep.slow = append(rep.slow, r)
		}
		b, err := burst(ctx, o, s, "bare proxy", bareAddr, bare.pid(), "", nil)
		if err != nil {
			return err
		}
		rep.slow = append(rep.slow, b)
	}
	return nil
}

var (
	bareListening      = regexp.MustCompile(`bare proxy on (\S+)`)
	bareWatchListening = regexp.MustCompile(`bare watcher floor on (\S+) pprof (\S+)`)
)

// runBare runs one of the bare servers the harness starts as child processes of its own binary.
func runBare(name string, args []string) error {
	if name == "barewatch" {
		return runBareWatch(args)
	}
	return runBareProxy(args)
}

// waitCall retries call until it succeeds (the process is up), the process exits, or 30s pass.
func waitCall(ctx context.Context, p *proc, call callFunc) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := call(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if p.exited() || time.Now().After(deadline) {
			return fmt.Errorf("%s never answered: %w", p.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// callOptions sends the -header values as metadata on every gRPC call.
func callOptions(o *options) []grpc.CallOption {
	if len(o.header) == 0 {
		return nil
	}
	md := metadata.MD{}
	for k, vs := range o.header {
		md.Append(strings.ToLower(k), vs...)
	}
	return []grpc.CallOption{perRPCMetadata(md)}
}

// perRPCMetadata adds md to every call's outgoing metadata.
func perRPCMetadata(md metadata.MD) grpc.CallOption {
	return grpc.PerRPCCredsCallOption{Creds: staticMD(md)}
}

type staticMD metadata.MD

func (m staticMD) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	out := map[string]string{}
	for k, vs := range m {
		out[k] = vs[0]
	}
	return out, nil
}

func (staticMD) RequireTransportSecurity() bool { return false }
