package service

import (
	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// KooPhone's integers → contract enums. Each map lists every documented upstream value explicitly (zero and -1
// included); anything else becomes *_UNSPECIFIED while the raw integer travels beside it.

var jobStatuses = map[int]pb.JobStatus{
	1:  pb.JobStatus_JOB_STATUS_RUNNING,
	2:  pb.JobStatus_JOB_STATUS_SUCCEEDED,
	-1: pb.JobStatus_JOB_STATUS_FAILED,
}

var instanceStates = map[int]pb.InstanceState{
	0: pb.InstanceState_INSTANCE_STATE_IDLE,
	1: pb.InstanceState_INSTANCE_STATE_RESTORING,
	2: pb.InstanceState_INSTANCE_STATE_DATA_LOADED,
	3: pb.InstanceState_INSTANCE_STATE_STREAMING,
	4: pb.InstanceState_INSTANCE_STATE_BACKING_UP,
	5: pb.InstanceState_INSTANCE_STATE_BACKUP_FAILED,
	6: pb.InstanceState_INSTANCE_STATE_RESTORE_FAILED,
	7: pb.InstanceState_INSTANCE_STATE_DATA_LOADED_SECONDARY,
}

var runningStatuses = map[int]pb.RunningStatus{
	0: pb.RunningStatus_RUNNING_STATUS_UNKNOWN,
	1: pb.RunningStatus_RUNNING_STATUS_STOPPED,
	2: pb.RunningStatus_RUNNING_STATUS_RUNNING,
	3: pb.RunningStatus_RUNNING_STATUS_GOING_OFFLINE,
	4: pb.RunningStatus_RUNNING_STATUS_STARTING,
	5: pb.RunningStatus_RUNNING_STATUS_SHUT_DOWN,
}

var frozenStatuses = map[int]pb.FrozenStatus{
	0: pb.FrozenStatus_FROZEN_STATUS_NORMAL,
	1: pb.FrozenStatus_FROZEN_STATUS_FROZEN,
}

var loginStatuses = map[int]pb.LoginStatus{
	0: pb.LoginStatus_LOGIN_STATUS_LOGGED_OUT,
	1: pb.LoginStatus_LOGIN_STATUS_LOGGED_IN,
}

var assignStatuses = map[int]pb.AssignStatus{
	0: pb.AssignStatus_ASSIGN_STATUS_UNASSIGNED,
	1: pb.AssignStatus_ASSIGN_STATUS_ASSIGNED,
}

var transferStatuses = map[int]pb.TransferStatus{
	0: pb.TransferStatus_TRANSFER_STATUS_PREPARING,
	1: pb.TransferStatus_TRANSFER_STATUS_RUNNING,
	2: pb.TransferStatus_TRANSFER_STATUS_SUCCEEDED,
	3: pb.TransferStatus_TRANSFER_STATUS_FAILED,
	4: pb.TransferStatus_TRANSFER_STATUS_OTHER,
}

var prepareStatuses = map[int]pb.PrepareStatus{
	0:  pb.PrepareStatus_PREPARE_STATUS_READY,
	1:  pb.PrepareStatus_PREPARE_STATUS_WAITING_FOR_RESTORE,
	2:  pb.PrepareStatus_PREPARE_STATUS_WAITING_FOR_ASSIGNMENT,
	3:  pb.PrepareStatus_PREPARE_STATUS_BACKING_UP,
	4:  pb.PrepareStatus_PREPARE_STATUS_RESETTING,
	5:  pb.PrepareStatus_PREPARE_STATUS_REBOOTING,
	6:  pb.PrepareStatus_PREPARE_STATUS_OFFLINE,
	7:  pb.PrepareStatus_PREPARE_STATUS_SWITCHING_DEVICE,
	8:  pb.PrepareStatus_PREPARE_STATUS_RESTORING_EXPIRED_BACKUP,
	9:  pb.PrepareStatus_PREPARE_STATUS_RESTORE_EXPIRED_BACKUP_FAILED,
	10: pb.PrepareStatus_PREPARE_STATUS_UNDER_MAINTENANCE,
}

var progressStatuses = map[int]pb.ProgressStatus{
	0:  pb.ProgressStatus_PROGRESS_STATUS_READY,
	1:  pb.ProgressStatus_PROGRESS_STATUS_QUEUED,
	2:  pb.ProgressStatus_PROGRESS_STATUS_RESTORING,
	3:  pb.ProgressStatus_PROGRESS_STATUS_BACKING_UP,
	-1: pb.ProgressStatus_PROGRESS_STATUS_FAILED,
}

var chargeModes = map[int]pb.ChargeMode{
	0: pb.ChargeMode_CHARGE_MODE_YEARLY_MONTHLY,
	1: pb.ChargeMode_CHARGE_MODE_ON_DEMAND,
	2: pb.ChargeMode_CHARGE_MODE_BOTH,
}

// raw narrows an upstream integer to the contract's int32; values outside int32 cannot be documented states, so
// they saturate rather than wrap into a documented one.
// statusResults maps BatchQueryStatus's results. The messages sit in one array (one allocation for the answer
// instead of one per phone); each is filled in place, never copied.
func statusResults(in []upstream.StatusResult) []*pb.StatusResult {
	msgs := make([]pb.StatusResult, len(in))
	out := make([]*pb.StatusResult, len(in))
	for i, r := range in {
		m := &msgs[i]
		m.InstanceId, m.Status, m.RawStatus = r.InstanceID, instanceStates[r.Status], raw(r.Status)
		out[i] = m
	}
	return out
}

func raw(v int) int32 {
	const maxInt32, minInt32 = 1<<31 - 1, -1 << 31
	switch {
	case v > maxInt32:
		return maxInt32
	case v < minInt32:
		return minInt32
	}
	return int32(v)
}

func cmdJobs(in []upstream.CmdJob) []*pb.CmdJob {
	out := make([]*pb.CmdJob, len(in))
	for i, j := range in {
		out[i] = &pb.CmdJob{InstanceId: j.InstanceID, JobId: j.JobID}
	}
	return out
}

func jobs(in []upstream.JobDetail) []*pb.Job {
	out := make([]*pb.Job, len(in))
	for i, j := range in {
		out[i] = &pb.Job{
			JobId:      j.JobID,
			Status:     jobStatuses[j.Status],
			RawStatus:  raw(j.Status),
			ErrorCode:  j.ErrorCode,
			ErrorMsg:   j.ErrorMsg,
			ExecuteMsg: j.ExecuteMsg,
		}
	}
	return out
}

func userInstances(in []*pb.UserInstance) []upstream.UserInstance {
	out := make([]upstream.UserInstance, len(in))
	for i, u := range in {
		out[i] = upstream.UserInstance{UserID: u.GetUserId(), InstanceID: u.GetInstanceId()}
	}
	return out
}

func instance(in upstream.Instance) *pb.Instance {
	return &pb.Instance{
		InstanceId:       in.InstanceID,
		InstanceName:     in.InstanceName,
		Region:           in.Region,
		InstanceSku:      in.InstanceSku,
		FrozenStatus:     frozenStatuses[in.FrozenStatus],
		RawFrozenStatus:  raw(in.FrozenStatus),
		RunningStatus:    runningStatuses[in.RunningStatus],
		RawRunningStatus: raw(in.RunningStatus),
		LoginStatus:      loginStatuses[in.LoginStatus],
		RawLoginStatus:   raw(in.LoginStatus),
		AssignStatus:     assignStatuses[in.AssignStatus],
		RawAssignStatus:  raw(in.AssignStatus),
		AssignUser:       in.AssignUser,
		BillingMode:      in.BillingMode,
		ProjectId:        in.ProjectID,
		ProjectName:      in.ProjectName,
		PhoneId:          string(in.PhoneID),
		MemberName:       in.MemberName,
		AccountName:      in.AccountName,
		RegionName:       in.RegionName,
		RegionNameEn:     in.RegionNameEn,
		BackupStatus:     transferStatuses[in.BackupStatus],
		RawBackupStatus:  raw(in.BackupStatus),
		BackupTime:       in.BackupTime,
		RestoreStatus:    transferStatuses[in.RestoreStatus],
		RawRestoreStatus: raw(in.RestoreStatus),
		RestoreTime:      in.RestoreTime,
	}
}

func sdkEndpoint(in upstream.SDKEndpoint) *pb.SdkEndpoint {
	return &pb.SdkEndpoint{
		Address:     in.Address,
		Aport:       string(in.Aport),
		Atype:       string(in.Atype),
		AddressIpv6: in.AddressIPv6,
	}
}

func deviceToken(in *upstream.DeviceToken) *pb.GetDeviceTokenResponse {
	return &pb.GetDeviceTokenResponse{
		StreamingId: in.StreamingID,
		DeviceToken: in.DeviceToken,
		Resource: &pb.DeviceResource{
			Sdk: &pb.DeviceSdk{
				Internal: sdkEndpoint(in.Resource.SDK.Internal),
				External: sdkEndpoint(in.Resource.SDK.External),
			},
			Rtc: &pb.DeviceRtc{IceSignaling: &pb.IceSignaling{
				SignalingUrl: in.Resource.RTC.IceSignaling.SignalingURL,
				ExpiredTime:  string(in.Resource.RTC.IceSignaling.ExpiredTime),
				IceServers:   in.Resource.RTC.IceSignaling.IceServers,
			}},
			DeviceId: in.Resource.DeviceID,
			KpId:     in.Resource.KpID,
		},
	}
}

func prepareStatusResult(in upstream.InstanceStatus) *pb.PrepareStatusResult {
	return &pb.PrepareStatusResult{
		InstanceId: in.InstanceID,
		Status:     prepareStatuses[in.Status],
		RawStatus:  raw(in.Status),
	}
}

func progress(in *upstream.Progress) *pb.ShowProgressResponse {
	return &pb.ShowProgressResponse{
		Status:       progressStatuses[in.Status],
		RawStatus:    raw(in.Status),
		WaitingCount: raw(in.WaitingCount),
	}
}

func skuCatalogue(in *upstream.SkuCatalogue) *pb.BatchShowSkuResponse {
	out := &pb.BatchShowSkuResponse{BandInfo: &pb.BandInfo{CbcSkuId: in.BandInfo.CbcSkuID}}
	for _, region := range in.SkuSpecResponseList {
		r := &pb.RegionSkus{RegionId: region.RegionID}
		for _, s := range region.SkuResponses {
			sku := &pb.Sku{
				Type:          s.Type,
				CbcSkuId:      s.CbcSkuID,
				Name:          s.Name,
				CalcSpec:      s.CalcSpec,
				StorageSpec:   s.StorageSpec,
				SpecDesc:      s.SpecDesc,
				SpecDescEn:    s.SpecDescEn,
				BandSize:      s.BandSize,
				ChargeMode:    chargeModes[s.ChargeMode],
				RawChargeMode: raw(s.ChargeMode),
				MaxResolution: s.MaxResolution,
				PoolInfo:      &pb.PoolInfo{},
			}
			for _, p := range s.PoolInfo.Aosp {
				sku.PoolInfo.Aosp = append(sku.PoolInfo.Aosp, &pb.AospPool{
					Version:   p.Version,
					ResPoolId: p.ResPoolID,
					Id:        string(p.ID),
					Network:   p.Network,
					Enable:    p.Enable,
				})
			}
			for _, n := range s.NestInfo {
				sku.NestInfo = append(sku.NestInfo, &pb.NestInfo{
					BandSize:    string(n.BandSize),
					SceneType:   n.SceneType,
					Network:     n.Network,
					StorageDesc: n.StorageDesc,
					SceneDesc:   n.SceneDesc,
					SceneDescEn: n.SceneDescEn,
					Tags:        n.Tags,
					TagsEn:      n.TagsEn,
				})
			}
			r.SkuResponses = append(r.SkuResponses, sku)
		}
		out.SkuSpecResponseList = append(out.SkuSpecResponseList, r)
	}
	return out
}

func videoSettings(in []*pb.InstanceSetting) []upstream.InstanceSetting {
	spec := func(v *pb.VideoSpec) upstream.VideoSpec {
		return upstream.VideoSpec{CodeRate: int(v.GetCodeRate()), FPS: int(v.GetFps())}
	}
	out := make([]upstream.InstanceSetting, len(in))
	for i, s := range in {
		groups := make([]upstream.VideoSpecGroup, len(s.GetVideoSpecGroups()))
		for j, g := range s.GetVideoSpecGroups() {
			groups[j] = upstream.VideoSpecGroup{
				Definition540P:  spec(g.GetDefinition_540P()),
				Definition720P:  spec(g.GetDefinition_720P()),
				Definition1080P: spec(g.GetDefinition_1080P()),
			}
		}
		out[i] = upstream.InstanceSetting{
			NetworkType:     s.GetNetworkType(),
			EncodingType:    s.GetEncodingType(),
			VideoSpecGroups: groups,
		}
	}
	return out
}

// boolFlag is KooPhone's 0/1 integer for a yes/no choice.
func boolFlag(b bool) int {
	if b {
		return 1
	}
	return 0
}
