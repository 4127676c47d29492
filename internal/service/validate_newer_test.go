package service

import (
	"strings"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// newerValidationCases cover the newer reference's fields, ListInstanceApp and the fleet RPCs.
func newerValidationCases() []validationCase {
	long := func(n int) string { return strings.Repeat("a", n) }
	list := func(mut func(*pb.ListInstancesRequest)) *pb.ListInstancesRequest {
		r := &pb.ListInstancesRequest{PageNo: 1, PageSize: 100}
		mut(r)
		return r
	}
	create := func(mut func(*pb.CreateInstanceRequest)) *pb.CreateInstanceRequest {
		r := goodCreate()
		mut(r)
		return r
	}
	apps := func(mut func(*pb.ListInstanceAppRequest)) *pb.ListInstanceAppRequest {
		r := &pb.ListInstanceAppRequest{InstanceId: "a44uhlf7", PageNo: 1, PageSize: 200}
		mut(r)
		return r
	}
	all := &pb.FleetSelector{Filter: &pb.FleetFilter{All: true}}
	reset := func(mut func(*pb.ResetFleetRequest)) *pb.ResetFleetRequest {
		r := &pb.ResetFleetRequest{Selector: &pb.FleetSelector{InstanceIds: []string{"a44uhlf7"}}}
		mut(r)
		return r
	}
	return []validationCase{
		{"token stream type H5", &pb.GetDeviceTokenRequest{InstanceId: "a44uhlf7", StreamType: pb.StreamType_STREAM_TYPE_H5}, "", ""},
		{"token stream type 3", &pb.GetDeviceTokenRequest{InstanceId: "a44uhlf7", StreamType: 3}, "stream_type", "enum.defined_only"},
		{"list pool name", list(func(r *pb.ListInstancesRequest) { r.PoolName, r.Order, r.OrderBy = "pool-1", "desc", "instance_name" }), "", ""},
		{"list pool name 65", list(func(r *pb.ListInstancesRequest) { r.PoolName = long(65) }), "pool_name", "string.max_len"},
		{"list order up", list(func(r *pb.ListInstancesRequest) { r.Order = "up" }), "order", "string.in"},
		{"list order_by injection", list(func(r *pb.ListInstancesRequest) { r.OrderBy = "name;drop" }), "order_by", "string.pattern"},
		{"create ADN", create(func(r *pb.CreateInstanceRequest) { r.Network = "ADN" }), "", ""},
		{"create network wifi", create(func(r *pb.CreateInstanceRequest) { r.Network = "WIFI" }), "network", "string.in"},
		{"create image", create(func(r *pb.CreateInstanceRequest) {
			r.CustomImageType, r.CustomImageId = pb.CustomImageType_CUSTOM_IMAGE_TYPE_PRIVATE.Enum(), 42
			r.SpecPoolId, r.NodeGroupId = "spec-1", "ng-1"
		}), "", ""},
		{"create image type system (KooPhone 0)", create(func(r *pb.CreateInstanceRequest) {
			r.CustomImageType = pb.CustomImageType_CUSTOM_IMAGE_TYPE_SYSTEM.Enum()
		}), "", ""},
		{"create image type 3", create(func(r *pb.CreateInstanceRequest) { r.CustomImageType = pb.CustomImageType(3).Enum() }), "custom_image_type", "enum.defined_only"},
		{"create image type -1", create(func(r *pb.CreateInstanceRequest) { r.CustomImageType = pb.CustomImageType(-1).Enum() }), "custom_image_type", "enum.defined_only"},
		{"create image id negative", create(func(r *pb.CreateInstanceRequest) { r.CustomImageId = -1 }), "custom_image_id", "int32.gte"},
		{"create node group 65", create(func(r *pb.CreateInstanceRequest) { r.NodeGroupId = long(65) }), "node_group_id", "string.max_len"},
		{"create count 1501 stays refused", create(func(r *pb.CreateInstanceRequest) { r.Count = 1501 }), "count", "int32.gte_lte"},

		{"apps ok", apps(func(*pb.ListInstanceAppRequest) {}), "", ""},
		{"apps third party", apps(func(r *pb.ListInstanceAppRequest) { r.AppType = pb.AppType_APP_TYPE_THIRD_PARTY }), "", ""},
		{"apps size 201", apps(func(r *pb.ListInstanceAppRequest) { r.PageSize = 201 }), "page_size", "int32.gte_lte"},
		{"apps page 0", apps(func(r *pb.ListInstanceAppRequest) { r.PageNo = 0 }), "page_no", "int32.gte"},
		{"apps type 3", apps(func(r *pb.ListInstanceAppRequest) { r.AppType = 3 }), "app_type", "enum.defined_only"},
		{"apps id slash", apps(func(r *pb.ListInstanceAppRequest) { r.InstanceId = "a/b" }), "instance_id", "instance_id.charset"},

		{"fleet all", &pb.ListAllInstancesRequest{Selector: all}, "", ""},
		{"fleet no selector", &pb.ListAllInstancesRequest{}, "selector", "required"},
		{"fleet empty selector", &pb.ListAllInstancesRequest{Selector: &pb.FleetSelector{}}, "selector", "selector.one_of"},
		{"fleet ids and filter", &pb.ListAllInstancesRequest{Selector: &pb.FleetSelector{InstanceIds: []string{"a"}, Filter: &pb.FleetFilter{All: true}}}, "selector", "selector.one_of"},
		{"fleet empty filter", &pb.ListAllInstancesRequest{Selector: &pb.FleetSelector{Filter: &pb.FleetFilter{}}}, "selector.filter", "filter.not_empty"},
		{"fleet pool filter", &pb.ListAllInstancesRequest{Selector: &pb.FleetSelector{Filter: &pb.FleetFilter{PoolName: "p"}}}, "", ""},
		{"fleet region filter alone", &pb.ListAllInstancesRequest{Selector: &pb.FleetSelector{Filter: &pb.FleetFilter{Region: "cn-north-7"}}}, "", ""},
		{"fleet region filter upper case", reset(func(r *pb.ResetFleetRequest) {
			r.Selector = &pb.FleetSelector{Filter: &pb.FleetFilter{All: true, Region: "CN-North-7"}}
		}), "selector.filter.region", "region.id"},
		{"fleet region filter spaces", reset(func(r *pb.ResetFleetRequest) {
			r.Selector = &pb.FleetSelector{Filter: &pb.FleetFilter{Region: "cn north 7"}}
		}), "selector.filter.region", "region.id"},
		{"fleet region filter trailing dash", reset(func(r *pb.ResetFleetRequest) {
			r.Selector = &pb.FleetSelector{Filter: &pb.FleetFilter{Region: "cn-north-"}}
		}), "selector.filter.region", "region.id"},
		{"fleet region filter 65", reset(func(r *pb.ResetFleetRequest) {
			r.Selector = &pb.FleetSelector{Filter: &pb.FleetFilter{Region: long(65)}}
		}), "selector.filter.region", "region.id"},
		{"fleet region filter 64", reset(func(r *pb.ResetFleetRequest) {
			r.Selector = &pb.FleetSelector{Filter: &pb.FleetFilter{Region: long(64)}}
		}), "", ""},
		{"fleet cursor 513", &pb.ListAllInstancesRequest{Selector: all, Cursor: long(513)}, "cursor", "string.max_len"},
		{"fleet 150 ids", reset(func(r *pb.ResetFleetRequest) { r.Selector.InstanceIds = ids(150) }), "", ""},
		{"fleet id 33", reset(func(r *pb.ResetFleetRequest) { r.Selector.InstanceIds = []string{long(33)} }), "selector.instance_ids[0]", "string.max_len"},
		{"fleet batch 101", reset(func(r *pb.ResetFleetRequest) { r.Options = &pb.FleetOptions{BatchSize: 101} }), "options.batch_size", "int32.gte_lte"},
		{"fleet running status 9", reset(func(r *pb.ResetFleetRequest) {
			r.Selector = &pb.FleetSelector{Filter: &pb.FleetFilter{RunningStatus: "RUNNING"}}
		}), "selector.filter.running_status", "string.in"},
		{"fleet command charset", &pb.RunFleetCommandRequest{Command: "ls; rm", Selector: all}, "command", "command.charset"},
		{"fleet install http", &pb.InstallAppOnFleetRequest{Selector: all, ObjectName: "a", FileName: "a.apk", ObjectVersion: "1",
			ObjectSize: "1", BizType: "apk", ContentType: "x", InstallPackageUrl: "http://x/a.apk"}, "install_package_url", "install_package_url.https"},
		{"fleet apps no package", &pb.ListFleetAppsRequest{Selector: all}, "package", "string.min_len"},
	}
}
