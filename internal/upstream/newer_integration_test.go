package upstream_test

// Operation 21 (ListInstanceApp) and the newer reference's request fields, client against simulator. Coverage:
//
//	#   Operation                 Test(s)
//	21  ListInstanceApp           TestSimOpsListInstanceApp, TestSimOpsListInstanceAppErrors
//	7   GetDeviceToken stream_type, 10 ListInstances pool_name/order/order_by,
//	13  CreateInstance network/customImageType/customImageId/specPoolId/nodeGroupId: TestSimNewerFieldsRoundTrip

import (
	"encoding/json"
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

func TestSimOpsListInstanceApp(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	c := e.client(nil, nil)
	p := e.ids(2)
	thirdParty := func(id string) *upstream.AppPage {
		t.Helper()
		page, err := c.ListInstanceApp(itCtx(t), upstream.ListInstanceAppRequest{InstanceID: id, PageNo: 1, PageSize: 50, AppType: 2})
		mustOK(t, "ListInstanceApp", err)
		return page
	}
	if got := thirdParty(p[0]); got.TotalCount != 0 || len(got.Result) != 0 {
		t.Fatalf("before install: %+v", got)
	}
	task, err := c.InstallApp(itCtx(t), installRequest(p[:1]))
	mustOK(t, "InstallApp", err)
	e.fake.Advance(e.cfg.JobDuration)
	wantJobs(t, c, task, jobSucceeded)
	got := thirdParty(p[0])
	want := installRequest(nil)
	if got.TotalCount != 1 || len(got.Result) != 1 || got.Result[0].AppPkg != want.ObjectName ||
		got.Result[0].AppVersion != want.ObjectVersion || got.PageNo != 1 || got.PageSize != 50 {
		t.Fatalf("after install: %+v", got)
	}
	if other := thirdParty(p[1]); other.TotalCount != 0 {
		t.Fatalf("a phone without the install lists %+v", other)
	}
	all, err := c.ListInstanceApp(itCtx(t), upstream.ListInstanceAppRequest{InstanceID: p[0], PageNo: 1, PageSize: 200})
	mustOK(t, "ListInstanceApp all", err)
	if all.TotalCount <= 1 || len(all.Result) != all.TotalCount {
		t.Fatalf("all apps: %+v", all)
	}
	last, ok := e.sim.Last("ListInstanceApp")
	if !ok || last.Query.Has("app_type") || last.Query.Get("page_size") != "200" {
		t.Fatalf("app_type must be left out when 0: %v", last.Query)
	}
}

func TestSimOpsListInstanceAppErrors(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, func(cfg *sim.Config) { cfg.ForeignInstances = []string{"foreign01"} })
	c := e.client(nil, nil)
	id := e.ids(1)[0]
	apps := func(r upstream.ListInstanceAppRequest) error {
		_, err := c.ListInstanceApp(itCtx(t), r)
		return err
	}
	for _, tc := range []struct {
		name   string
		req    upstream.ListInstanceAppRequest
		code   string
		status int
	}{
		{"1001 another tenant's phone", upstream.ListInstanceAppRequest{InstanceID: "foreign01", PageNo: 1, PageSize: 10}, "KOOPHONE.API.1001", 401},
		{"1001 unknown phone", upstream.ListInstanceAppRequest{InstanceID: "nosuch01", PageNo: 1, PageSize: 10}, "KOOPHONE.API.1001", 401},
		{"5002 app_type", upstream.ListInstanceAppRequest{InstanceID: id, PageNo: 1, PageSize: 10, AppType: 3}, "KOOPHONE.API.5002", 400},
		{"5004 page_size", upstream.ListInstanceAppRequest{InstanceID: id, PageNo: 1, PageSize: 201}, "KOOPHONE.API.5004", 400},
		{"1000 instance id too long", upstream.ListInstanceAppRequest{InstanceID: "a23456789012345678901234567890123", PageNo: 1, PageSize: 10}, "KOOPHONE.API.1000", 400},
	} {
		t.Run(tc.name, func(t *testing.T) { wantAPIError(t, apps(tc.req), tc.code, tc.status) })
	}

	u := newSimEnv(t, func(cfg *sim.Config) { cfg.Unsubscribed = true })
	uc := u.client(nil, nil)
	_, err := uc.ListInstanceApp(itCtx(t), upstream.ListInstanceAppRequest{InstanceID: u.ids(1)[0], PageNo: 1, PageSize: 10})
	wantAPIError(t, err, "KOOPHONE.API.1004", 200)

	// 9999: the simulator's "error" fault answers HTTP 500 KOOPHONE.API.9999; a read is retried, so let every
	// attempt fail.
	if err := e.sim.SetFaults([]sim.Fault{{Kind: sim.FaultError, Ops: []string{"ListInstanceApp"}}}); err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, apps(upstream.ListInstanceAppRequest{InstanceID: id, PageNo: 1, PageSize: 10}), "KOOPHONE.API.9999", 500)
}

func TestSimNewerFieldsRoundTrip(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, func(cfg *sim.Config) {
		cfg.FleetSize = 6
		cfg.Pools = []string{"pool-a", "pool-b", "pool-c"}
	})
	c := e.client(nil, nil)

	// ListInstances: pool_name, order and order_by are sent when set and honoured.
	page, err := c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 10, PoolName: "pool-c",
		Order: "desc", OrderBy: "instance_name"})
	mustOK(t, "ListInstances", err)
	if len(page.Result) != 2 || page.Result[0].InstanceName != "sim-00006" || page.Result[1].InstanceName != "sim-00003" {
		t.Fatalf("pool-c, by name descending: %+v", page.Result)
	}
	last, _ := e.sim.Last("ListInstances")
	if last.Query.Get("pool_name") != "pool-c" || last.Query.Get("order") != "desc" || last.Query.Get("order_by") != "instance_name" {
		t.Fatalf("query sent: %v", last.Query)
	}
	_, err = c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 10})
	mustOK(t, "ListInstances", err)
	if last, _ = e.sim.Last("ListInstances"); last.Query.Has("pool_name") || last.Query.Has("order") || last.Query.Has("order_by") {
		t.Fatalf("unset fields were sent: %v", last.Query)
	}

	// GetDeviceToken: stream_type travels in the query only when set; never a body.
	id := e.ids(1)[0]
	for _, tc := range []struct {
		streamType int
		query      string
	}{{0, ""}, {2, "2"}} {
		_, err := c.GetDeviceTokenWith(itCtx(t), upstream.DeviceTokenRequest{InstanceID: id, StreamType: tc.streamType})
		wantAPIError(t, err, "KOOPHONE.API.62010", 200) // not prepared: the request itself was accepted
		last, _ := e.sim.Last("GetDeviceToken")
		if last.Query.Get("stream_type") != tc.query || last.Query.Has("stream_type") != (tc.query != "") || len(last.Body) != 0 {
			t.Fatalf("stream_type %d: query %v body %q", tc.streamType, last.Query, last.Body)
		}
	}
	_, err = c.GetDeviceTokenWith(itCtx(t), upstream.DeviceTokenRequest{InstanceID: id, StreamType: 9})
	wantAPIError(t, err, "KOOPHONE.API.1000", 400)

	// CreateInstance: the new fields are sent when set; the phones land in the node group.
	cat, err := c.BatchShowSku(itCtx(t), "")
	mustOK(t, "BatchShowSku", err)
	imageType, imageID := 1, 42
	_, err = c.CreateInstance(itCtx(t), upstream.CreateInstanceRequest{
		OS: "AOSP11", InstanceSkuID: cat.SkuSpecResponseList[0].SkuResponses[0].CbcSkuID, BandSkuID: cat.BandInfo.CbcSkuID,
		RegionID: cat.SkuSpecResponseList[0].RegionID, InstanceNamePrefix: "newer", BandSize: 4, Count: 2,
		ChargeParam: upstream.ChargeParam{ChargingMode: 1, PeriodType: 2, PeriodNum: 1, IsAutoPay: 1},
		Network:     "ADN", CustomImageType: &imageType, CustomImageID: &imageID, SpecPoolID: "spec-1", NodeGroupID: "ng-7",
	})
	mustOK(t, "CreateInstance", err)
	last, _ = e.sim.Last("CreateInstance")
	var sent map[string]any
	if err := json.Unmarshal(last.Body, &sent); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"network": "ADN", "customImageType": 1.0, "customImageId": 42.0, "specPoolId": "spec-1", "nodeGroupId": "ng-7"} {
		if sent[k] != v {
			t.Fatalf("%s sent as %v, want %v (body %s)", k, sent[k], v, last.Body)
		}
	}
	page, err = c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 10, PoolName: "ng-7"})
	mustOK(t, "ListInstances ng-7", err)
	if page.TotalCount != 2 {
		t.Fatalf("node group ng-7 holds %d phones, want 2", page.TotalCount)
	}
	// Unset, none of them is sent (the seed's body exactly).
	_, err = c.CreateInstance(itCtx(t), upstream.CreateInstanceRequest{
		OS: "AOSP11", InstanceSkuID: cat.SkuSpecResponseList[0].SkuResponses[0].CbcSkuID, BandSkuID: cat.BandInfo.CbcSkuID,
		RegionID: cat.SkuSpecResponseList[0].RegionID, InstanceNamePrefix: "seed", BandSize: 4, Count: 1,
		ChargeParam: upstream.ChargeParam{ChargingMode: 1, PeriodType: 2, PeriodNum: 1, IsAutoPay: 1},
	})
	mustOK(t, "CreateInstance", err)
	last, _ = e.sim.Last("CreateInstance")
	sent = nil
	_ = json.Unmarshal(last.Body, &sent)
	for _, k := range []string{"network", "customImageType", "customImageId", "specPoolId", "nodeGroupId"} {
		if _, ok := sent[k]; ok {
			t.Fatalf("%s sent although unset: %s", k, last.Body)
		}
	}
}
