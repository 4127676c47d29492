package server

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

// newerRPCCases are the cases of operation 21 (ListInstanceApp) and of the newer reference's request fields, in
// TestEveryRPCOverBothTransports' form.
func newerRPCCases() []rpcCase {
	return []rpcCase{
		// 21 ListInstanceApp
		{rpc: "ListInstanceApp", name: "ok", code: codes.OK, make: func(e *env) call {
			p := e.phone()
			return call{unary(e.app.ListInstanceApp, &pb.ListInstanceAppRequest{InstanceId: p, PageNo: 1, PageSize: 200, AppType: pb.AppType_APP_TYPE_SYSTEM}),
				"GET", "/v1/instances/" + p + "/app-list?page_no=1&page_size=200&app_type=APP_TYPE_SYSTEM", ""}
		}, check: func(t *testing.T, e *env, res map[string]any) {
			if res["total_count"].(float64) < 1 || firstOf(res, "result", "app_pkg") == nil || res["page_size"] != float64(200) {
				t.Errorf("system apps: %v", res)
			}
			if last, _ := e.sim.Last("ListInstanceApp"); last.Query.Get("app_type") != "1" {
				t.Errorf("app_type sent as %q", last.Query.Get("app_type"))
			}
		}},
		{rpc: "ListInstanceApp", name: "unknown phone", code: codes.PermissionDenied, reason: "KOOPHONE.API.1001", make: func(e *env) call {
			return call{unary(e.app.ListInstanceApp, &pb.ListInstanceAppRequest{InstanceId: unknownPhone, PageNo: 1, PageSize: 10}),
				"GET", "/v1/instances/" + unknownPhone + "/app-list?page_no=1&page_size=10", ""}
		}},
		{rpc: "ListInstanceApp", name: "upstream internal error", code: codes.Internal, reason: "KOOPHONE.API.9999", make: func(e *env) call {
			_ = e.sim.SetFaults([]sim.Fault{{Kind: sim.FaultError, Ops: []string{"ListInstanceApp"}}})
			p := e.phone()
			return call{unary(e.app.ListInstanceApp, &pb.ListInstanceAppRequest{InstanceId: p, PageNo: 1, PageSize: 10}),
				"GET", "/v1/instances/" + p + "/app-list?page_no=1&page_size=10", ""}
		}},
		// Newer fields: each reaches the simulator as KooPhone's name and value.
		{rpc: "GetDeviceToken", name: "stream_type H5 sent", code: codes.FailedPrecondition, reason: "KOOPHONE.API.62010", make: func(e *env) call {
			p := e.phone()
			e.t.Cleanup(func() {
				if last, _ := e.sim.Last("GetDeviceToken"); last.Query.Get("stream_type") != "2" {
					e.t.Errorf("GetDeviceToken query %v", last.Query)
				}
			})
			return call{unary(e.inst.GetDeviceToken, &pb.GetDeviceTokenRequest{InstanceId: p, StreamType: pb.StreamType_STREAM_TYPE_H5}),
				"POST", "/v1/instances/" + p + "/auth?stream_type=STREAM_TYPE_H5", ""}
		}},
		{rpc: "ListInstances", name: "pool_name and order", code: codes.OK, make: func(e *env) call {
			return call{unary(e.inst.ListInstances, &pb.ListInstancesRequest{PageNo: 1, PageSize: 3, PoolName: sim.DefaultPool, Order: "desc", OrderBy: "instance_name"}),
				"GET", "/v1/instances/batch-query?page_no=1&page_size=3&pool_name=" + sim.DefaultPool + "&order=desc&order_by=instance_name", ""}
		}, check: func(t *testing.T, e *env, res map[string]any) {
			last, _ := e.sim.Last("ListInstances")
			if last.Query.Get("pool_name") != sim.DefaultPool || last.Query.Get("order") != "desc" || last.Query.Get("order_by") != "instance_name" {
				t.Errorf("query sent: %v", last.Query)
			}
			items, _ := res["result"].([]any)
			var names []string
			for _, it := range items {
				names = append(names, it.(map[string]any)["instance_name"].(string))
			}
			if len(names) != 3 || !slices.IsSortedFunc(names, func(a, b string) int { return strings.Compare(b, a) }) {
				t.Errorf("not descending by name: %v", names)
			}
		}},
		{rpc: "CreateInstance", name: "network ADN and image fields", code: codes.OK, make: func(e *env) call {
			req := createReq(goodSku, 1)
			req.Network, req.CustomImageType, req.CustomImageId, req.SpecPoolId, req.NodeGroupId = "ADN", pb.CustomImageType_CUSTOM_IMAGE_TYPE_CUSTOM.Enum(), 42, "spec-1", "ng-1"
			body := strings.TrimSuffix(createBody(goodSku, 1), "}") +
				`,"network":"ADN","custom_image_type":"CUSTOM_IMAGE_TYPE_CUSTOM","custom_image_id":42,"spec_pool_id":"spec-1","node_group_id":"ng-1"}`
			return call{unary(e.order.CreateInstance, req), "POST", "/v1/instances/create", body}
		}, check: func(t *testing.T, e *env, res map[string]any) {
			last, _ := e.sim.Last("CreateInstance")
			var sent map[string]any
			_ = json.Unmarshal(last.Body, &sent)
			// The contract's CUSTOM is KooPhone's 1.
			for k, v := range map[string]any{"network": "ADN", "customImageType": 1.0, "customImageId": 42.0, "specPoolId": "spec-1", "nodeGroupId": "ng-1"} {
				if sent[k] != v {
					t.Errorf("%s sent as %v, want %v", k, sent[k], v)
				}
			}
		}},
	}
}
