package fleet

import (
	"context"
	"errors"
	"strconv"

	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Reasons the engine reports itself (KooPhone's own codes are passed through).
const (
	ReasonNoJob        = "FLEET_NO_JOB"        // KooPhone's answer named no job or result for the phone
	ReasonFollowFailed = "FLEET_FOLLOW_FAILED" // the batch's task could not be followed to the end
	ReasonStartUnknown = "FLEET_START_UNKNOWN" // the batch's start failed without a KooPhone answer
	ReasonNotFound     = "FLEET_NOT_FOUND"     // KooPhone does not list the explicit id: it joined no batch
)

// batchKey is the batch's deterministic key: the caller's request id (cut so that the key stays a valid
// x-request-id of at most 128 characters) and the batch's number.
func batchKey(requestID string, index int) string {
	if len(requestID) > 112 {
		requestID = requestID[:112]
	}
	return requestID + "-b" + strconv.Itoa(index)
}

// startBatch is the one place a batch starts. It is called once per batch and never retried: a batch start is a
// write (a command, a reset, an install), and only the caller can decide to repeat it after an unknown outcome.
// The batch's key travels as its x-request-id, where an idempotency layer can find it.
func (r *run) startBatch(ctx context.Context, b Batch) (*Started, error) {
	if b.Key != "" {
		ctx = requestid.With(ctx, b.Key)
	}
	return r.op.Start(ctx, b)
}

// batch starts one batch, reports it, and reports each phone's result as it ends.
func (r *run) batch(ctx context.Context, b Batch) {
	st, err := r.startBatch(ctx, b)
	if ctx.Err() != nil {
		// Cancelled while the start was in flight: it may or may not have reached KooPhone, and the caller can no
		// longer be told. Leave a trace for the operator.
		r.e.cfg.Logger.Warn("fleet batch start cancelled in flight; its outcome is unknown",
			"op", r.op.Name, "batch", b.Index, "batch_key", b.Key, "phones", len(b.IDs), "started", err == nil)
		return
	}
	if err != nil {
		outcome, code, msg := startFailure(err)
		if !r.send(ctx, Event{Batch: &BatchEvent{Index: b.Index, Region: b.Region, IDs: b.IDs, ErrorCode: code, ErrorMsg: msg}}) {
			return
		}
		for _, id := range b.IDs {
			if !r.send(ctx, Event{Result: &Result{InstanceID: id, Outcome: outcome, ErrorCode: code, ErrorMsg: msg, Batch: b.Index, Region: b.Region}}) {
				return
			}
		}
		return
	}
	if !r.send(ctx, Event{Batch: &BatchEvent{Index: b.Index, Region: b.Region, IDs: b.IDs, Started: true, TaskID: st.TaskID}}) {
		return
	}
	if st.TaskID == "" {
		r.immediate(ctx, b, st.Results)
		return
	}
	r.followTask(ctx, b, st)
}

// startFailure classifies a failed start: KooPhone's refusal (it answered with a code) ran nothing; anything else
// may have reached KooPhone.
func startFailure(err error) (Outcome, string, string) {
	if ue, ok := upstream.AsError(err); ok && ue.Code != "" {
		return BatchFailed, ue.Code, ue.Message
	}
	return Unknown, ReasonStartUnknown, err.Error()
}

// immediate reports results that came with the start, and a phone without one as unknown.
func (r *run) immediate(ctx context.Context, b Batch, results []Result) {
	got := make(map[string]bool, len(results))
	for _, res := range results {
		res.Batch, res.Region = b.Index, b.Region
		got[res.InstanceID] = true
		if !r.send(ctx, Event{Result: &res}) {
			return
		}
	}
	r.missing(ctx, b, "", got, ReasonNoJob, ErrNoJob.Error())
}

// missing reports every phone of b not in done as unknown.
func (r *run) missing(ctx context.Context, b Batch, taskID string, done map[string]bool, code, msg string) {
	for _, id := range b.IDs {
		if !done[id] {
			done[id] = true
			if !r.send(ctx, Event{Result: &Result{InstanceID: id, Outcome: Unknown, ErrorCode: code, ErrorMsg: msg, Batch: b.Index,
				Region: b.Region, TaskID: taskID}}) {
				return
			}
		}
	}
}

// followTask reports each job of the batch's task as it ends (GetTask names jobs by job id only: cmd_jobs ties
// them to phones).
func (r *run) followTask(ctx context.Context, b Batch, st *Started) {
	phoneOf := make(map[string]string, len(st.Jobs))
	for _, j := range st.Jobs {
		phoneOf[j.JobID] = j.InstanceID
	}
	done := make(map[string]bool, len(b.IDs))
	w, err := r.e.follow.Follow(ctx, st.TaskID)
	if err != nil {
		if ctx.Err() == nil {
			r.missing(ctx, b, st.TaskID, done, ReasonFollowFailed, err.Error())
		}
		return
	}
	defer w.Close()
	for {
		jobs, terminal, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				r.missing(ctx, b, st.TaskID, done, ReasonFollowFailed, err.Error())
			}
			return
		}
		for _, j := range jobs {
			id, ok := phoneOf[j.JobID]
			if !ok || done[id] || j.Status == jobRunning {
				continue
			}
			done[id] = true
			res := Result{InstanceID: id, Outcome: Failed, RawStatus: j.Status, ErrorCode: j.ErrorCode, ErrorMsg: j.ErrorMsg,
				Output: j.ExecuteMsg, Batch: b.Index, Region: b.Region, TaskID: st.TaskID, JobID: j.JobID}
			if j.Status == jobSucceeded {
				res.Outcome = Succeeded
			}
			if !r.send(ctx, Event{Result: &res}) {
				return
			}
		}
		if terminal {
			r.missing(ctx, b, st.TaskID, done, ReasonNoJob, ErrNoJob.Error())
			return
		}
	}
}

// KooPhone's job states.
const (
	jobRunning   = 1
	jobSucceeded = 2
)
