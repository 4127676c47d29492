package service

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"go.opentelemetry.io/otel/trace"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// The streaming RPCs. Each watched thing is polled by one poller in a stream.Hub, shared by every watcher of it;
// a stream's goroutine only waits for the next snapshot and sends it, so a slow client never slows the poller.

const (
	kindTask    = "task"
	kindPrepare = "prepare"
)

// Reasons of the streaming RPCs' own failures (the gateway's domain, errcat.Domain).
var (
	ReasonShuttingDown  = errcat.Reason(pb.ErrorReason_SERVER_SHUTTING_DOWN)
	ReasonNotAssigned   = errcat.Reason(pb.ErrorReason_INSTANCE_NOT_ASSIGNED)
	ReasonInstanceBusy  = errcat.Reason(pb.ErrorReason_INSTANCE_BUSY)
	ReasonPrepareFailed = errcat.Reason(pb.ErrorReason_PREPARE_FAILED)
)

// DefaultStepTimeout bounds each upstream call a stream makes besides its polls (--watch-step-timeout).
const DefaultStepTimeout = 30 * time.Second

// WatchOptions is the polling policy of the streams; zero fields take the stream package's defaults.
type WatchOptions struct {
	FirstInterval time.Duration
	MaxInterval   time.Duration
	TerminalTTL   time.Duration
	PollTimeout   time.Duration  // one GetTask/ShowProgress call; it runs on Clock
	StepTimeout   time.Duration  // each other upstream call a stream makes (AsyncCommand, prepare, assign, token); default DefaultStepTimeout
	MaxPollers    int            // things polled at once per hub on this replica; 0: no cap
	Clock         clock.Clock    // tests drive polling with a fake clock
	Rand          func() float64 // tests make jitter deterministic
	Peer          stream.Peer    // shares each poller with the other replicas (internal/coord); nil: none
	// Tracer makes each poll a span linked to the watches it serves; nil (no trace exported): no spans.
	Tracer trace.TracerProvider
}

// watchers holds the hubs: tasks (GetTask) and preparations (ShowProgress). Values are the messages sent, built
// once per change and shared read-only by every watcher.
type watchers struct {
	up       Upstream
	stepTime time.Duration // deadline of each upstream call a stream makes besides its polls
	tasks    stream.Hub[*pb.WatchTaskResponse]
	progress stream.Hub[*pb.WatchPrepareProgressResponse]
}

func newWatchers(up Upstream, o WatchOptions) *watchers {
	cfg := stream.Config{
		Clock:         o.Clock,
		FirstInterval: o.FirstInterval,
		MaxInterval:   o.MaxInterval,
		TerminalTTL:   o.TerminalTTL,
		PollTimeout:   o.PollTimeout,
		Rand:          o.Rand,
		Classify:      classifyPollError,
		MaxPollers:    o.MaxPollers,
		Tracer:        o.Tracer,
	}
	// A finished task stays finished, so its last state may serve late watchers. A phone's preparation does not:
	// "ready" ends with the next backup, and the same user and phone are prepared again later, so a cached
	// "ready" (or a cached "not bound" error) would be a lie to the next watcher.
	progressCfg := cfg
	progressCfg.TerminalTTL, progressCfg.ErrorTTL = -1, -1
	stepTime := o.StepTimeout
	if stepTime <= 0 {
		stepTime = DefaultStepTimeout
	}
	return &watchers{
		up:       up,
		stepTime: stepTime,
		tasks:    stream.NewShared(cfg, o.Peer, protoCodec[*pb.WatchTaskResponse]()),
		progress: stream.NewShared(progressCfg, o.Peer, protoCodec[*pb.WatchPrepareProgressResponse]()),
	}
}

// protoCodec carries a hub's messages between replicas.
func protoCodec[T interface {
	proto.Message
	*M
}, M any]() stream.Codec[T] {
	return stream.Codec[T]{
		Marshal: func(v T) ([]byte, error) { return proto.Marshal(v) },
		Unmarshal: func(b []byte) (T, error) {
			v := T(new(M))
			return v, proto.Unmarshal(b, v)
		},
	}
}

func (w *watchers) close() {
	w.tasks.Close()
	w.progress.Close()
}

// step runs one upstream call of a stream under the step timeout: a stream has no deadline of its own, and a
// KooPhone that sends headers and half a body must not hold it forever.
func step[T any](ctx context.Context, w *watchers, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, w.stepTime)
	defer cancel()
	return call(ctx)
}

// classifyPollError retries what may pass (KooPhone unreachable, overloaded, throttling with Retry-After) and
// ends the streams on anything else (unknown task, no permission…).
func classifyPollError(err error) (bool, time.Duration) {
	ue, ok := upstream.AsError(err)
	if !ok {
		return false, 0
	}
	code, _, _ := classify(ue)
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true, ue.RetryAfter
	case codes.ResourceExhausted:
		// Throttling passes; a quota (no stock, no space) does not, and only throttling says when to come back.
		return ue.RetryAfter > 0 || ue.HTTPStatus == 429, ue.RetryAfter
	}
	return false, 0
}

// pollFairness says on whose share of the KooPhone quota a poller's polls wait: its first poll on the share of the
// caller who started it (so a flood of watches on made-up ids queues behind its own caller, and a watch on a task
// KooPhone does not know ends with NOT_FOUND as soon as that caller's turn comes), every later one on the watch
// polls' reserved share (they serve every watcher of the thing).
func pollFairness(ctx context.Context) func(context.Context) context.Context {
	starter := upstream.FairnessKey(ctx)
	var polled atomic.Bool
	return func(ctx context.Context) context.Context {
		if !polled.Swap(true) && starter != "" {
			return upstream.WithFairnessKey(ctx, starter)
		}
		return upstream.WithPollClass(ctx)
	}
}

// owned is the ctx a subscription is made with. Every caller closes its subscription itself (follow, and the
// fleet's followTask, defer Close) and waits in Next on ctx, so the subscription need not watch ctx as well:
// without context.AfterFunc's registration in the stream's context (a children map the first time) an idle
// watcher holds ~350 bytes less. A ctx that has already ended is refused, as Watch refuses it.
func owned(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

// watchTask and watchProgress subscribe to a task or a preparation; the caller must Close the subscription.
func (w *watchers) watchTask(ctx context.Context, taskID string) (stream.Subscription[*pb.WatchTaskResponse], error) {
	ctx, err := owned(ctx)
	if err != nil {
		return nil, err
	}
	key := stream.Key{Identity: w.up.Identity(), Kind: kindTask, ID: taskID}
	fair := pollFairness(ctx)
	return w.tasks.Watch(ctx, key, stream.Source[*pb.WatchTaskResponse]{
		Poll: func(ctx context.Context) (*pb.WatchTaskResponse, error) {
			res, err := w.up.GetTask(fair(ctx), taskID)
			if err != nil {
				return nil, err
			}
			return taskSnapshot(taskID, res.Jobs), nil
		},
		Terminal: func(m *pb.WatchTaskResponse) bool { return m.GetTerminal() },
		Equal:    func(a, b *pb.WatchTaskResponse) bool { return proto.Equal(a, b) },
	})
}

// taskSnapshot builds the message for one state of a task. A task is finished when no job is running and every
// job has ended; one with no jobs at all has nothing to wait for.
func taskSnapshot(taskID string, details []upstream.JobDetail) *pb.WatchTaskResponse {
	m := &pb.WatchTaskResponse{TaskId: taskID, Jobs: jobs(details)}
	for _, j := range m.Jobs {
		switch j.GetStatus() {
		case pb.JobStatus_JOB_STATUS_SUCCEEDED:
			m.SucceededCount++
		case pb.JobStatus_JOB_STATUS_FAILED:
			m.FailedCount++
		default:
			m.RunningCount++ // running, or a state this contract does not know yet: keep watching
		}
	}
	m.Terminal = m.RunningCount == 0
	return m
}

// progressKey names one (user, phone) pair. The user id's length comes first, so no two pairs share a key whatever
// characters the ids hold (a separator alone, such as NUL, could also occur inside an id).
func progressKey(userID, instanceID string) string {
	return strconv.Itoa(len(userID)) + ":" + userID + "/" + instanceID
}

func (w *watchers) watchProgress(ctx context.Context, userID, instanceID string) (stream.Subscription[*pb.WatchPrepareProgressResponse], error) {
	ctx, err := owned(ctx)
	if err != nil {
		return nil, err
	}
	key := stream.Key{Identity: w.up.Identity(), Kind: kindPrepare, ID: progressKey(userID, instanceID)}
	fair := pollFairness(ctx)
	return w.progress.Watch(ctx, key, stream.Source[*pb.WatchPrepareProgressResponse]{
		Poll: func(ctx context.Context) (*pb.WatchPrepareProgressResponse, error) {
			res, err := w.up.ShowProgress(fair(ctx), upstream.ProgressRequest{UserID: userID, InstanceID: instanceID})
			if err != nil {
				return nil, err
			}
			p := progress(res)
			return &pb.WatchPrepareProgressResponse{
				Status:       p.Status,
				RawStatus:    p.RawStatus,
				WaitingCount: p.WaitingCount,
				Terminal:     p.Status == pb.ProgressStatus_PROGRESS_STATUS_READY || p.Status == pb.ProgressStatus_PROGRESS_STATUS_FAILED,
			}, nil
		},
		Terminal: func(m *pb.WatchPrepareProgressResponse) bool { return m.GetTerminal() },
		Equal:    func(a, b *pb.WatchPrepareProgressResponse) bool { return proto.Equal(a, b) },
	})
}

// follow sends every snapshot of sub through send until the terminal one; it returns the stream's final error.
func follow[T any](ctx context.Context, b base, sub stream.Subscription[T], send func(T) error) error {
	defer sub.Close()
	for {
		snap, err := sub.Next(ctx)
		if err != nil {
			return b.watchError(ctx, err)
		}
		if err := send(snap.Value); err != nil {
			return err // the client is gone; gRPC already knows why
		}
		if snap.Terminal {
			return nil
		}
	}
}

// watchError maps the end of a watch to the caller's status: shutdown is UNAVAILABLE (reconnect to another
// replica), the caller's own cancel or deadline is theirs, and an upstream failure maps like any call's.
func (b base) watchError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case errors.Is(err, stream.ErrTooManyPollers):
		return withDetails(status.New(codes.ResourceExhausted, "this replica watches as many things as it may; retry later"),
			errcat.Info(pb.ErrorReason_TOO_MANY_WATCHES, nil),
			&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	case errors.Is(err, stream.ErrClosed):
		return withDetails(status.New(codes.Unavailable, "the server is shutting down; reconnect to continue watching"),
			errcat.Info(pb.ErrorReason_SERVER_SHUTTING_DOWN, nil))
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	}
	return b.fail(ctx, err)
}

// WatchTask streams a task's jobs until every one has ended.
func (s *InstanceService) WatchTask(req *pb.WatchTaskRequest, srv grpc.ServerStreamingServer[pb.WatchTaskResponse]) error {
	ctx := srv.Context()
	sub, err := s.watch.watchTask(ctx, req.GetTaskId())
	if err != nil {
		return s.watchError(ctx, err)
	}
	return follow(ctx, s.base, sub, srv.Send)
}

// WatchPrepareProgress streams a phone's preparation until it is ready or has failed.
func (s *InstanceService) WatchPrepareProgress(req *pb.WatchPrepareProgressRequest, srv grpc.ServerStreamingServer[pb.WatchPrepareProgressResponse]) error {
	ctx := srv.Context()
	sub, err := s.watch.watchProgress(ctx, req.GetUserId(), req.GetInstanceId())
	if err != nil {
		return s.watchError(ctx, err)
	}
	return follow(ctx, s.base, sub, srv.Send)
}

// RunAsyncCommand starts a command and streams its jobs, each tagged with its phone, to the end.
func (s *InstanceService) RunAsyncCommand(req *pb.RunAsyncCommandRequest, srv grpc.ServerStreamingServer[pb.RunAsyncCommandResponse]) error {
	ctx := srv.Context()
	task, err := step(ctx, s.watch, func(ctx context.Context) (*upstream.Task, error) {
		return s.up.AsyncCommand(ctx, upstream.CommandRequest{Command: req.GetCommand(), InstanceIDs: req.GetInstanceIds()})
	})
	if err != nil {
		return s.fail(ctx, err)
	}
	if err := srv.Send(&pb.RunAsyncCommandResponse{TaskId: task.TaskID, CmdJobs: cmdJobs(task.CmdJobs)}); err != nil {
		return err
	}
	phoneOf := make(map[string]string, len(task.CmdJobs))
	for _, j := range task.CmdJobs {
		phoneOf[j.JobID] = j.InstanceID
	}
	sub, err := s.watch.watchTask(ctx, task.TaskID)
	if err != nil {
		return s.watchError(ctx, err)
	}
	return follow(ctx, s.base, sub, func(m *pb.WatchTaskResponse) error {
		out := &pb.RunAsyncCommandResponse{
			TaskId:         m.GetTaskId(),
			Terminal:       m.GetTerminal(),
			RunningCount:   m.GetRunningCount(),
			SucceededCount: m.GetSucceededCount(),
			FailedCount:    m.GetFailedCount(),
			Jobs:           make([]*pb.Job, len(m.GetJobs())),
		}
		for i, j := range m.GetJobs() {
			// The snapshot is shared by every watcher: copy before adding this caller's phone ids.
			c := proto.Clone(j).(*pb.Job)
			c.InstanceId = phoneOf[j.GetJobId()]
			out.Jobs[i] = c
		}
		return srv.Send(out)
	})
}

// OpenSession prepares a user's phone (assigning it first when asked), streams the preparation, and ends with
// the phone's streaming details.
func (s *InstanceService) OpenSession(req *pb.OpenSessionRequest, srv grpc.ServerStreamingServer[pb.OpenSessionResponse]) error {
	ctx := srv.Context()
	user, phone := req.GetUserId(), req.GetInstanceId()
	prepared, err := s.prepareOne(ctx, user, phone)
	if err != nil {
		return s.fail(ctx, err)
	}
	assigned := false
	if prepared.GetStatus() == pb.PrepareStatus_PREPARE_STATUS_WAITING_FOR_ASSIGNMENT && req.GetAssign() {
		_, err := step(ctx, s.watch, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, s.up.AssignInstance(ctx, upstream.UserInstancesRequest{UserInstances: []upstream.UserInstance{{UserID: user, InstanceID: phone}}})
		})
		if err != nil {
			return s.fail(ctx, err)
		}
		assigned = true
		if prepared, err = s.prepareOne(ctx, user, phone); err != nil {
			return s.fail(ctx, err)
		}
	}
	if err := srv.Send(&pb.OpenSessionResponse{Step: &pb.OpenSessionResponse_Prepared{Prepared: prepared}, Assigned: assigned}); err != nil {
		return err
	}
	switch prepared.GetStatus() {
	case pb.PrepareStatus_PREPARE_STATUS_READY, pb.PrepareStatus_PREPARE_STATUS_WAITING_FOR_RESTORE, pb.PrepareStatus_PREPARE_STATUS_UNSPECIFIED:
		// Ready, queued, or a state this contract does not know yet: follow the progress.
	case pb.PrepareStatus_PREPARE_STATUS_WAITING_FOR_ASSIGNMENT:
		return sessionError(codes.FailedPrecondition, ReasonNotAssigned,
			"instance "+phone+" is not assigned to user "+user+": call AssignInstance, or set assign")
	default:
		return sessionError(codes.FailedPrecondition, ReasonInstanceBusy,
			"instance "+phone+" cannot be prepared now ("+prepared.GetStatus().String()+"); try again later")
	}

	sub, err := s.watch.watchProgress(ctx, user, phone)
	if err != nil {
		return s.watchError(ctx, err)
	}
	var last *pb.WatchPrepareProgressResponse
	err = follow(ctx, s.base, sub, func(m *pb.WatchPrepareProgressResponse) error {
		last = m
		return srv.Send(&pb.OpenSessionResponse{
			Step:     &pb.OpenSessionResponse_Progress{Progress: &pb.ShowProgressResponse{Status: m.GetStatus(), RawStatus: m.GetRawStatus(), WaitingCount: m.GetWaitingCount()}},
			Assigned: assigned,
		})
	})
	if err != nil {
		return err
	}
	if last.GetStatus() != pb.ProgressStatus_PROGRESS_STATUS_READY {
		return sessionError(codes.FailedPrecondition, ReasonPrepareFailed, "preparing instance "+phone+" failed")
	}
	token, err := step(ctx, s.watch, func(ctx context.Context) (*upstream.DeviceToken, error) { return s.up.GetDeviceToken(ctx, phone) })
	if err != nil {
		return s.fail(ctx, err)
	}
	return srv.Send(&pb.OpenSessionResponse{Step: &pb.OpenSessionResponse_Session{Session: deviceToken(token)}, Assigned: assigned})
}

// prepareOne asks KooPhone to prepare one phone and returns that phone's state.
func (s *InstanceService) prepareOne(ctx context.Context, user, phone string) (*pb.PrepareStatusResult, error) {
	res, err := step(ctx, s.watch, func(ctx context.Context) (*upstream.PrepareResult, error) {
		return s.up.BatchPrepareInstances(ctx, upstream.PrepareRequest{UserID: user, InstanceIDs: []string{phone}})
	})
	if err != nil {
		return nil, err
	}
	for _, st := range res.StatusList {
		if st.InstanceID == phone {
			return prepareStatusResult(st), nil
		}
	}
	// KooPhone accepted the call but said nothing of the phone: there is no state to report, and guessing one
	// could open a session on a phone that is not being prepared.
	return nil, status.Errorf(codes.Internal, "KooPhone accepted the prepare request but did not report instance %s", phone)
}

func sessionError(code codes.Code, reason, msg string) error {
	return withDetails(status.New(code, msg), &errdetails.ErrorInfo{Reason: reason, Domain: errcat.Domain})
}
