package service

import (
	"context"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// AppService implements koophone.v1.AppService.
type AppService struct {
	pb.UnsafeAppServiceServer
	base
}

// InstallApp installs an APK on phones, as a task.
func (s *AppService) InstallApp(ctx context.Context, req *pb.InstallAppRequest) (*pb.InstallAppResponse, error) {
	task, err := s.up.InstallApp(ctx, installAppRequest(req))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.InstallAppResponse{TaskId: task.TaskID, CmdJobs: cmdJobs(task.CmdJobs)}, nil
}

func installAppRequest(req *pb.InstallAppRequest) upstream.InstallAppRequest {
	out := upstream.InstallAppRequest{
		ObjectName:        req.GetObjectName(),
		FileName:          req.GetFileName(),
		ObjectVersion:     req.GetObjectVersion(),
		ObjectSize:        req.GetObjectSize(),
		BizType:           req.GetBizType(),
		ContentType:       req.GetContentType(),
		ContentMD5:        req.GetContentMd5(),
		InstallPackageURL: req.GetInstallPackageUrl(),
		InstanceIDList:    req.GetInstanceIdList(),
	}
	if req.FastInstall != nil {
		out.FastInstall = "0"
		if req.GetFastInstall() {
			out.FastInstall = "1"
		}
	}
	return out
}
