package service

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"github.com/koophone-gateway/koophone-gateway/internal/fleet"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// FleetOptions tune the fleet operations; zero fields take internal/fleet's defaults.
type FleetOptions struct {
	BatchSize        int           // phones per batch, at most 100
	Concurrency      int           // batches in progress at once
	ProgressInterval time.Duration // between progress messages
	PageSize         int           // ListInstances page size when resolving a filter
	Prefetch         int           // ListInstances pages fetched ahead
}

// FleetService implements koophone.v1.FleetService: it maps the contract to internal/fleet and back. The fan-out
// itself (batches, concurrency, following tasks, counting) lives in internal/fleet.
type FleetService struct {
	pb.UnsafeFleetServiceServer
	base
	engine   *fleet.Engine
	resolver *fleet.Resolver
	// On shutdown every fleet call stops starting batches and ends UNAVAILABLE. The calls' cancel functions are
	// kept so close can cancel them all before it returns: the watch hub closes right after, and no batch may
	// start in between.
	mu      sync.Mutex
	closed  bool
	cancels map[*context.CancelFunc]struct{}
}

func newFleetService(b base, w *watchers, o FleetOptions, watch WatchOptions) *FleetService {
	return &FleetService{
		base: b,
		engine: fleet.NewEngine(taskFollower{w}, fleet.Config{
			BatchSize: o.BatchSize, Concurrency: o.Concurrency, ProgressInterval: o.ProgressInterval,
			Clock: watch.Clock, Logger: b.log,
		}),
		resolver: fleet.NewResolver(b.up, fleet.ResolverConfig{PageSize: o.PageSize, Prefetch: o.Prefetch}),
		cancels:  map[*context.CancelFunc]struct{}{},
	}
}

// close makes every fleet call stop starting batches and end with UNAVAILABLE; batches already started run on in
// KooPhone (their callers have been told which). When it returns, every call's context is cancelled.
func (s *FleetService) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.cancels {
		(*c)()
	}
}

// shuttingDown reports whether close was called.
func (s *FleetService) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// callContext is the call's context, also cancelled when the server shuts down; done releases it.
func (s *FleetService) callContext(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		cancel()
	}
	s.cancels[&cancel] = struct{}{}
	return ctx, func() {
		s.mu.Lock()
		delete(s.cancels, &cancel)
		s.mu.Unlock()
		cancel()
	}
}

// ListAllInstances streams every phone the selector matches, each with the cursor that resumes after it.
func (s *FleetService) ListAllInstances(req *pb.ListAllInstancesRequest, srv grpc.ServerStreamingServer[pb.ListAllInstancesResponse]) error {
	ctx, done := s.callContext(srv.Context())
	defer done()
	err := s.resolver.Walk(ctx, selector(req.GetSelector()), req.GetCursor(), func(in upstream.Instance, c fleet.Cursor) error {
		return srv.Send(&pb.ListAllInstancesResponse{Instance: instance(in), Cursor: c.String()})
	})
	return s.fleetError(ctx, err)
}

// RunFleetCommand runs a command on the selected phones, async (followed tasks) or sync.
func (s *FleetService) RunFleetCommand(req *pb.RunFleetCommandRequest, srv grpc.ServerStreamingServer[pb.FleetEvent]) error {
	op := fleet.AsyncCommand(s.up, req.GetCommand())
	if req.GetMode() == pb.FleetCommandMode_FLEET_COMMAND_MODE_SYNC {
		op = fleet.SyncCommand(s.up, req.GetCommand())
	}
	return s.run(srv, req.GetSelector(), req.GetOptions(), op)
}

// ResetFleet resets the selected phones.
func (s *FleetService) ResetFleet(req *pb.ResetFleetRequest, srv grpc.ServerStreamingServer[pb.FleetEvent]) error {
	return s.run(srv, req.GetSelector(), req.GetOptions(), fleet.Reset(s.up))
}

// RebootFleet reboots the selected phones.
func (s *FleetService) RebootFleet(req *pb.RebootFleetRequest, srv grpc.ServerStreamingServer[pb.FleetEvent]) error {
	return s.run(srv, req.GetSelector(), req.GetOptions(), fleet.Reboot(s.up))
}

// BackupFleet backs the selected phones up.
func (s *FleetService) BackupFleet(req *pb.BackupFleetRequest, srv grpc.ServerStreamingServer[pb.FleetEvent]) error {
	return s.run(srv, req.GetSelector(), req.GetOptions(), fleet.Backup(s.up))
}

// InstallAppOnFleet installs an app on the selected phones.
func (s *FleetService) InstallAppOnFleet(req *pb.InstallAppOnFleetRequest, srv grpc.ServerStreamingServer[pb.FleetEvent]) error {
	app := installAppRequest(&pb.InstallAppRequest{
		FastInstall: req.FastInstall, ObjectName: req.GetObjectName(), FileName: req.GetFileName(),
		ObjectVersion: req.GetObjectVersion(), ObjectSize: req.GetObjectSize(), BizType: req.GetBizType(),
		ContentType: req.GetContentType(), ContentMd5: req.GetContentMd5(), InstallPackageUrl: req.GetInstallPackageUrl(),
	})
	return s.run(srv, req.GetSelector(), req.GetOptions(), fleet.Install(s.up, app))
}

// ListFleetApps reports, per selected phone, whether it has the app and at which version.
func (s *FleetService) ListFleetApps(req *pb.ListFleetAppsRequest, srv grpc.ServerStreamingServer[pb.FleetEvent]) error {
	return s.run(srv, req.GetSelector(), req.GetOptions(), fleet.FindApp(s.up, req.GetPackage()))
}

// run resolves the selector and runs op on the phones through the engine.
func (s *FleetService) run(srv grpc.ServerStreamingServer[pb.FleetEvent], sel *pb.FleetSelector, o *pb.FleetOptions, op fleet.Op) error {
	ctx, done := s.callContext(srv.Context())
	defer done()
	phones, err := s.resolver.Resolve(ctx, selector(sel))
	if err != nil {
		return s.fleetError(ctx, err)
	}
	_, err = s.engine.Run(ctx, phones, op, int(o.GetBatchSize()), int(o.GetConcurrency()), func(ev fleet.Event) error {
		return srv.Send(fleetEvent(ev))
	})
	return s.fleetError(ctx, err)
}

// fleetError maps the end of a fleet call: the caller's cancel or deadline is theirs, a bad cursor is the
// caller's mistake, a failed Send is already known to gRPC, and an upstream failure maps like any call's.
func (s *FleetService) fleetError(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case s.shuttingDown():
		return withDetails(status.New(codes.Unavailable, "the server is shutting down; batches already announced go on in KooPhone"),
			errcat.Info(pb.ErrorReason_SERVER_SHUTTING_DOWN, nil))
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, fleet.ErrBadCursor):
		return withDetails(status.New(codes.InvalidArgument, "invalid request: cursor: "+err.Error()),
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
				Field: "cursor", Description: "must be a cursor this RPC returned for the same selector", Reason: "cursor.valid",
			}}})
	}
	if _, ok := upstream.AsError(err); ok {
		return s.fail(ctx, err)
	}
	return err
}

// selector maps the contract's selector (already validated: ids or a filter) to the fleet's.
func selector(in *pb.FleetSelector) fleet.Selector {
	f := in.GetFilter()
	if f == nil {
		return fleet.Selector{IDs: in.GetInstanceIds()}
	}
	out := &fleet.Filter{All: f.GetAll(), NamePrefix: f.GetNamePrefix(), PoolSceneTag: f.GetPoolSceneTag(),
		PoolName: f.GetPoolName(), AssignUser: f.GetAssignUser(), Region: f.GetRegion()}
	if name := f.GetRunningStatus(); name != "" {
		want := pb.RunningStatus(pb.RunningStatus_value[name])
		for raw, st := range runningStatuses {
			if st == want {
				out.RunningStatus = &raw
			}
		}
	}
	return fleet.Selector{Filter: out}
}

var fleetOutcomes = map[fleet.Outcome]pb.FleetOutcome{
	fleet.Succeeded:   pb.FleetOutcome_FLEET_OUTCOME_SUCCEEDED,
	fleet.Failed:      pb.FleetOutcome_FLEET_OUTCOME_FAILED,
	fleet.BatchFailed: pb.FleetOutcome_FLEET_OUTCOME_BATCH_FAILED,
	fleet.Unknown:     pb.FleetOutcome_FLEET_OUTCOME_UNKNOWN,
	fleet.NotFound:    pb.FleetOutcome_FLEET_OUTCOME_NOT_FOUND,
}

func fleetEvent(ev fleet.Event) *pb.FleetEvent {
	switch {
	case ev.Batch != nil:
		b := ev.Batch
		return &pb.FleetEvent{Event: &pb.FleetEvent_Batch{Batch: &pb.FleetBatch{
			Index: raw(b.Index), InstanceIds: b.IDs, Started: b.Started, TaskId: b.TaskID,
			ErrorCode: b.ErrorCode, ErrorMsg: b.ErrorMsg, Region: b.Region,
		}}}
	case ev.Result != nil:
		r := ev.Result
		out := &pb.FleetPhoneResult{
			InstanceId: r.InstanceID, Outcome: fleetOutcomes[r.Outcome], RawStatus: raw(r.RawStatus),
			ErrorCode: r.ErrorCode, ErrorMsg: r.ErrorMsg, ExecuteMsg: r.Output, Batch: raw(r.Batch), TaskId: r.TaskID,
			Region: r.Region,
		}
		if r.RawStatus != 0 {
			out.Status = jobStatuses[r.RawStatus]
		}
		if a := r.App; a != nil {
			out.App = &pb.InstalledApp{AppName: a.AppName, AppVersion: a.AppVersion, AppPkg: a.AppPkg, IconUrl: a.IconURL}
		}
		return &pb.FleetEvent{Event: &pb.FleetEvent_Result{Result: out}}
	case ev.Progress != nil:
		return &pb.FleetEvent{Event: &pb.FleetEvent_Progress{Progress: fleetCounts(*ev.Progress)}}
	}
	c := ev.Summary
	return &pb.FleetEvent{Event: &pb.FleetEvent_Summary{Summary: &pb.FleetSummary{
		Counts: fleetCounts(*c), BatchesFailed: raw(c.BatchesFailed),
	}}}
}

func fleetCounts(c fleet.Counts) *pb.FleetProgress {
	out := &pb.FleetProgress{
		Total: raw(c.Total), Succeeded: raw(c.Succeeded), Failed: raw(c.Failed), Running: raw(c.Running),
		Pending: raw(c.Pending), BatchesStarted: raw(c.BatchesStarted), BatchesTotal: raw(c.BatchesTotal),
		NotFound: raw(c.NotFound), Regions: make([]*pb.FleetRegionProgress, len(c.Regions)),
	}
	for i, r := range c.Regions {
		out.Regions[i] = &pb.FleetRegionProgress{
			Region: r.Region, Total: raw(r.Total), Succeeded: raw(r.Succeeded), Failed: raw(r.Failed),
			Running: raw(r.Running), Pending: raw(r.Pending), BatchesStarted: raw(r.BatchesStarted),
			BatchesTotal: raw(r.BatchesTotal), BatchesFailed: raw(r.BatchesFailed),
		}
	}
	return out
}

// taskFollower lets the fleet engine follow tasks through the same hub as WatchTask, so a fleet operation and a
// WatchTask caller of the same task share one poller.
type taskFollower struct{ w *watchers }

func (f taskFollower) Follow(ctx context.Context, taskID string) (fleet.TaskWatch, error) {
	sub, err := f.w.watchTask(ctx, taskID)
	if err != nil {
		return nil, err
	}
	return hubWatch{sub}, nil
}

type hubWatch struct {
	sub stream.Subscription[*pb.WatchTaskResponse]
}

func (h hubWatch) Next(ctx context.Context) ([]upstream.JobDetail, bool, error) {
	snap, err := h.sub.Next(ctx)
	if err != nil {
		return nil, false, err
	}
	js := snap.Value.GetJobs()
	out := make([]upstream.JobDetail, len(js))
	for i, j := range js {
		out[i] = upstream.JobDetail{JobID: j.GetJobId(), Status: int(j.GetRawStatus()), ErrorCode: j.GetErrorCode(),
			ErrorMsg: j.GetErrorMsg(), ExecuteMsg: j.GetExecuteMsg()}
	}
	return out, snap.Terminal, nil
}

func (h hubWatch) Close() { h.sub.Close() }
