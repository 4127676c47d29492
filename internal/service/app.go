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

// ListInstanceApp lists one page of a phone's apps (operation 21 of the newer reference).
func (s *AppService) ListInstanceApp(ctx context.Context, req *pb.ListInstanceAppRequest) (*pb.ListInstanceAppResponse, error) {
	page, err := s.up.ListInstanceApp(ctx, upstream.ListInstanceAppRequest{
		InstanceID: req.GetInstanceId(),
		PageNo:     int(req.GetPageNo()),
		PageSize:   int(req.GetPageSize()),
		AppType:    int(req.GetAppType()), // the enum's numbers are KooPhone's; 0 is not sent
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListInstanceAppResponse{
		Result:     make([]*pb.InstalledApp, len(page.Result)),
		PageNo:     raw(page.PageNo),
		PageSize:   raw(page.PageSize),
		TotalCount: raw(page.TotalCount),
	}
	for i, a := range page.Result {
		out.Result[i] = &pb.InstalledApp{AppName: a.AppName, AppVersion: a.AppVersion, AppPkg: a.AppPkg, IconUrl: a.IconURL}
	}
	return out, nil
}
