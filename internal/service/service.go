// Package service implements the gRPC services InstanceService, OrderService, AppService and FleetService: each
// RPC maps its (already validated) request to one KooPhone call through internal/upstream, to a watch through
// internal/stream, or (FleetService) to a fan-out through internal/fleet, and maps the answer back. Errors become gRPC statuses in one place, ToStatus.
package service

import (
	"context"
	"errors"
	"log/slog"

	"github.com/koophone-gateway/koophone-gateway/internal/stream"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Upstream is the KooPhone client the services call: *upstream.Client in production.
type Upstream interface {
	SyncCommand(context.Context, upstream.CommandRequest) (*upstream.SyncCommandResult, error)
	AsyncCommand(context.Context, upstream.CommandRequest) (*upstream.Task, error)
	GetTask(ctx context.Context, taskID string) (*upstream.TaskStatus, error)
	SetVideoConfig(context.Context, upstream.SetVideoConfigRequest) error
	BatchQueryStatus(context.Context, upstream.InstanceIDsRequest) (*upstream.StatusResults, error)
	BatchReset(context.Context, upstream.InstanceIDsRequest) (*upstream.Task, error)
	GetDeviceToken(ctx context.Context, instanceID string) (*upstream.DeviceToken, error)
	AssignInstance(context.Context, upstream.UserInstancesRequest) error
	UnassignInstance(context.Context, upstream.UserInstancesRequest) (*upstream.Task, error)
	ListInstances(context.Context, upstream.ListInstancesRequest) (*upstream.InstancePage, error)
	BatchRebootInstance(context.Context, upstream.InstanceIDsRequest) error
	BatchShowSku(ctx context.Context, skuType string) (*upstream.SkuCatalogue, error)
	CreateInstance(context.Context, upstream.CreateInstanceRequest) (*upstream.Order, error)
	DeleteInstance(context.Context, upstream.DeleteInstanceRequest) error
	BatchPrepareInstances(context.Context, upstream.PrepareRequest) (*upstream.PrepareResult, error)
	ShowProgress(context.Context, upstream.ProgressRequest) (*upstream.Progress, error)
	BatchBackupInstances(context.Context, upstream.InstanceIDsRequest) (*upstream.Task, error)
	StopInstancesStreaming(context.Context, upstream.InstanceIDRequest) error
	ReleaseInstancesSession(context.Context, upstream.InstanceIDRequest) error
	InstallApp(context.Context, upstream.InstallAppRequest) (*upstream.Task, error)
	// The newer reference: GetDeviceToken with stream_type, and operation 21.
	GetDeviceTokenWith(context.Context, upstream.DeviceTokenRequest) (*upstream.DeviceToken, error)
	ListInstanceApp(context.Context, upstream.ListInstanceAppRequest) (*upstream.AppPage, error)
	// Identity names the upstream principal without revealing it, so shared pollers never mix tenants.
	Identity() string
}

var _ Upstream = (*upstream.Client)(nil)

// base holds what every service needs.
type base struct {
	up  Upstream
	log *slog.Logger
}

// fail maps err to the caller's status.
func (b base) fail(ctx context.Context, err error) error {
	return ToStatus(ctx, b.log, err)
}

// Options builds the services.
type Options struct {
	Upstream Upstream
	Logger   *slog.Logger
	Watch    WatchOptions
	Fleet    FleetOptions
}

// Services are the gRPC services, sharing one client and one set of watch hubs.
type Services struct {
	Instance *InstanceService
	Order    *OrderService
	App      *AppService
	Fleet    *FleetService
	watch    *watchers
}

// New builds the services.
func New(o Options) (*Services, error) {
	if o.Upstream == nil {
		return nil, errors.New("service: no upstream client")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := base{up: o.Upstream, log: o.Logger}
	w := newWatchers(o.Upstream, o.Watch)
	return &Services{
		Instance: &InstanceService{base: b, watch: w},
		Order:    &OrderService{base: b},
		App:      &AppService{base: b},
		Fleet:    newFleetService(b, w, o.Fleet, o.Watch),
		watch:    w,
	}, nil
}

// Close ends every watch and fleet stream with UNAVAILABLE and stops the pollers.
func (s *Services) Close() {
	s.Fleet.close() // first: no fleet call may start a batch whose task can no longer be followed
	s.watch.close()
}

// WatchStats returns the counters of the task and preparation hubs.
func (s *Services) WatchStats() (tasks, prepares stream.Stats) {
	return s.watch.tasks.Stats(), s.watch.progress.Stats()
}
