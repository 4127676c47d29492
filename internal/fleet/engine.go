package fleet

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// MaxBatch is KooPhone's limit on phones per call, and the default batch size.
const MaxBatch = 100

// Defaults of the engine (the gateway's configuration table shows them as its own).
const (
	DefaultConcurrency      = 4
	DefaultProgressInterval = 2 * time.Second
)

// Config tunes the engine; zero fields take the defaults.
type Config struct {
	BatchSize        int           // phones per batch, 1..100 (default 100)
	Concurrency      int           // batches in progress at once: started and not yet ended (default 4)
	ProgressInterval time.Duration // between progress events (default 2s), on Clock
	Clock            clock.Clock   // default: the wall clock
	Logger           *slog.Logger  // default: discard
}

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 || c.BatchSize > MaxBatch {
		c.BatchSize = MaxBatch
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Follower follows a task to its end. The service implements it with its watch hub, so a fleet operation and a
// WatchTask caller of the same task share one poller.
type Follower interface {
	Follow(ctx context.Context, taskID string) (TaskWatch, error)
}

// TaskWatch is one follower of a task: Next returns the task's jobs whenever they change, terminal once every job
// has ended; Close leaves.
type TaskWatch interface {
	Next(ctx context.Context) (jobs []upstream.JobDetail, terminal bool, err error)
	Close()
}

// Batch is a slice of the selected phones started with one KooPhone call: at most 100 phones, all in one region.
type Batch struct {
	Index  int
	Region string
	IDs    []string
	// Key is deterministic for (the caller's request id, Index): the x-request-id the batch's start is sent with,
	// and the key an idempotency layer can store the start under. Empty without a caller request id.
	Key string
}

// Started is what a batch's start returned: a task to follow, or the phones' results at once (SyncCommand,
// BatchRebootInstance, reads).
type Started struct {
	TaskID  string
	Jobs    []upstream.CmdJob
	Results []Result
}

// Op is one fleet operation: how to start a batch.
type Op struct {
	Name  string
	Start func(ctx context.Context, b Batch) (*Started, error)
}

// Outcome is how a phone's part ended.
type Outcome int

const (
	Succeeded   Outcome = iota + 1 // the job succeeded
	Failed                         // the job failed
	BatchFailed                    // KooPhone refused the batch: nothing ran
	Unknown                        // the batch's start or task could not be followed to the end
	NotFound                       // KooPhone does not list the phone (an explicit id): nothing ran, it joined no batch
)

// NoBatch is the Batch of a result that belongs to no batch (NotFound).
const NoBatch = -1

// Result is one phone's outcome.
type Result struct {
	InstanceID string
	Outcome    Outcome
	RawStatus  int // the job's status as KooPhone sent it (2 succeeded, -1 failed); 0 without a job
	ErrorCode  string
	ErrorMsg   string
	Output     string // execute_msg
	Batch      int    // NoBatch for NotFound
	Region     string // the phone's region ("" for NotFound)
	TaskID     string
	JobID      string
	App        *upstream.InstalledApp // ListFleetApps: the app, when the phone has it
}

// BatchEvent reports a batch's start.
type BatchEvent struct {
	Index     int
	Region    string
	IDs       []string
	Started   bool
	TaskID    string
	ErrorCode string
	ErrorMsg  string
}

// Tally is a count of phones and batches.
type Tally struct {
	Total, Succeeded, Failed, Running, Pending  int
	BatchesStarted, BatchesFailed, BatchesTotal int
}

// RegionCounts is one region's part of a fleet operation.
type RegionCounts struct {
	Region string
	Tally
}

// Counts are a fleet operation's numbers: the whole operation (Tally), each region's part (in the order the
// regions' first phones were selected), and the phones KooPhone does not list (NotFound: counted in Total and
// Failed, in no region).
type Counts struct {
	Tally
	NotFound int
	Regions  []RegionCounts
}

// clone is a copy the caller may keep while the run goes on counting.
func (c Counts) clone() Counts {
	c.Regions = slices.Clone(c.Regions)
	return c
}

// Event is one thing to tell the caller; exactly one field is set.
type Event struct {
	Batch    *BatchEvent
	Result   *Result
	Progress *Counts
	Summary  *Counts
}

// Engine runs fleet operations.
type Engine struct {
	cfg    Config
	follow Follower
}

// NewEngine returns an engine that follows tasks with f.
func NewEngine(f Follower, cfg Config) *Engine {
	return &Engine{cfg: cfg.withDefaults(), follow: f}
}

// Limits returns the batch size and concurrency used for a call that asks for batchSize and concurrency (0: the
// defaults); a call never exceeds the engine's configuration.
func (e *Engine) Limits(batchSize, concurrency int) (int, int) {
	if batchSize <= 0 || batchSize > e.cfg.BatchSize {
		batchSize = e.cfg.BatchSize
	}
	if concurrency <= 0 || concurrency > e.cfg.Concurrency {
		concurrency = e.cfg.Concurrency
	}
	return batchSize, concurrency
}

// Run starts op on phones in batches and calls emit (from this goroutine only) with every event, ending with the
// summary. Each batch holds phones of one region only (KooPhone refuses a batch that spans regions); a Missing
// phone gets a NotFound result before any batch starts. batchSize and concurrency are the caller's wishes (see
// Limits). When ctx ends, no further batch starts, Run waits for its goroutines and returns ctx's error with the
// counts so far (the caller has seen a BatchEvent for every batch started). An emit error stops the run the same
// way and is returned.
func (e *Engine) Run(ctx context.Context, phones []Phone, op Op, batchSize, concurrency int, emit func(Event) error) (Counts, error) {
	batchSize, concurrency = e.Limits(batchSize, concurrency)
	batches, missing := split(phones, batchSize, requestid.From(ctx))
	r := &run{
		// Unbuffered: a batch holds its concurrency slot until the caller has taken its every event, so a caller
		// that stops (an emit error, a cancel) stops the run before further batches start.
		e: e, op: op, events: make(chan Event),
		started:  make(map[int]bool, len(batches)),
		regionOf: make([]int, len(batches)),
	}
	r.counts.Total, r.counts.Pending, r.counts.BatchesTotal = len(phones), len(phones), len(batches)
	at := map[string]int{}
	for i, b := range batches {
		k, ok := at[b.Region]
		if !ok {
			k = len(r.counts.Regions)
			at[b.Region] = k
			r.counts.Regions = append(r.counts.Regions, RegionCounts{Region: b.Region})
		}
		r.regionOf[i] = k
		rc := &r.counts.Regions[k]
		rc.Total += len(b.IDs)
		rc.Pending += len(b.IDs)
		rc.BatchesTotal++
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.dispatch(ctx, batches, missing, concurrency)
	err := r.loop(ctx, emit)
	if err != nil {
		cancel()
		for range r.events { // let every batch goroutine finish
		}
		e.cfg.Logger.Info("fleet operation stopped early", "op", op.Name, "err", err,
			"batches_started", r.counts.BatchesStarted, "batches_total", r.counts.BatchesTotal)
		return r.counts.clone(), err
	}
	if err := ctx.Err(); err != nil {
		return r.counts.clone(), err
	}
	final := r.counts.clone()
	return final, emit(Event{Summary: &final})
}

// split cuts phones into batches of at most size phones of one region each, with their keys: the regions in the
// order their first phones come, each region's phones in their order. Missing phones join no batch and are
// returned apart.
func split(phones []Phone, size int, requestID string) (batches []Batch, missing []string) {
	var regions []string
	byRegion := map[string][]string{}
	for _, p := range phones {
		if p.Missing {
			missing = append(missing, p.ID)
			continue
		}
		if _, ok := byRegion[p.Region]; !ok {
			regions = append(regions, p.Region)
		}
		byRegion[p.Region] = append(byRegion[p.Region], p.ID)
	}
	for _, reg := range regions {
		ids := byRegion[reg]
		for i := 0; i < len(ids); i += size {
			b := Batch{Index: len(batches), Region: reg, IDs: ids[i:min(i+size, len(ids))]}
			if requestID != "" {
				b.Key = batchKey(requestID, b.Index)
			}
			batches = append(batches, b)
		}
	}
	return batches, missing
}

type run struct {
	e        *Engine
	op       Op
	events   chan Event
	counts   Counts
	started  map[int]bool // batches KooPhone accepted; read and written by loop only
	regionOf []int        // batch index -> its region's index in counts.Regions
}

// dispatch reports the missing phones, then starts batches in order, at most concurrency in progress at once,
// until they are all started or ctx ends; then it waits for them and closes events.
func (r *run) dispatch(ctx context.Context, batches []Batch, missing []string, concurrency int) {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		close(r.events)
	}()
	for _, id := range missing {
		if !r.send(ctx, Event{Result: &Result{InstanceID: id, Outcome: NotFound, ErrorCode: ReasonNotFound,
			ErrorMsg: ErrNotFound.Error(), Batch: NoBatch}}) {
			return
		}
	}
	slots := make(chan struct{}, concurrency)
	for _, b := range batches {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if ctx.Err() != nil { // both were ready: cancellation wins, so nothing starts after it
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			r.batch(ctx, b)
		}()
	}
}

// loop forwards events to emit, keeps the counts and emits progress every interval, until events closes.
func (r *run) loop(ctx context.Context, emit func(Event) error) error {
	tick := r.e.cfg.Clock.NewTimer(r.e.cfg.ProgressInterval)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-r.events:
			if !ok {
				return nil
			}
			r.count(ev)
			if err := emit(ev); err != nil {
				return err
			}
		case <-tick.C():
			c := r.counts.clone()
			if err := emit(Event{Progress: &c}); err != nil {
				return err
			}
			tick.Reset(r.e.cfg.ProgressInterval)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// count keeps the operation's counts and its regions' counts.
func (r *run) count(ev Event) {
	c := &r.counts
	switch {
	case ev.Batch != nil:
		n := len(ev.Batch.IDs)
		for _, t := range r.tallies(ev.Batch.Index) {
			t.Pending -= n
			if ev.Batch.Started {
				t.BatchesStarted++
				t.Running += n
			} else {
				t.BatchesFailed++
			}
		}
		if ev.Batch.Started {
			r.started[ev.Batch.Index] = true
		}
	case ev.Result != nil && ev.Result.Outcome == NotFound:
		c.Pending--
		c.Failed++
		c.NotFound++
	case ev.Result != nil:
		for _, t := range r.tallies(ev.Result.Batch) {
			if r.started[ev.Result.Batch] {
				t.Running--
			}
			if ev.Result.Outcome == Succeeded {
				t.Succeeded++
			} else {
				t.Failed++
			}
		}
	}
}

// tallies are the counts a batch's events change: the operation's and its region's.
func (r *run) tallies(batch int) [2]*Tally {
	return [2]*Tally{&r.counts.Tally, &r.counts.Regions[r.regionOf[batch]].Tally}
}

// send hands an event to loop; false when the run is over.
func (r *run) send(ctx context.Context, ev Event) bool {
	select {
	case r.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// ErrNoJob is the reason reported for a phone of a started batch that KooPhone gave no job or no result.
var ErrNoJob = errors.New("KooPhone reported nothing for this phone")

// ErrNotFound is the reason reported for an explicit id that KooPhone does not list for the tenant.
var ErrNotFound = errors.New("KooPhone does not list this instance for the tenant; nothing was started on it")
