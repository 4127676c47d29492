package fleet

import (
	"context"
	"errors"
	"log/slog"
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

// Batch is a slice of the selected phones started with one KooPhone call.
type Batch struct {
	Index int
	IDs   []string
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
)

// Result is one phone's outcome.
type Result struct {
	InstanceID string
	Outcome    Outcome
	RawStatus  int // the job's status as KooPhone sent it (2 succeeded, -1 failed); 0 without a job
	ErrorCode  string
	ErrorMsg   string
	Output     string // execute_msg
	Batch      int
	TaskID     string
	JobID      string
	App        *upstream.InstalledApp // ListFleetApps: the app, when the phone has it
}

// BatchEvent reports a batch's start.
type BatchEvent struct {
	Index     int
	IDs       []string
	Started   bool
	TaskID    string
	ErrorCode string
	ErrorMsg  string
}

// Counts are a fleet operation's numbers.
type Counts struct {
	Total, Succeeded, Failed, Running, Pending  int
	BatchesStarted, BatchesFailed, BatchesTotal int
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

// Run starts op on ids in batches and calls emit (from this goroutine only) with every event, ending with the
// summary. batchSize and concurrency are the caller's wishes (see Limits). When ctx ends, no further batch starts,
// Run waits for its goroutines and returns ctx's error with the counts so far (the caller has seen a BatchEvent for
// every batch started). An emit error stops the run the same way and is returned.
func (e *Engine) Run(ctx context.Context, ids []string, op Op, batchSize, concurrency int, emit func(Event) error) (Counts, error) {
	batchSize, concurrency = e.Limits(batchSize, concurrency)
	batches := split(ids, batchSize, requestid.From(ctx))
	r := &run{
		// Unbuffered: a batch holds its concurrency slot until the caller has taken its every event, so a caller
		// that stops (an emit error, a cancel) stops the run before further batches start.
		e: e, op: op, events: make(chan Event),
		counts:  Counts{Total: len(ids), Pending: len(ids), BatchesTotal: len(batches)},
		started: make(map[int]bool, len(batches)),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.dispatch(ctx, batches, concurrency)
	err := r.loop(ctx, emit)
	if err != nil {
		cancel()
		for range r.events { // let every batch goroutine finish
		}
		e.cfg.Logger.Info("fleet operation stopped early", "op", op.Name, "err", err,
			"batches_started", r.counts.BatchesStarted, "batches_total", r.counts.BatchesTotal)
		return r.counts, err
	}
	if err := ctx.Err(); err != nil {
		return r.counts, err
	}
	final := r.counts
	return final, emit(Event{Summary: &final})
}

// split cuts ids into batches of at most size, each with its key.
func split(ids []string, size int, requestID string) []Batch {
	var out []Batch
	for i := 0; i < len(ids); i += size {
		b := Batch{Index: len(out), IDs: ids[i:min(i+size, len(ids))]}
		if requestID != "" {
			b.Key = batchKey(requestID, b.Index)
		}
		out = append(out, b)
	}
	return out
}

type run struct {
	e       *Engine
	op      Op
	events  chan Event
	counts  Counts
	started map[int]bool // batches KooPhone accepted; read and written by loop only
}

// dispatch starts batches in order, at most concurrency in progress at once, until they are all started or ctx
// ends; then it waits for them and closes events.
func (r *run) dispatch(ctx context.Context, batches []Batch, concurrency int) {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		close(r.events)
	}()
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
			c := r.counts
			if err := emit(Event{Progress: &c}); err != nil {
				return err
			}
			tick.Reset(r.e.cfg.ProgressInterval)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *run) count(ev Event) {
	c := &r.counts
	switch {
	case ev.Batch != nil:
		c.Pending -= len(ev.Batch.IDs)
		if ev.Batch.Started {
			r.started[ev.Batch.Index] = true
			c.BatchesStarted++
			c.Running += len(ev.Batch.IDs)
		} else {
			c.BatchesFailed++
		}
	case ev.Result != nil:
		if r.started[ev.Result.Batch] {
			c.Running--
		}
		if ev.Result.Outcome == Succeeded {
			c.Succeeded++
		} else {
			c.Failed++
		}
	}
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
