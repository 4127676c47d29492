package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

// call is one request, in both transports' forms.
type call struct {
	grpc   func(ctx context.Context, opts ...grpc.CallOption) (proto.Message, error)
	method string
	path   string
	body   string
}

// rpcCase is one scenario of one RPC. make builds the request afresh for each transport (so a call that changes
// state, like DeleteInstance, gets its own phone each time); code is the expected gRPC code (the REST status is
// its HTTP mapping); reason is the expected ErrorInfo reason of an error; check looks at a success's JSON.
type rpcCase struct {
	rpc    string
	name   string
	make   func(e *env) call
	code   codes.Code
	reason string
	check  func(t *testing.T, e *env, res map[string]any)
	// waits marks a call that sleeps on the gateway's clock (a Retry-After): the fake clock runs while it is made.
	waits bool
}

func unary[Req, Res proto.Message](fn func(context.Context, Req, ...grpc.CallOption) (Res, error), req Req) func(context.Context, ...grpc.CallOption) (proto.Message, error) {
	return func(ctx context.Context, opts ...grpc.CallOption) (proto.Message, error) {
		res, err := fn(ctx, req, opts...)
		if err != nil {
			return nil, err
		}
		return res, nil
	}
}

func jsonIDs(ids ...string) string { return `["` + strings.Join(ids, `","`) + `"]` }

const unknownPhone = "nosuch01"

func videoBody() string {
	var parts []string
	for _, n := range []string{"MOBILE_NETWORK", "WIFI", "WIRED"} {
		for _, enc := range []string{"H264", "H265"} {
			parts = append(parts, fmt.Sprintf(`{"network_type":%q,"encoding_type":%q,"video_spec_groups":[{"definition_540p":{"code_rate":6000,"fps":30},"definition_720p":{"code_rate":6000,"fps":30},"definition_1080p":{"code_rate":8000,"fps":60}}]}`, n, enc))
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func videoSettings() []*pb.InstanceSetting {
	var out []*pb.InstanceSetting
	for _, n := range []string{"MOBILE_NETWORK", "WIFI", "WIRED"} {
		for _, enc := range []string{"H264", "H265"} {
			out = append(out, &pb.InstanceSetting{NetworkType: n, EncodingType: enc, VideoSpecGroups: []*pb.VideoSpecGroup{{
				Definition_540P:  &pb.VideoSpec{CodeRate: 6000, Fps: 30},
				Definition_720P:  &pb.VideoSpec{CodeRate: 6000, Fps: 30},
				Definition_1080P: &pb.VideoSpec{CodeRate: 8000, Fps: 60},
			}}})
		}
	}
	return out
}

func createReq(sku string, count int32) *pb.CreateInstanceRequest {
	return &pb.CreateInstanceRequest{
		Os: "AOSP9", InstanceSkuId: sku, BandSkuId: "kp.bandwidth", RegionId: "cn-north-7",
		InstanceNamePrefix: "e2e", BandSize: 4, Count: count,
		ChargeParam: &pb.ChargeParam{ChargingMode: pb.ChargingMode_CHARGING_MODE_YEARLY_MONTHLY, PeriodType: pb.PeriodType_PERIOD_TYPE_MONTH, PeriodNum: 1, IsAutoPay: true},
	}
}

func createBody(sku string, count int) string {
	return fmt.Sprintf(`{"os":"AOSP9","instance_sku_id":%q,"band_sku_id":"kp.bandwidth","region_id":"cn-north-7","instance_name_prefix":"e2e","band_size":4,"count":%d,"charge_param":{"charging_mode":"CHARGING_MODE_YEARLY_MONTHLY","period_type":"PERIOD_TYPE_MONTH","period_num":1,"is_auto_pay":true}}`, sku, count)
}

const goodSku = "kp.professional.xlarge.32g.2"

func installReq(phone string) *pb.InstallAppRequest {
	return &pb.InstallAppRequest{
		FastInstall: proto.Bool(true), ObjectName: "com.example.demo", FileName: "demo.apk", ObjectVersion: "1.0.0",
		ObjectSize: "12.5", BizType: "apk", ContentType: "application/octet-stream",
		InstallPackageUrl: "https://obs.example.com/demo.apk", InstanceIdList: []string{phone},
	}
}

func installBody(phone string) string {
	return fmt.Sprintf(`{"fast_install":true,"object_name":"com.example.demo","file_name":"demo.apk","object_version":"1.0.0","object_size":"12.5","biz_type":"apk","content_type":"application/octet-stream","install_package_url":"https://obs.example.com/demo.apk","instance_id_list":[%q]}`, phone)
}

func hasKeys(keys ...string) func(*testing.T, *env, map[string]any) {
	return func(t *testing.T, _ *env, res map[string]any) {
		for _, k := range keys {
			if _, ok := res[k]; !ok {
				t.Errorf("response lacks %q: %v", k, res)
			}
		}
	}
}

func firstOf(res map[string]any, list, field string) any {
	items, _ := res[list].([]any)
	if len(items) == 0 {
		return nil
	}
	m, _ := items[0].(map[string]any)
	return m[field]
}

func rpcCases() []rpcCase {
	ids := func(e *env) (string, string) { p := e.phone(); return p, jsonIDs(p) }
	return []rpcCase{
		// 1 SyncCommand
		{rpc: "SyncCommand", name: "ok", code: codes.OK, make: func(e *env) call {
			p, js := ids(e)
			return call{unary(e.inst.SyncCommand, &pb.SyncCommandRequest{Command: "getprop ro.serialno", InstanceIds: []string{p}}),
				"POST", "/v1/instances/sync-command", `{"command":"getprop ro.serialno","instance_ids":` + js + `}`}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			if firstOf(res, "cmd_results", "status") != "JOB_STATUS_SUCCEEDED" || firstOf(res, "cmd_results", "execute_msg") == "" {
				t.Errorf("cmd_results: %v", res)
			}
		}},
		{rpc: "SyncCommand", name: "unknown phone", code: codes.PermissionDenied, reason: "KOOPHONE.API.1001", make: func(e *env) call {
			return call{unary(e.inst.SyncCommand, &pb.SyncCommandRequest{Command: "ls", InstanceIds: []string{unknownPhone}}),
				"POST", "/v1/instances/sync-command", `{"command":"ls","instance_ids":["` + unknownPhone + `"]}`}
		}},
		// 2 AsyncCommand
		{rpc: "AsyncCommand", name: "ok", code: codes.OK, make: func(e *env) call {
			p, js := ids(e)
			return call{unary(e.inst.AsyncCommand, &pb.AsyncCommandRequest{Command: "ls /sdcard", InstanceIds: []string{p}}),
				"POST", "/v1/instances/async-command", `{"command":"ls /sdcard","instance_ids":` + js + `}`}
		}, check: hasKeys("task_id", "cmd_jobs")},
		{rpc: "AsyncCommand", name: "unknown phone", code: codes.PermissionDenied, reason: "KOOPHONE.API.1001", make: func(e *env) call {
			return call{unary(e.inst.AsyncCommand, &pb.AsyncCommandRequest{Command: "ls", InstanceIds: []string{unknownPhone}}),
				"POST", "/v1/instances/async-command", `{"command":"ls","instance_ids":["` + unknownPhone + `"]}`}
		}},
		// 3 GetTask
		{rpc: "GetTask", name: "ok", code: codes.OK, make: func(e *env) call {
			task, err := e.inst.AsyncCommand(e.ctx(), &pb.AsyncCommandRequest{Command: "id", InstanceIds: []string{e.phone()}})
			if err != nil {
				e.t.Fatal(err)
			}
			id := task.GetTaskId()
			return call{unary(e.inst.GetTask, &pb.GetTaskRequest{TaskId: id}), "GET", "/v1/instances/tasks/" + id, ""}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			if firstOf(res, "jobs", "status") != "JOB_STATUS_RUNNING" {
				t.Errorf("jobs: %v", res)
			}
		}},
		{rpc: "GetTask", name: "unknown task", code: codes.NotFound, reason: "KOOPHONE.API.1323", make: func(e *env) call {
			return call{unary(e.inst.GetTask, &pb.GetTaskRequest{TaskId: "0123456789abcdef"}), "GET", "/v1/instances/tasks/0123456789abcdef", ""}
		}},
		// 4 SetVideoConfig
		{rpc: "SetVideoConfig", name: "ok", code: codes.OK, make: func(e *env) call {
			p, js := ids(e)
			return call{unary(e.inst.SetVideoConfig, &pb.SetVideoConfigRequest{InstanceIds: []string{p}, InstanceSettings: videoSettings()}),
				"PUT", "/v1/instances/video-setting", `{"instance_ids":` + js + `,"instance_settings":` + videoBody() + `}`}
		}},
		{rpc: "SetVideoConfig", name: "unknown phone", code: codes.PermissionDenied, reason: "KOOPHONE.API.1001", make: func(e *env) call {
			return call{unary(e.inst.SetVideoConfig, &pb.SetVideoConfigRequest{InstanceIds: []string{unknownPhone}, InstanceSettings: videoSettings()}),
				"PUT", "/v1/instances/video-setting", `{"instance_ids":["` + unknownPhone + `"],"instance_settings":` + videoBody() + `}`}
		}},
		// 5 BatchQueryStatus
		{rpc: "BatchQueryStatus", name: "ok", code: codes.OK, make: func(e *env) call {
			p, js := ids(e)
			return call{unary(e.inst.BatchQueryStatus, &pb.BatchQueryStatusRequest{InstanceIds: []string{p}}),
				"POST", "/v1/instances/batch-query-status", `{"instance_ids":` + js + `}`}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			if firstOf(res, "status_results", "status") != "INSTANCE_STATE_IDLE" {
				t.Errorf("status_results: %v", res)
			}
		}},
		{rpc: "BatchQueryStatus", name: "unknown phone", code: codes.PermissionDenied, reason: "KOOPHONE.API.1001", make: func(e *env) call {
			return call{unary(e.inst.BatchQueryStatus, &pb.BatchQueryStatusRequest{InstanceIds: []string{unknownPhone}}),
				"POST", "/v1/instances/batch-query-status", `{"instance_ids":["` + unknownPhone + `"]}`}
		}},
		// 6 BatchReset
		{rpc: "BatchReset", name: "ok", code: codes.OK, make: func(e *env) call {
			p, js := ids(e)
			return call{unary(e.inst.BatchReset, &pb.BatchResetRequest{InstanceIds: []string{p}}), "POST", "/v1/instances/batch-reset", `{"instance_ids":` + js + `}`}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			if id, _ := res["task_id"].(string); !strings.HasPrefix(id, "RM_") {
				t.Errorf("task_id %v", res["task_id"])
			}
		}},
		{rpc: "BatchReset", name: "unknown phone", code: codes.PermissionDenied, reason: "KOOPHONE.API.1001", make: func(e *env) call {
			return call{unary(e.inst.BatchReset, &pb.BatchResetRequest{InstanceIds: []string{unknownPhone}}), "POST", "/v1/instances/batch-reset", `{"instance_ids":["` + unknownPhone + `"]}`}
		}},
		// 7 GetDeviceToken
		{rpc: "GetDeviceToken", name: "ok", code: codes.OK, make: func(e *env) call {
			p := e.phone()
			e.prepared("user-token", p)
			return call{unary(e.inst.GetDeviceToken, &pb.GetDeviceTokenRequest{InstanceId: p}), "POST", "/v1/instances/" + p + "/auth", ""}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			resource, _ := res["resource"].(map[string]any)
			rtc, _ := resource["rtc"].(map[string]any)
			ice, _ := rtc["ice_signaling"].(map[string]any)
			if res["device_token"] == "" || ice["signaling_url"] == "" || resource["device_id"] == "" {
				t.Errorf("device token answer: %v", res)
			}
		}},
		{rpc: "GetDeviceToken", name: "not prepared", code: codes.FailedPrecondition, reason: "KOOPHONE.API.62010", make: func(e *env) call {
			p := e.phone()
			return call{unary(e.inst.GetDeviceToken, &pb.GetDeviceTokenRequest{InstanceId: p}), "POST", "/v1/instances/" + p + "/auth", ""}
		}},
		{rpc: "GetDeviceToken", name: "unknown phone", code: codes.NotFound, reason: "KOOPHONE.API.4001", make: func(e *env) call {
			return call{unary(e.inst.GetDeviceToken, &pb.GetDeviceTokenRequest{InstanceId: unknownPhone}), "POST", "/v1/instances/" + unknownPhone + "/auth", ""}
		}},
		// 8 AssignInstance
		{rpc: "AssignInstance", name: "ok", code: codes.OK, make: func(e *env) call {
			p := e.phone()
			return call{unary(e.inst.AssignInstance, &pb.AssignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "u1", InstanceId: p}}}),
				"POST", "/v1/instances/assign", `{"user_instances":[{"user_id":"u1","instance_id":"` + p + `"}]}`}
		}},
		{rpc: "AssignInstance", name: "assigned to another user", code: codes.ResourceExhausted, reason: "KPAPI.2209", make: func(e *env) call {
			p := e.phone()
			if _, err := e.inst.AssignInstance(e.ctx(), &pb.AssignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "first", InstanceId: p}}}); err != nil {
				e.t.Fatal(err)
			}
			return call{unary(e.inst.AssignInstance, &pb.AssignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "second", InstanceId: p}}}),
				"POST", "/v1/instances/assign", `{"user_instances":[{"user_id":"second","instance_id":"` + p + `"}]}`}
		}},
		// 9 UnassignInstance
		{rpc: "UnassignInstance", name: "ok", code: codes.OK, make: func(e *env) call {
			p := e.phone()
			if _, err := e.inst.AssignInstance(e.ctx(), &pb.AssignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "u2", InstanceId: p}}}); err != nil {
				e.t.Fatal(err)
			}
			return call{unary(e.inst.UnassignInstance, &pb.UnassignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "u2", InstanceId: p}}}),
				"POST", "/v1/instances/unassign", `{"user_instances":[{"user_id":"u2","instance_id":"` + p + `"}]}`}
		}, check: hasKeys("task_id", "cmd_jobs")},
		{rpc: "UnassignInstance", name: "not bound", code: codes.NotFound, reason: "KOOPHONE.API.2210", make: func(e *env) call {
			p := e.phone()
			return call{unary(e.inst.UnassignInstance, &pb.UnassignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "u3", InstanceId: p}}}),
				"POST", "/v1/instances/unassign", `{"user_instances":[{"user_id":"u3","instance_id":"` + p + `"}]}`}
		}},
		// 10 ListInstances
		{rpc: "ListInstances", name: "ok", code: codes.OK, make: func(e *env) call {
			return call{unary(e.inst.ListInstances, &pb.ListInstancesRequest{PageNo: 2, PageSize: 5, PoolSceneTag: "CLOUD_PHONE"}),
				"GET", "/v1/instances/batch-query?page_no=2&page_size=5&pool_scene_tag=CLOUD_PHONE", ""}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			if items, _ := res["result"].([]any); len(items) != 5 || res["page_no"] != float64(2) || res["total_count"] != float64(200) {
				t.Errorf("page: %d items, page_no %v, total %v", len(items), res["page_no"], res["total_count"])
			}
		}},
		{rpc: "ListInstances", name: "upstream internal error", code: codes.Internal, reason: "KOOPHONE.API.9999", make: func(e *env) call {
			if err := e.sim.SetFaults([]sim.Fault{{Kind: "error", Ops: []string{"ListInstances"}, Count: 1}}); err != nil {
				e.t.Fatal(err)
			}
			return call{unary(e.inst.ListInstances, &pb.ListInstancesRequest{PageNo: 1, PageSize: 5}), "GET", "/v1/instances/batch-query?page_no=1&page_size=5", ""}
		}},
		// 11 BatchRebootInstance
		{rpc: "BatchRebootInstance", name: "ok", code: codes.OK, make: func(e *env) call {
			p, js := ids(e)
			return call{unary(e.inst.BatchRebootInstance, &pb.BatchRebootInstanceRequest{InstanceIds: []string{p}}), "POST", "/v1/instances/reboot", `{"instance_ids":` + js + `}`}
		}},
		{rpc: "BatchRebootInstance", name: "not running", code: codes.FailedPrecondition, reason: "KOOPHONE.API.5005", make: func(e *env) call {
			p, js := ids(e)
			if _, err := e.inst.BatchRebootInstance(e.ctx(), &pb.BatchRebootInstanceRequest{InstanceIds: []string{p}}); err != nil {
				e.t.Fatal(err)
			}
			return call{unary(e.inst.BatchRebootInstance, &pb.BatchRebootInstanceRequest{InstanceIds: []string{p}}), "POST", "/v1/instances/reboot", `{"instance_ids":` + js + `}`}
		}},
		// 12 BatchShowSku
		{rpc: "BatchShowSku", name: "ok", code: codes.OK, make: func(e *env) call {
			return call{unary(e.order.BatchShowSku, &pb.BatchShowSkuRequest{Type: "0"}), "GET", "/v1/instances/sku?type=0", ""}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			band, _ := res["band_info"].(map[string]any)
			if band["cbc_sku_id"] != "kp.bandwidth" || firstOf(res, "sku_spec_response_list", "region_id") != "cn-north-7" {
				t.Errorf("catalogue: %v", res)
			}
		}},
		{rpc: "BatchShowSku", name: "throttled", code: codes.ResourceExhausted, reason: "APIGW.0308", make: func(e *env) call {
			// Three 429s: the read is retried twice, honouring Retry-After (1s), then the third 429 is the answer.
			if err := e.sim.SetFaults([]sim.Fault{{Kind: "429", Ops: []string{"BatchShowSku"}, Count: 3, RetryAfter: time.Second}}); err != nil {
				e.t.Fatal(err)
			}
			return call{unary(e.order.BatchShowSku, &pb.BatchShowSkuRequest{}), "GET", "/v1/instances/sku", ""}
		}, waits: true},
		// 13 CreateInstance
		{rpc: "CreateInstance", name: "ok", code: codes.OK, make: func(e *env) call {
			return call{unary(e.order.CreateInstance, createReq(goodSku, 1)), "POST", "/v1/instances/create", createBody(goodSku, 1)}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			if res["order_id"] == "" || firstOf(res, "instance_infos", "instance_id") == "" {
				t.Errorf("order: %v", res)
			}
		}},
		{rpc: "CreateInstance", name: "unknown sku", code: codes.InvalidArgument, reason: "KOOPHONE.API.3002", make: func(e *env) call {
			return call{unary(e.order.CreateInstance, createReq("kp.nosuch", 1)), "POST", "/v1/instances/create", createBody("kp.nosuch", 1)}
		}},
		{rpc: "CreateInstance", name: "out of stock", code: codes.ResourceExhausted, reason: "KOOPHONE.API.40010", make: func(e *env) call {
			return call{unary(e.order.CreateInstance, createReq(goodSku, 1500)), "POST", "/v1/instances/create", createBody(goodSku, 1500)}
		}},
		// 14 DeleteInstance
		{rpc: "DeleteInstance", name: "ok", code: codes.OK, make: func(e *env) call {
			order, err := e.order.CreateInstance(e.ctx(), createReq(goodSku, 1))
			if err != nil {
				e.t.Fatal(err)
			}
			p := order.GetInstanceInfos()[0].GetInstanceId()
			return call{unary(e.order.DeleteInstance, &pb.DeleteInstanceRequest{InstanceIds: []string{p}}), "POST", "/v1/instances/delete", `{"instance_ids":` + jsonIDs(p) + `}`}
		}},
		{rpc: "DeleteInstance", name: "on-demand phone", code: codes.FailedPrecondition, reason: "KOOPHONE.API.5001", make: func(e *env) call {
			p, js := ids(e)
			return call{unary(e.order.DeleteInstance, &pb.DeleteInstanceRequest{InstanceIds: []string{p}}), "POST", "/v1/instances/delete", `{"instance_ids":` + js + `}`}
		}},
		// 15 BatchPrepareInstances
		{rpc: "BatchPrepareInstances", name: "ok", code: codes.OK, make: func(e *env) call {
			p := e.phone()
			if _, err := e.inst.AssignInstance(e.ctx(), &pb.AssignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "u4", InstanceId: p}}}); err != nil {
				e.t.Fatal(err)
			}
			return call{unary(e.inst.BatchPrepareInstances, &pb.BatchPrepareInstancesRequest{UserId: "u4", InstanceIds: []string{p}}),
				"POST", "/v1/instances/prepare", `{"user_id":"u4","instance_ids":` + jsonIDs(p) + `}`}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			if firstOf(res, "status_list", "status") != "PREPARE_STATUS_WAITING_FOR_RESTORE" {
				t.Errorf("status_list: %v", res)
			}
		}},
		{rpc: "BatchPrepareInstances", name: "unknown phone", code: codes.NotFound, reason: "KOOPHONE.API.4001", make: func(e *env) call {
			return call{unary(e.inst.BatchPrepareInstances, &pb.BatchPrepareInstancesRequest{UserId: "u4", InstanceIds: []string{unknownPhone}}),
				"POST", "/v1/instances/prepare", `{"user_id":"u4","instance_ids":["` + unknownPhone + `"]}`}
		}},
		// 16 ShowProgress
		{rpc: "ShowProgress", name: "ok", code: codes.OK, make: func(e *env) call {
			p := e.phone()
			e.prepared("u5", p)
			return call{unary(e.inst.ShowProgress, &pb.ShowProgressRequest{UserId: "u5", InstanceId: p}),
				"POST", "/v1/instances/prepare-progress", `{"user_id":"u5","instance_id":"` + p + `"}`}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			if res["status"] != "PROGRESS_STATUS_READY" || res["raw_status"] != float64(0) {
				t.Errorf("progress: %v", res)
			}
		}},
		{rpc: "ShowProgress", name: "not bound", code: codes.NotFound, reason: "KOOPHONE.API.2210", make: func(e *env) call {
			p := e.phone()
			return call{unary(e.inst.ShowProgress, &pb.ShowProgressRequest{UserId: "u6", InstanceId: p}),
				"POST", "/v1/instances/prepare-progress", `{"user_id":"u6","instance_id":"` + p + `"}`}
		}},
		// 17 BatchBackupInstances
		{rpc: "BatchBackupInstances", name: "ok", code: codes.OK, make: func(e *env) call {
			p := e.phone()
			e.prepared("u7", p)
			return call{unary(e.inst.BatchBackupInstances, &pb.BatchBackupInstancesRequest{InstanceIds: []string{p}}), "POST", "/v1/instances/backup", `{"instance_ids":` + jsonIDs(p) + `}`}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			if id, _ := res["task_id"].(string); !strings.HasPrefix(id, "RM_") {
				t.Errorf("task_id %v", res["task_id"])
			}
		}},
		{rpc: "BatchBackupInstances", name: "unknown phone", code: codes.PermissionDenied, reason: "KOOPHONE.API.1001", make: func(e *env) call {
			return call{unary(e.inst.BatchBackupInstances, &pb.BatchBackupInstancesRequest{InstanceIds: []string{unknownPhone}}), "POST", "/v1/instances/backup", `{"instance_ids":["` + unknownPhone + `"]}`}
		}},
		// 18 StopInstancesStreaming
		{rpc: "StopInstancesStreaming", name: "ok", code: codes.OK, make: func(e *env) call {
			p := e.phone()
			return call{unary(e.inst.StopInstancesStreaming, &pb.StopInstancesStreamingRequest{InstanceId: p}), "POST", "/v1/instances/streaming/stop", `{"instance_id":"` + p + `"}`}
		}},
		{rpc: "StopInstancesStreaming", name: "unknown phone", code: codes.PermissionDenied, reason: "KOOPHONE.API.1001", make: func(e *env) call {
			return call{unary(e.inst.StopInstancesStreaming, &pb.StopInstancesStreamingRequest{InstanceId: unknownPhone}), "POST", "/v1/instances/streaming/stop", `{"instance_id":"` + unknownPhone + `"}`}
		}},
		// 19 ReleaseInstancesSession
		{rpc: "ReleaseInstancesSession", name: "ok", code: codes.OK, make: func(e *env) call {
			p := e.phone()
			return call{unary(e.inst.ReleaseInstancesSession, &pb.ReleaseInstancesSessionRequest{InstanceId: p}), "POST", "/v1/instances/session/release", `{"instance_id":"` + p + `"}`}
		}},
		{rpc: "ReleaseInstancesSession", name: "unknown phone", code: codes.PermissionDenied, reason: "KOOPHONE.API.1001", make: func(e *env) call {
			return call{unary(e.inst.ReleaseInstancesSession, &pb.ReleaseInstancesSessionRequest{InstanceId: unknownPhone}), "POST", "/v1/instances/session/release", `{"instance_id":"` + unknownPhone + `"}`}
		}},
		// 20 InstallApp
		{rpc: "InstallApp", name: "ok", code: codes.OK, make: func(e *env) call {
			p := e.phone()
			return call{unary(e.app.InstallApp, installReq(p)), "POST", "/v1/instances/app/install", installBody(p)}
		}, check: func(t *testing.T, _ *env, res map[string]any) {
			if id, _ := res["task_id"].(string); !strings.HasPrefix(id, "ZGCA") {
				t.Errorf("task_id %v", res["task_id"])
			}
		}},
		{rpc: "InstallApp", name: "unknown phone", code: codes.PermissionDenied, reason: "KOOPHONE.API.1001", make: func(e *env) call {
			return call{unary(e.app.InstallApp, installReq(unknownPhone)), "POST", "/v1/instances/app/install", installBody(unknownPhone)}
		}},
	}
}

// TestEveryRPCOverBothTransports runs each case once over gRPC and once over the REST mirror, against the
// embedded simulator on loopback, and asserts the same outcome: the gRPC code (and its HTTP status), the
// ErrorInfo reason of errors, the JSON of successes, and the request id handed back.
func TestEveryRPCOverBothTransports(t *testing.T) {
	e := newEnv(t)
	seen := map[string]bool{}
	for _, tc := range rpcCases() {
		seen[tc.rpc] = true
		t.Run(tc.rpc+"/"+tc.name+"/grpc", func(t *testing.T) {
			e.t = t
			c := tc.make(e)
			if tc.waits {
				defer e.runClock()()
			}
			var header metadata.MD
			ctx := metadata.AppendToOutgoingContext(e.ctx(), "x-request-id", "trace-"+tc.rpc)
			res, err := c.grpc(ctx, grpc.Header(&header))
			if got := status.Code(err); got != tc.code {
				t.Fatalf("code %v, want %v: %v", got, tc.code, err)
			}
			if ids := header.Get("x-request-id"); len(ids) != 1 || ids[0] != "trace-"+tc.rpc {
				t.Errorf("x-request-id header %v", ids)
			}
			if err != nil {
				if r := errorInfoReason(err); r != tc.reason {
					t.Errorf("reason %q, want %q (%v)", r, tc.reason, err)
				}
				return
			}
			if tc.check != nil {
				tc.check(t, e, asJSON(t, res))
			}
		})
		t.Run(tc.rpc+"/"+tc.name+"/rest", func(t *testing.T) {
			e.t = t
			c := tc.make(e)
			if tc.waits {
				defer e.runClock()()
			}
			r := e.rest(c.method, c.path, c.body, "X-Request-Id", "rest-"+tc.rpc)
			if r.status != httpStatus(tc.code) {
				t.Fatalf("HTTP %d, want %d: %s", r.status, httpStatus(tc.code), r.raw)
			}
			if got := r.header.Get("X-Request-Id"); got != "rest-"+tc.rpc {
				t.Errorf("X-Request-Id %q", got)
			}
			if tc.code != codes.OK {
				if got := restReason(r.body); got != tc.reason {
					t.Errorf("reason %q, want %q: %s", got, tc.reason, r.raw)
				}
				if r.body["code"] != float64(tc.code) {
					t.Errorf("body code %v, want %d", r.body["code"], tc.code)
				}
				return
			}
			if tc.check != nil {
				tc.check(t, e, r.body)
			}
		})
		_ = e.sim.SetFaults(nil)
	}
	e.t = t
	for _, rpc := range []string{"SyncCommand", "AsyncCommand", "GetTask", "SetVideoConfig", "BatchQueryStatus", "BatchReset",
		"GetDeviceToken", "AssignInstance", "UnassignInstance", "ListInstances", "BatchRebootInstance", "BatchShowSku",
		"CreateInstance", "DeleteInstance", "BatchPrepareInstances", "ShowProgress", "BatchBackupInstances",
		"StopInstancesStreaming", "ReleaseInstancesSession", "InstallApp"} {
		if !seen[rpc] {
			t.Errorf("no case for %s", rpc)
		}
	}
}

// TestBadInputNeverReachesKooPhone: an invalid request is refused with INVALID_ARGUMENT and a BadRequest on both
// transports, and the simulator sees no call at all.
func TestBadInputNeverReachesKooPhone(t *testing.T) {
	e := newEnv(t)
	e.sim.ResetCalls()
	_, err := e.inst.SyncCommand(e.ctx(), &pb.SyncCommandRequest{Command: "rm -rf /; reboot", InstanceIds: []string{"a"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "command") {
		t.Fatalf("gRPC: %v", err)
	}
	r := e.rest("POST", "/v1/instances/sync-command", `{"command":"ls | sh","instance_ids":[]}`)
	if r.status != http.StatusBadRequest || !strings.Contains(r.raw, "google.rpc.BadRequest") ||
		!strings.Contains(r.raw, `"field":"command"`) || !strings.Contains(r.raw, `"field":"instance_ids"`) {
		t.Fatalf("REST: %d %s", r.status, r.raw)
	}
	r = e.rest("POST", "/v1/instances/sync-command", `{"command":"ls","instance_ids":["a"],"instanceIdz":["b"]}`)
	if r.status != http.StatusBadRequest {
		t.Fatalf("unknown JSON field: %d %s", r.status, r.raw)
	}
	r = e.rest("GET", "/v1/instances/batch-query?page_no=0&page_size=5", "")
	if r.status != http.StatusBadRequest || !strings.Contains(r.raw, `"field":"page_no"`) {
		t.Fatalf("query validation: %d %s", r.status, r.raw)
	}
	for op, n := range e.sim.AllCalls() {
		if op != "IAM" && op != "BatchShowSku" && n != 0 { // the readiness probe may call BatchShowSku
			t.Errorf("simulator received %d %s calls", n, op)
		}
	}
}

func TestRESTMirrorLimitsAndRoutes(t *testing.T) {
	e := newEnv(t)
	big := `{"command":"` + strings.Repeat("a", 2<<20) + `","instance_ids":["a"]}`
	r := e.rest("POST", "/v1/instances/sync-command", big)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: HTTP %d", r.status)
	}
	r = e.rest("GET", "/v1/nowhere", "")
	if r.status != http.StatusNotFound || r.body["code"] != float64(codes.NotFound) {
		t.Fatalf("unknown path: %d %s", r.status, r.raw)
	}
	r = e.rest("DELETE", "/v1/instances/sync-command", "")
	if r.status == http.StatusOK {
		t.Fatalf("wrong method accepted: %s", r.raw)
	}
	// A request id KooPhone would refuse is replaced, not forwarded.
	r = e.rest("GET", "/v1/instances/sku", "", "X-Request-Id", "bad id with spaces")
	if got := r.header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") || r.status != http.StatusOK {
		t.Fatalf("bad request id: HTTP %d, X-Request-Id %q", r.status, got)
	}
}
