package service

import (
	"context"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// InstanceService implements koophone.v1.InstanceService. Its streaming RPCs live in watch.go.
type InstanceService struct {
	// Unsafe, not Unimplemented: a missing method is a compile error, so no RPC can answer UNIMPLEMENTED.
	pb.UnsafeInstanceServiceServer
	base
	watch *watchers
}

// SyncCommand runs a command and returns each phone's output.
func (s *InstanceService) SyncCommand(ctx context.Context, req *pb.SyncCommandRequest) (*pb.SyncCommandResponse, error) {
	res, err := s.up.SyncCommand(ctx, upstream.CommandRequest{Command: req.GetCommand(), InstanceIDs: req.GetInstanceIds()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.SyncCommandResponse{CmdResults: make([]*pb.CommandResult, len(res.CmdResults))}
	for i, r := range res.CmdResults {
		out.CmdResults[i] = &pb.CommandResult{
			InstanceId: r.InstanceID,
			Status:     jobStatuses[r.Status],
			RawStatus:  raw(r.Status),
			ErrorCode:  r.ErrorCode,
			ErrorMsg:   r.ErrorMsg,
			ExecuteMsg: r.ExecuteMsg,
		}
	}
	return out, nil
}

// AsyncCommand starts a command as a task.
func (s *InstanceService) AsyncCommand(ctx context.Context, req *pb.AsyncCommandRequest) (*pb.AsyncCommandResponse, error) {
	task, err := s.up.AsyncCommand(ctx, upstream.CommandRequest{Command: req.GetCommand(), InstanceIDs: req.GetInstanceIds()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.AsyncCommandResponse{TaskId: task.TaskID, CmdJobs: cmdJobs(task.CmdJobs)}, nil
}

// GetTask reads a task's jobs.
func (s *InstanceService) GetTask(ctx context.Context, req *pb.GetTaskRequest) (*pb.GetTaskResponse, error) {
	res, err := s.up.GetTask(ctx, req.GetTaskId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.GetTaskResponse{TaskId: req.GetTaskId(), Jobs: jobs(res.Jobs)}, nil
}

// SetVideoConfig sets video parameters.
func (s *InstanceService) SetVideoConfig(ctx context.Context, req *pb.SetVideoConfigRequest) (*pb.SetVideoConfigResponse, error) {
	err := s.up.SetVideoConfig(ctx, upstream.SetVideoConfigRequest{
		InstanceIDs:      req.GetInstanceIds(),
		InstanceSettings: videoSettings(req.GetInstanceSettings()),
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.SetVideoConfigResponse{}, nil
}

// BatchQueryStatus reads phones' states.
func (s *InstanceService) BatchQueryStatus(ctx context.Context, req *pb.BatchQueryStatusRequest) (*pb.BatchQueryStatusResponse, error) {
	res, err := s.up.BatchQueryStatus(ctx, upstream.InstanceIDsRequest{InstanceIDs: req.GetInstanceIds()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.BatchQueryStatusResponse{StatusResults: statusResults(res.StatusResults)}, nil
}

// BatchReset resets phones, as a task.
func (s *InstanceService) BatchReset(ctx context.Context, req *pb.BatchResetRequest) (*pb.BatchResetResponse, error) {
	task, err := s.up.BatchReset(ctx, upstream.InstanceIDsRequest{InstanceIDs: req.GetInstanceIds()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.BatchResetResponse{TaskId: task.TaskID, CmdJobs: cmdJobs(task.CmdJobs)}, nil
}

// GetDeviceToken returns the streaming details of a ready phone.
func (s *InstanceService) GetDeviceToken(ctx context.Context, req *pb.GetDeviceTokenRequest) (*pb.GetDeviceTokenResponse, error) {
	// The enum's numbers are KooPhone's stream_type; 0 (unspecified) is not sent.
	res, err := s.up.GetDeviceTokenWith(ctx, upstream.DeviceTokenRequest{InstanceID: req.GetInstanceId(), StreamType: int(req.GetStreamType())})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return deviceToken(res), nil
}

// AssignInstance assigns phones to users.
func (s *InstanceService) AssignInstance(ctx context.Context, req *pb.AssignInstanceRequest) (*pb.AssignInstanceResponse, error) {
	if err := s.up.AssignInstance(ctx, upstream.UserInstancesRequest{UserInstances: userInstances(req.GetUserInstances())}); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.AssignInstanceResponse{}, nil
}

// UnassignInstance removes phones from users, as a task.
func (s *InstanceService) UnassignInstance(ctx context.Context, req *pb.UnassignInstanceRequest) (*pb.UnassignInstanceResponse, error) {
	task, err := s.up.UnassignInstance(ctx, upstream.UserInstancesRequest{UserInstances: userInstances(req.GetUserInstances())})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.UnassignInstanceResponse{TaskId: task.TaskID, CmdJobs: cmdJobs(task.CmdJobs)}, nil
}

// ListInstances lists one page of phones.
func (s *InstanceService) ListInstances(ctx context.Context, req *pb.ListInstancesRequest) (*pb.ListInstancesResponse, error) {
	page, err := s.up.ListInstances(ctx, upstream.ListInstancesRequest{
		PageNo:         int(req.GetPageNo()),
		PageSize:       int(req.GetPageSize()),
		InstanceID:     req.GetInstanceId(),
		InstanceName:   req.GetInstanceName(),
		QueryStartTime: req.GetQueryStartTime(),
		QueryEndTime:   req.GetQueryEndTime(),
		PoolSceneTag:   req.GetPoolSceneTag(),
		PoolName:       req.GetPoolName(),
		Order:          req.GetOrder(),
		OrderBy:        req.GetOrderBy(),
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListInstancesResponse{
		Result:     make([]*pb.Instance, len(page.Result)),
		PageNo:     raw(page.PageNo),
		PageSize:   raw(page.PageSize),
		TotalCount: raw(page.TotalCount),
	}
	for i, in := range page.Result {
		out.Result[i] = instance(in)
	}
	return out, nil
}

// BatchRebootInstance reboots phones.
func (s *InstanceService) BatchRebootInstance(ctx context.Context, req *pb.BatchRebootInstanceRequest) (*pb.BatchRebootInstanceResponse, error) {
	if err := s.up.BatchRebootInstance(ctx, upstream.InstanceIDsRequest{InstanceIDs: req.GetInstanceIds()}); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.BatchRebootInstanceResponse{}, nil
}

// BatchPrepareInstances prepares a user's phones for streaming.
func (s *InstanceService) BatchPrepareInstances(ctx context.Context, req *pb.BatchPrepareInstancesRequest) (*pb.BatchPrepareInstancesResponse, error) {
	res, err := s.up.BatchPrepareInstances(ctx, upstream.PrepareRequest{UserID: req.GetUserId(), InstanceIDs: req.GetInstanceIds()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.BatchPrepareInstancesResponse{StatusList: make([]*pb.PrepareStatusResult, len(res.StatusList))}
	for i, st := range res.StatusList {
		out.StatusList[i] = prepareStatusResult(st)
	}
	return out, nil
}

// ShowProgress reads a phone's preparation progress.
func (s *InstanceService) ShowProgress(ctx context.Context, req *pb.ShowProgressRequest) (*pb.ShowProgressResponse, error) {
	res, err := s.up.ShowProgress(ctx, upstream.ProgressRequest{UserID: req.GetUserId(), InstanceID: req.GetInstanceId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return progress(res), nil
}

// BatchBackupInstances backs phones up and releases them, as a task.
func (s *InstanceService) BatchBackupInstances(ctx context.Context, req *pb.BatchBackupInstancesRequest) (*pb.BatchBackupInstancesResponse, error) {
	task, err := s.up.BatchBackupInstances(ctx, upstream.InstanceIDsRequest{InstanceIDs: req.GetInstanceIds()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.BatchBackupInstancesResponse{TaskId: task.TaskID, CmdJobs: cmdJobs(task.CmdJobs)}, nil
}

// StopInstancesStreaming stops a phone's stream.
func (s *InstanceService) StopInstancesStreaming(ctx context.Context, req *pb.StopInstancesStreamingRequest) (*pb.StopInstancesStreamingResponse, error) {
	if err := s.up.StopInstancesStreaming(ctx, upstream.InstanceIDRequest{InstanceID: req.GetInstanceId()}); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.StopInstancesStreamingResponse{}, nil
}

// ReleaseInstancesSession frees a stopped stream's session.
func (s *InstanceService) ReleaseInstancesSession(ctx context.Context, req *pb.ReleaseInstancesSessionRequest) (*pb.ReleaseInstancesSessionResponse, error) {
	if err := s.up.ReleaseInstancesSession(ctx, upstream.InstanceIDRequest{InstanceID: req.GetInstanceId()}); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.ReleaseInstancesSessionResponse{}, nil
}
