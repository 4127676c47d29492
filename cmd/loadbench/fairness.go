package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

// The fairness phase: can one caller take the gateway from another? Two API keys on one gateway with TLS and the
// KooPhone read quota on (50 reads/s, the gateway's polite default: the quota is what callers compete for), "flood"
// and "other". Each part runs on a fresh gateway of each build (this one, and -gateway-before's), bounded in time
// and count:
//
//   - flood: 40 workers of BatchQueryStatus back to back from "flood" while "other" makes the same read at a steady
//     5 calls/s: the other caller's latency with the flood on, and alone;
//   - watches: "flood" opens 2,000 WatchTask streams on made-up task ids and holds them while "other" reads a real
//     task with GetTask at 5 calls/s;
//   - streams: "flood" opens WatchTask streams on real tasks until the gateway refuses one (its per-caller share of
//     open streams) or -fair-streams are open; the gateway's RSS and goroutines, and whether "other" can still
//     open a watch.
//
// No policy file: every authenticated caller may do everything, the same on both builds (an earlier build names
// its principals without the key: prefix, so a policy naming them would differ between the builds).

const (
	fairReadRate  = 50 // KOOPHONE_UPSTREAM_READ_RATE: the gateway's default
	fairOtherRate = 5  // the other caller's calls per second
)

// fairResult is one build's three parts.
type fairResult struct {
	build               string
	aloneRead, withRead sample // the other caller's BatchQueryStatus, alone and with the flood
	flood               sample // the flood's own calls
	aloneGet, watchGet  sample // the other caller's GetTask, alone and with the made-up watches held
	watches             watchFlood
	streams             streamFlood
}

// watchFlood is how the flood's watches on made-up task ids stood at the end of the window.
type watchFlood struct {
	opened, open, notFound, failed int64
	firstErr                       error
}

// streamFlood is the flood's watches on real tasks, opened until refused.
type streamFlood struct {
	tasks                      int
	attempted, opened, refused int64
	failed                     int64
	reason, limit              string // of the first refusal: the ErrorInfo reason and the limit's value
	firstErr                   error
	idleRSS, rss               int64
	idleGoroutines, goroutines int // 0: the build has no pprof port
	otherWatch                 string
}

// fairDress: the run's certificates (as the production dress makes them) and a keys file of the two callers.
type fairDress struct {
	*dress
	floodKey, otherKey string
}

func newFairDress(dir string) (*fairDress, error) {
	d := &dress{dir: dir, clientIdentity: clientIdentity}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := d.certificates(); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	f := &fairDress{dress: d, floodKey: "flood-" + fmt.Sprintf("%x", randomBytes(16)), otherKey: "other-" + fmt.Sprintf("%x", randomBytes(16))}
	d.keysFile = d.path("keys.yaml")
	keys := "keys:\n" + keyEntry("flood", f.floodKey, "fairness") + keyEntry("other", f.otherKey, "fairness")
	if err := os.WriteFile(d.keysFile, []byte(keys), 0o600); err != nil {
		return nil, err
	}
	d.keyCount = 2
	return f, nil
}

// env: TLS, the keys, the read quota, and this build's default shares (an earlier build ignores the share
// variables); startGateway lifts the shares for the other phases' single anonymous caller, so they are set back.
func (f *fairDress) env(openStreams int) []string {
	return append(f.tlsEnv(), "KOOPHONE_AUTH_KEYS_FILE="+f.keysFile, fmt.Sprintf("KOOPHONE_UPSTREAM_READ_RATE=%d", fairReadRate),
		fmt.Sprintf("KOOPHONE_SHARE_OPEN_STREAMS=%d", openStreams), "KOOPHONE_SHARE_CONCURRENT_CALLS=256")
}

func (f *fairDress) config(key string) koophone.Config {
	return koophone.Config{CAFile: f.caFile, APIKey: key, NoRetry: true}
}

// fairnessPhase runs the three parts on each build, on one simulator whose tasks outlast the phase.
func fairnessPhase(ctx context.Context, o *options, rep *report) error {
	s, err := startSim(ctx, o, "sim-fairness", time.Hour)
	if err != nil {
		return err
	}
	defer s.stop()
	d, err := newFairDress(filepath.Join(o.logDir, "fairness"))
	if err != nil {
		return err
	}
	builds := []struct{ name, tag, bin string }{{"this build", "now", o.gatewayBin}}
	if o.gatewayBefore != "" {
		builds = append(builds, struct{ name, tag, bin string }{"before", "before", o.gatewayBefore})
	}
	for _, b := range builds {
		r := &fairResult{build: b.name}
		logf("fairness, %s: a %d-worker read flood", b.name, o.fairFlood)
		if err := fairFlood(ctx, o, s, d, b.tag, b.bin, r); err != nil {
			return fmt.Errorf("fairness, %s, flood: %w", b.name, err)
		}
		logf("fairness, %s: %d watches on made-up task ids", b.name, o.fairWatches)
		if err := fairWatches(ctx, o, s, d, b.tag, b.bin, r); err != nil {
			return fmt.Errorf("fairness, %s, watches: %w", b.name, err)
		}
		logf("fairness, %s: watchers from one key until refused (at most %d)", b.name, o.fairStreams)
		if err := fairStreams(ctx, o, s, d, b.tag, b.bin, r); err != nil {
			return fmt.Errorf("fairness, %s, streams: %w", b.name, err)
		}
		rep.fair = append(rep.fair, r)
	}
	return nil
}

// fairFlood: the other caller's reads alone, then with the flood's workers going since 2 s before.
func fairFlood(ctx context.Context, o *options, s *simulator, d *fairDress, tag, bin string, r *fairResult) error {
	g, err := startGatewayTLS(ctx, o, s, "gateway-fair-flood-"+tag, bin, d.dress, d.env(o.fairOpenStreams)...)
	if err != nil {
		return err
	}
	defer g.stop()
	ids := s.ids[:10]
	flood, err := grpcPathWith("flood", g.grpcAddr, g.pid(), 4, d.config(d.floodKey), ids)
	if err != nil {
		return err
	}
	defer flood.close()
	other, err := grpcPathWith("other", g.grpcAddr, g.pid(), 1, d.config(d.otherKey), ids)
	if err != nil {
		return err
	}
	defer other.close()
	if err := waitCall(ctx, g.proc, other.call); err != nil {
		return err
	}
	r.aloneRead = openLoop(ctx, fairOtherRate, o.fairWindow/2, 100, other.call)
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan sample, 1)
	go func() { done <- closedLoop(fctx, o.fairFlood, 24*time.Hour, 0, flood.call) }()
	time.Sleep(2 * time.Second) // the flood's calls fill the quota's queue first
	r.withRead = openLoop(ctx, fairOtherRate, o.fairWindow, 100, other.call)
	stop()
	r.flood = <-done
	return nil
}

// fairWatches: the other caller's GetTask of a real task alone, then while the flood holds its watches on
// made-up task ids (opened 2 s before).
func fairWatches(ctx context.Context, o *options, s *simulator, d *fairDress, tag, bin string, r *fairResult) error {
	g, err := startGatewayTLS(ctx, o, s, "gateway-fair-watches-"+tag, bin, d.dress, d.env(o.fairOpenStreams)...)
	if err != nil {
		return err
	}
	defer g.stop()
	other, err := dialPoolWith(g.grpcAddr, 1, d.config(d.otherKey))
	if err != nil {
		return err
	}
	defer other.close()
	flood, err := dialPoolWith(g.grpcAddr, 1, d.config(d.floodKey))
	if err != nil {
		return err
	}
	defer flood.close()
	oc, fc := pb.NewInstanceServiceClient(other.conns[0]), pb.NewInstanceServiceClient(flood.conns[0])
	var taskID string
	if err := waitCall(ctx, g.proc, func(ctx context.Context) error {
		res, err := oc.AsyncCommand(ctx, &pb.AsyncCommandRequest{Command: "ls", InstanceIds: []string{s.ids[0]}})
		taskID = res.GetTaskId()
		return err
	}); err != nil {
		return err
	}
	get := func(ctx context.Context) error {
		_, err := oc.GetTask(ctx, &pb.GetTaskRequest{TaskId: taskID})
		return err
	}
	r.aloneGet = openLoop(ctx, fairOtherRate, o.fairWindow/2, 100, get)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &r.watches
	var notFound, failed, open atomic.Int64
	var errOnce sync.Once
	var wg sync.WaitGroup
	for i := range o.fairWatches {
		wg.Go(func() {
			st, err := fc.WatchTask(wctx, &pb.WatchTaskRequest{TaskId: fmt.Sprintf("madeup-%s-%05d", tag, i)})
			for err == nil {
				_, err = st.Recv()
			}
			switch code := status.Code(err); {
			case code == codes.Canceled && wctx.Err() != nil:
				open.Add(1) // still open when the window ended
			case code == codes.NotFound:
				notFound.Add(1)
			default:
				failed.Add(1)
				errOnce.Do(func() { w.firstErr = err })
			}
		})
	}
	w.opened = int64(o.fairWatches)
	time.Sleep(2 * time.Second)
	r.watchGet = openLoop(ctx, fairOtherRate, o.fairWindow, 100, get)
	cancel()
	wg.Wait()
	w.open, w.notFound, w.failed = open.Load(), notFound.Load(), failed.Load()
	return nil
}

// fairTasks is how many real tasks the flood's watchers spread over.
const fairTasks = 20

// fairStreams: the flood opens watches on real tasks, 256 at a time, until one is refused or -fair-streams are
// open; then the gateway's RSS and goroutines, and one watch by the other caller.
func fairStreams(ctx context.Context, o *options, s *simulator, d *fairDress, tag, bin string, r *fairResult) error {
	g, err := startGatewayTLS(ctx, o, s, "gateway-fair-streams-"+tag, bin, d.dress, d.env(o.fairOpenStreams)...)
	if err != nil {
		return err
	}
	defer g.stop()
	sf := &r.streams
	sf.tasks = fairTasks
	other, err := dialPoolWith(g.grpcAddr, 1, d.config(d.otherKey))
	if err != nil {
		return err
	}
	defer other.close()
	oc := pb.NewInstanceServiceClient(other.conns[0])
	tasks := make([]string, fairTasks)
	for i := range tasks {
		if err := waitCall(ctx, g.proc, func(ctx context.Context) error {
			res, err := oc.AsyncCommand(ctx, &pb.AsyncCommandRequest{Command: "ls", InstanceIds: []string{s.ids[i]}})
			tasks[i] = res.GetTaskId()
			return err
		}); err != nil {
			return err
		}
	}
	time.Sleep(time.Second) // settle before the idle reading
	sf.idleRSS, _, _ = memStatus(g.pid())
	if g.pprofAddr != "" {
		rt, err := readRuntime(g.pprofAddr)
		if err != nil {
			return err
		}
		sf.idleGoroutines = rt.Goroutines
	}

	flood, err := dialPoolWith(g.grpcAddr, (o.fairStreams+streamsPerConn-1)/streamsPerConn, d.config(d.floodKey))
	if err != nil {
		return err
	}
	defer flood.close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var opened, refused, failed atomic.Int64
	var stopOpening atomic.Bool
	var once sync.Once
	opening := make(chan struct{}, 256)
	var wg sync.WaitGroup
	attempted := 0
	for i := 0; i < o.fairStreams && !stopOpening.Load(); i++ {
		opening <- struct{}{}
		attempted++
		wg.Go(func() {
			st, err := pb.NewInstanceServiceClient(flood.conns[i%len(flood.conns)]).WatchTask(wctx,
				&pb.WatchTaskRequest{TaskId: tasks[i%len(tasks)]})
			if err == nil {
				_, err = st.Recv()
			}
			<-opening
			if err != nil {
				if wctx.Err() != nil {
					return
				}
				stopOpening.Store(true) // refused (or failed): the flood has what it can get
				if status.Code(err) == codes.ResourceExhausted {
					refused.Add(1)
				} else {
					failed.Add(1)
				}
				once.Do(func() { sf.firstErr = err; sf.reason, sf.limit = errorReason(err) })
				return
			}
			opened.Add(1)
			for err == nil {
				_, err = st.Recv()
			}
		})
	}
	deadline := time.Now().Add(time.Minute)
	for opened.Load()+refused.Load()+failed.Load() < int64(attempted) {
		if time.Now().After(deadline) {
			return fmt.Errorf("after a minute, %d of %d watches answered (%d open, %d refused, %d failed)",
				opened.Load()+refused.Load()+failed.Load(), attempted, opened.Load(), refused.Load(), failed.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	sf.attempted, sf.opened, sf.refused, sf.failed = int64(attempted), opened.Load(), refused.Load(), failed.Load()
	time.Sleep(2 * time.Second)
	sf.rss, _, _ = memStatus(g.pid())
	if g.pprofAddr != "" {
		rt, err := readRuntime(g.pprofAddr)
		if err != nil {
			return err
		}
		sf.goroutines = rt.Goroutines
	}
	// The other caller's own watch, while the flood holds its streams.
	octx, ocancel := context.WithTimeout(wctx, 10*time.Second)
	st, err := oc.WatchTask(octx, &pb.WatchTaskRequest{TaskId: tasks[0]})
	if err == nil {
		_, err = st.Recv()
	}
	ocancel()
	sf.otherWatch = "opened"
	if err != nil {
		reason, _ := errorReason(err)
		sf.otherWatch = "failed: " + reason
	}
	logf("fairness: the flood opened %d watchers (%d refused, %d failed)", sf.opened, sf.refused, sf.failed)
	cancel()
	wg.Wait()
	return nil
}

// errorReason is the ErrorInfo reason of a gRPC error and its "value" (the limit), or the code when it has none.
func errorReason(err error) (reason, value string) {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetReason(), ei.GetMetadata()["value"]
		}
	}
	return st.Code().String(), ""
}

func (r *report) fairTables(b *strings.Builder) {
	o := r.opts
	fmt.Fprintf(b, "### Fairness: one API key floods, another calls\n\n"+
		"Two API keys (\"flood\" and \"other\") on one gateway: TLS, API keys, no policy, the KooPhone read quota at "+
		"%d reads/s (`--upstream-read-rate`'s default: what the callers compete for), this build's default shares "+
		"(%d open streams, 256 calls in flight per caller; an earlier build has none). The other caller calls at %d/s, "+
		"open loop (latency from each call's scheduled time; 10 s deadline, a call not answered by then counts as "+
		"failed). Each part on a fresh gateway; \"before\" is the build given with `-gateway-before`.\n\n",
		fairReadRate, o.fairOpenStreams, fairOtherRate)

	fmt.Fprintf(b, "**A %d-worker read flood** (BatchQueryStatus of 10 phones from both keys; the other caller for %v "+
		"alone, then %v with the flood on)\n\n", o.fairFlood, o.fairWindow/2, o.fairWindow)
	b.WriteString("| build | the other caller | ok / calls | p50 | p99 | max | flood's reads/s |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, f := range r.fair {
		fmt.Fprintf(b, "| %s | alone | %s | — |\n", f.build, latencyCells(&f.aloneRead))
		fmt.Fprintf(b, "| %s | with the flood | %s | %.1f |\n", f.build, latencyCells(&f.withRead), f.flood.rate())
	}

	fmt.Fprintf(b, "\n**%d watches on made-up task ids** from the flood key, held while the other caller reads a real task "+
		"with GetTask (%v alone, then %v with the watches)\n\n", o.fairWatches, o.fairWindow/2, o.fairWindow)
	b.WriteString("| build | the other caller's GetTask | ok / calls | p50 | p99 | max | flood's watches at the end: open / ended NOT_FOUND / failed |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, f := range r.fair {
		w := f.watches
		fmt.Fprintf(b, "| %s | alone | %s | — |\n", f.build, latencyCells(&f.aloneGet))
		fmt.Fprintf(b, "| %s | with the watches | %s | %d / %d / %d |\n", f.build, latencyCells(&f.watchGet), w.open, w.notFound, w.failed)
	}

	fmt.Fprintf(b, "\n**Watchers per key**: the flood key opens WatchTask streams on %d real tasks, 256 at a time, until one "+
		"is refused or %d are open; then the other caller opens one\n\n", fairTasks, o.fairStreams)
	b.WriteString("| build | streams the flood opened | refused (reason, limit) | gateway RSS: idle → with them | goroutines: idle → with them | the other caller's watch |\n|---|---:|---|---:|---:|---|\n")
	for _, f := range r.fair {
		sf := f.streams
		refused := "none"
		if sf.refused > 0 {
			refused = fmt.Sprintf("%d (%s, %s)", sf.refused, sf.reason, sf.limit)
		} else if sf.failed > 0 {
			refused = fmt.Sprintf("%d failed (%s)", sf.failed, sf.reason)
		}
		gor := "—"
		if sf.goroutines > 0 {
			gor = fmt.Sprintf("%d → %d", sf.idleGoroutines, sf.goroutines)
		}
		fmt.Fprintf(b, "| %s | %d of %d tried | %s | %s → %s | %s | %s |\n", f.build, sf.opened, sf.attempted, refused,
			mb(sf.idleRSS), mb(sf.rss), gor, sf.otherWatch)
	}
	for _, f := range r.fair {
		for _, e := range []struct {
			what string
			err  error
		}{{"the other caller alone", f.aloneRead.firstErr}, {"the other caller with the flood", f.withRead.firstErr},
			{"the flood", f.flood.firstErr}, {"GetTask alone", f.aloneGet.firstErr}, {"GetTask with the watches", f.watchGet.firstErr},
			{"the made-up watches", f.watches.firstErr}} {
			if e.err != nil {
				fmt.Fprintf(b, "\n%s, %s: first error: %v\n", f.build, e.what, e.err)
			}
		}
	}
	b.WriteString("\n")
}

// latencyCells: ok / calls, p50, p99 and max of the successful calls.
func latencyCells(s *sample) string {
	return fmt.Sprintf("%d / %d | %s | %s | %s", s.calls-s.errs, s.calls, ms(s.quantile(0.5)), ms(s.quantile(0.99)), ms(s.quantile(1)))
}

var errNoFairness = errors.New("-fair-flood, -fair-watches, -fair-streams and -fair-window must be above 0, -fair-open-streams at least 0")
