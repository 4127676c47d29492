package upstream

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// One method per KooPhone operation. Reads (GetTask, ListInstances, BatchQueryStatus, ShowProgress,
// BatchShowSku) are marked so and may be retried; everything else is a write, sent again only when it provably
// never left this process (or once after the credential was refused).

func fetch[T any](ctx context.Context, c *Client, cl call) (*T, error) {
	out := new(T)
	if err := c.do(ctx, cl, out); err != nil {
		return nil, err
	}
	return out, nil
}

func post(op, path string, body any) call {
	return call{op: op, method: http.MethodPost, path: path, body: body}
}

// SyncCommand runs a shell command on up to 100 phones and waits for its output.
func (c *Client) SyncCommand(ctx context.Context, req CommandRequest) (*SyncCommandResult, error) {
	return fetch[SyncCommandResult](ctx, c, post("SyncCommand", "/v1/instances/sync-command", req))
}

// AsyncCommand starts a shell command on up to 100 phones; follow it with GetTask.
func (c *Client) AsyncCommand(ctx context.Context, req CommandRequest) (*Task, error) {
	return fetch[Task](ctx, c, post("AsyncCommand", "/v1/instances/async-command", req))
}

// GetTask reads the jobs of a task.
func (c *Client) GetTask(ctx context.Context, taskID string) (*TaskStatus, error) {
	return fetch[TaskStatus](ctx, c, call{
		op: "GetTask", method: http.MethodGet, path: "/v1/instances/tasks/" + url.PathEscape(taskID), read: true,
	})
}

// SetVideoConfig sets the video encoding of phones for every network × codec combination.
func (c *Client) SetVideoConfig(ctx context.Context, req SetVideoConfigRequest) error {
	return c.do(ctx, call{op: "SetVideoConfig", method: http.MethodPut, path: "/v1/instances/video-setting", body: req}, nil)
}

// BatchQueryStatus reads the state of up to 100 phones.
func (c *Client) BatchQueryStatus(ctx context.Context, req InstanceIDsRequest) (*StatusResults, error) {
	cl := post("BatchQueryStatus", "/v1/instances/batch-query-status", req)
	cl.read = true
	// Room for one result per phone asked about: encoding/json appends to the slice it finds, so it need not grow
	// it from nothing (five reallocations for 10 phones).
	out := &StatusResults{StatusResults: make([]StatusResult, 0, len(req.InstanceIDs))}
	if err := c.do(ctx, cl, out); err != nil {
		return nil, err
	}
	return out, nil
}

// BatchReset resets up to 100 phones to factory state.
func (c *Client) BatchReset(ctx context.Context, req InstanceIDsRequest) (*Task, error) {
	return fetch[Task](ctx, c, post("BatchReset", "/v1/instances/batch-reset", req))
}

// GetDeviceToken returns what a user's app needs to stream a phone. The answer holds device_token: never log it.
func (c *Client) GetDeviceToken(ctx context.Context, instanceID string) (*DeviceToken, error) {
	return c.GetDeviceTokenWith(ctx, DeviceTokenRequest{InstanceID: instanceID})
}

// GetDeviceTokenWith is GetDeviceToken with the newer reference's options: stream_type travels in the query,
// and a zero StreamType sends the seed's call.
func (c *Client) GetDeviceTokenWith(ctx context.Context, req DeviceTokenRequest) (*DeviceToken, error) {
	cl := post("GetDeviceToken", "/v1/instances/"+url.PathEscape(req.InstanceID)+"/auth", nil)
	if req.StreamType != 0 {
		cl.query = [][2]string{{"stream_type", strconv.Itoa(req.StreamType)}}
	}
	return fetch[DeviceToken](ctx, c, cl)
}

// AssignInstance binds users to phones.
func (c *Client) AssignInstance(ctx context.Context, req UserInstancesRequest) error {
	return c.do(ctx, post("AssignInstance", "/v1/instances/assign", req), nil)
}

// UnassignInstance unbinds users from phones, erasing the users' data on them.
func (c *Client) UnassignInstance(ctx context.Context, req UserInstancesRequest) (*Task, error) {
	return fetch[Task](ctx, c, post("UnassignInstance", "/v1/instances/unassign", req))
}

// ListInstances reads one page of the tenant's phones.
func (c *Client) ListInstances(ctx context.Context, req ListInstancesRequest) (*InstancePage, error) {
	q := [][2]string{
		{"page_no", strconv.Itoa(req.PageNo)},
		{"page_size", strconv.Itoa(req.PageSize)},
	}
	for _, kv := range [][2]string{
		{"instance_id", req.InstanceID},
		{"instance_name", req.InstanceName},
		{"query_start_time", req.QueryStartTime},
		{"query_end_time", req.QueryEndTime},
		{"pool_scene_tag", req.PoolSceneTag},
		{"pool_name", req.PoolName},
		{"order", req.Order},
		{"order_by", req.OrderBy},
	} {
		if kv[1] != "" {
			q = append(q, kv)
		}
	}
	return fetch[InstancePage](ctx, c, call{
		op: "ListInstances", method: http.MethodGet, path: "/v1/instances/batch-query", query: q,
		queryRequestID: true, // the seed lists x-request-id among this operation's query parameters
		read:           true, codeInData: true,
	})
}

// BatchRebootInstance reboots up to 100 phones.
func (c *Client) BatchRebootInstance(ctx context.Context, req InstanceIDsRequest) error {
	return c.do(ctx, post("BatchRebootInstance", "/v1/instances/reboot", req), nil)
}

// BatchShowSku lists the phone and bandwidth SKUs on sale; skuType "" means "0" (general cloud phone, the only
// type the seed documents).
func (c *Client) BatchShowSku(ctx context.Context, skuType string) (*SkuCatalogue, error) {
	if skuType == "" {
		skuType = "0"
	}
	return fetch[SkuCatalogue](ctx, c, call{
		op: "BatchShowSku", method: http.MethodGet, path: "/v1/instances/sku",
		query: [][2]string{{"type", skuType}}, read: true,
	})
}

// CreateInstance orders phones. It costs money and is not idempotent upstream: it is never sent twice unless the
// first attempt provably never left this process.
func (c *Client) CreateInstance(ctx context.Context, req CreateInstanceRequest) (*Order, error) {
	return fetch[Order](ctx, c, post("CreateInstance", "/v1/instances/create", req))
}

// DeleteInstance deletes yearly/monthly phones.
func (c *Client) DeleteInstance(ctx context.Context, req DeleteInstanceRequest) error {
	return c.do(ctx, post("DeleteInstance", "/v1/instances/delete", req), nil)
}

// BatchPrepareInstances gets phones ready for a user (restores the user's data).
func (c *Client) BatchPrepareInstances(ctx context.Context, req PrepareRequest) (*PrepareResult, error) {
	return fetch[PrepareResult](ctx, c, post("BatchPrepareInstances", "/v1/instances/prepare", req))
}

// ShowProgress reads how far the preparation of a user's phone got.
func (c *Client) ShowProgress(ctx context.Context, req ProgressRequest) (*Progress, error) {
	cl := post("ShowProgress", "/v1/instances/prepare-progress", req)
	cl.read = true
	return fetch[Progress](ctx, c, cl)
}

// BatchBackupInstances backs phones up to OBS and releases the physical phones.
func (c *Client) BatchBackupInstances(ctx context.Context, req InstanceIDsRequest) (*Task, error) {
	return fetch[Task](ctx, c, post("BatchBackupInstances", "/v1/instances/backup", req))
}

// StopInstancesStreaming stops a phone's stream.
func (c *Client) StopInstancesStreaming(ctx context.Context, req InstanceIDRequest) error {
	return c.do(ctx, post("StopInstancesStreaming", "/v1/instances/streaming/stop", req), nil)
}

// ReleaseInstancesSession frees the session that outlives a stopped stream.
func (c *Client) ReleaseInstancesSession(ctx context.Context, req InstanceIDRequest) error {
	return c.do(ctx, post("ReleaseInstancesSession", "/v1/instances/session/release", req), nil)
}

// InstallApp installs an APK on up to 100 phones; follow it with GetTask.
func (c *Client) InstallApp(ctx context.Context, req InstallAppRequest) (*Task, error) {
	d, err := fetch[installAppData](ctx, c, post("InstallApp", "/v1/instances/app/install", req))
	if err != nil {
		return nil, err
	}
	return d.task(), nil
}

// ListInstanceApp reads one page of the apps installed on a phone (operation 21, newer than the seed).
func (c *Client) ListInstanceApp(ctx context.Context, req ListInstanceAppRequest) (*AppPage, error) {
	q := [][2]string{
		{"page_no", strconv.Itoa(req.PageNo)},
		{"page_size", strconv.Itoa(req.PageSize)},
	}
	if req.AppType != 0 {
		q = append(q, [2]string{"app_type", strconv.Itoa(req.AppType)})
	}
	return fetch[AppPage](ctx, c, call{
		op: "ListInstanceApp", method: http.MethodGet, path: "/v1/instances/" + url.PathEscape(req.InstanceID) + "/app-list",
		query: q, read: true, codeInData: true,
	})
}
