package sim

import (
	"net/http"
	"strconv"
)

// operations is the routing table: the seed's 20 operations (and operation 21, ListInstanceApp, from the newer
// reference) on their documented methods and paths. reqID follows
// each operation's header table (ListInstances lists x-request-id among its query parameters); okMsg is the
// error_msg of the operation's success example.
var operations = []operation{
	{"SyncCommand", http.MethodPost, "/v1/instances/sync-command", reqIDHeader, "ok", (*Server).syncCommand},
	{"AsyncCommand", http.MethodPost, "/v1/instances/async-command", reqIDHeader, "ok", (*Server).asyncCommand},
	{"GetTask", http.MethodGet, "/v1/instances/tasks/{}", reqIDHeader, "ok", (*Server).getTask},
	{"SetVideoConfig", http.MethodPut, "/v1/instances/video-setting", reqIDHeader, "ok", (*Server).setVideoConfig},
	{"BatchQueryStatus", http.MethodPost, "/v1/instances/batch-query-status", reqIDHeader, "ok", (*Server).batchQueryStatus},
	{"BatchReset", http.MethodPost, "/v1/instances/batch-reset", reqIDHeader, "ok", (*Server).batchReset},
	{"GetDeviceToken", http.MethodPost, "/v1/instances/{}/auth", reqIDOptional, "ok", (*Server).getDeviceToken},
	{"AssignInstance", http.MethodPost, "/v1/instances/assign", reqIDHeader, "ok", (*Server).assignInstance},
	{"UnassignInstance", http.MethodPost, "/v1/instances/unassign", reqIDHeader, "ok", (*Server).unassignInstance},
	{"ListInstances", http.MethodGet, "/v1/instances/batch-query", reqIDQuery, "OK", (*Server).listInstances},
	{"BatchRebootInstance", http.MethodPost, "/v1/instances/reboot", reqIDHeader, "OK", (*Server).batchReboot},
	{"BatchShowSku", http.MethodGet, "/v1/instances/sku", reqIDOptional, "return sku messages success", (*Server).batchShowSku},
	{"CreateInstance", http.MethodPost, "/v1/instances/create", reqIDOptional, "OK", (*Server).createInstance},
	{"DeleteInstance", http.MethodPost, "/v1/instances/delete", reqIDOptional, "OK", (*Server).deleteInstance},
	{"BatchPrepareInstances", http.MethodPost, "/v1/instances/prepare", reqIDOptional, "ok", (*Server).batchPrepare},
	{"ShowProgress", http.MethodPost, "/v1/instances/prepare-progress", reqIDOptional, "OK", (*Server).showProgress},
	{"BatchBackupInstances", http.MethodPost, "/v1/instances/backup", reqIDHeader, "ok", (*Server).batchBackup},
	{"StopInstancesStreaming", http.MethodPost, "/v1/instances/streaming/stop", reqIDHeader, "OK", (*Server).stopStreaming},
	{"ReleaseInstancesSession", http.MethodPost, "/v1/instances/session/release", reqIDHeader, "OK", (*Server).releaseSession},
	{"InstallApp", http.MethodPost, "/v1/instances/app/install", reqIDOptional, "OK", (*Server).installApp},
	{"ListInstanceApp", http.MethodGet, "/v1/instances/{}/app-list", reqIDHeader, "OK", (*Server).listInstanceApp},
}

// OperationNames returns the seed's operation names, in the seed's order.
func OperationNames() []string {
	names := make([]string, len(operations))
	for i, op := range operations {
		names[i] = op.name
	}
	return names
}

// Request bodies shared by several operations.

type idsRequest struct {
	InstanceIDs []string `json:"instance_ids"`
}

type instanceRequest struct {
	InstanceID string `json:"instance_id"`
}

type userInstance struct {
	UserID     string `json:"user_id"`
	InstanceID string `json:"instance_id"`
}

type userInstancesRequest struct {
	UserInstances []userInstance `json:"user_instances"`
}

// decodeIDs decodes and validates a body of the form {"instance_ids": [...]}.
func (c *call) decodeIDs() ([]string, *apiError) {
	var req idsRequest
	if e := c.decode(&req); e != nil {
		return nil, e
	}
	if e := checkIDs("instance_ids", req.InstanceIDs); e != nil {
		return nil, e
	}
	return req.InstanceIDs, nil
}

// decodeInstance decodes and validates a body of the form {"instance_id": "..."}.
func (c *call) decodeInstance() (string, *apiError) {
	var req instanceRequest
	if e := c.decode(&req); e != nil {
		return "", e
	}
	if e := checkID("instance_id", req.InstanceID); e != nil {
		return "", e
	}
	return req.InstanceID, nil
}

// decodeUserInstances decodes and validates {"user_instances": [{user_id, instance_id}, ...]} (1..100 pairs).
func (c *call) decodeUserInstances() ([]userInstance, *apiError) {
	var req userInstancesRequest
	if e := c.decode(&req); e != nil {
		return nil, e
	}
	if len(req.UserInstances) == 0 || len(req.UserInstances) > maxIDs {
		return nil, badParam("user_instances must hold 1 to %d pairs", maxIDs)
	}
	for i, ui := range req.UserInstances {
		if e := checkID("user_instances["+strconv.Itoa(i)+"].user_id", ui.UserID); e != nil {
			return nil, e
		}
		if e := checkID("user_instances["+strconv.Itoa(i)+"].instance_id", ui.InstanceID); e != nil {
			return nil, e
		}
	}
	return req.UserInstances, nil
}
