package sim_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

// The newer reference's surface: ListInstanceApp (operation 21), ListInstances' pool_name/order/order_by,
// GetDeviceToken's stream_type and CreateInstance's new fields.

type appList struct {
	Result []struct {
		AppName    string `json:"app_name"`
		AppVersion string `json:"app_version"`
		AppPkg     string `json:"app_pkg"`
		IconURL    string `json:"icon_url"`
	} `json:"result"`
	PageNo     int `json:"page_no"`
	PageSize   int `json:"page_size"`
	TotalCount int `json:"total_count"`
}

func (e *env) apps(id, query string) appList {
	e.t.Helper()
	r := e.call("GET", "/v1/instances/"+id+"/app-list?"+query, nil)
	r.want(e.t, 200, "0")
	var out appList
	r.data(e.t, &out)
	return out
}

func TestListInstanceAppShowsInstalledApps(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.ids(2)
	if got := e.apps(ids[0], "page_no=1&page_size=10&app_type=2"); got.TotalCount != 0 || len(got.Result) != 0 {
		t.Fatalf("third-party apps before any install: %+v", got)
	}
	system := e.apps(ids[0], "page_no=1&page_size=10&app_type=1")
	if system.TotalCount == 0 {
		t.Fatal("no system apps")
	}
	task := e.startTask("/v1/instances/app/install", installBody("com.tencent.mm", "8.0.58", ids[0]))
	if got := e.apps(ids[0], "page_no=1&page_size=10&app_type=2"); got.TotalCount != 0 {
		t.Fatalf("listed before the install job ended: %+v", got)
	}
	e.clk.Advance(2 * time.Second)
	_ = e.jobs(task.TaskID)
	got := e.apps(ids[0], "page_no=1&page_size=10&app_type=2")
	if got.TotalCount != 1 || got.Result[0].AppPkg != "com.tencent.mm" || got.Result[0].AppVersion != "8.0.58" ||
		got.Result[0].AppName != "demo.apk" || got.Result[0].IconURL == "" {
		t.Fatalf("%+v", got)
	}
	all := e.apps(ids[0], "page_no=1&page_size=200")
	if all.TotalCount != system.TotalCount+1 {
		t.Fatalf("all apps: %d, want %d", all.TotalCount, system.TotalCount+1)
	}
	// Paging: one per page, the last page ends the list.
	n := all.TotalCount
	last := e.apps(ids[0], "page_no="+strconv.Itoa(n)+"&page_size=1")
	if len(last.Result) != 1 || last.PageNo != n {
		t.Fatalf("last page: %+v", last)
	}
	if beyond := e.apps(ids[0], "page_no="+strconv.Itoa(n+1)+"&page_size=1"); len(beyond.Result) != 0 {
		t.Fatalf("beyond the end: %+v", beyond)
	}
	if other := e.apps(ids[1], "page_no=1&page_size=10&app_type=2"); other.TotalCount != 0 {
		t.Fatalf("the other phone got the app: %+v", other)
	}
	// A reset takes the app away again.
	e.startTask("/v1/instances/batch-reset", map[string]any{"instance_ids": []string{ids[0]}})
	e.clk.Advance(2 * time.Second)
	if got := e.apps(ids[0], "page_no=1&page_size=10&app_type=2"); got.TotalCount != 0 {
		t.Fatalf("after reset: %+v", got)
	}
}

func TestListInstanceAppErrors(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.ForeignInstances = []string{"foreign01"} })
	id := e.ids(1)[0]
	base := "/v1/instances/" + id + "/app-list?"
	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{base + "page_size=10", 400, "KOOPHONE.API.1000"},
		{base + "page_no=x&page_size=10", 400, "KOOPHONE.API.1000"},
		{base + "page_no=1&page_size=201", 400, "KOOPHONE.API.5004"},
		{base + "page_no=0&page_size=10", 400, "KOOPHONE.API.5004"},
		{base + "page_no=1&page_size=10&app_type=3", 400, "KOOPHONE.API.5002"},
		{"/v1/instances/foreign01/app-list?page_no=1&page_size=10", 401, "KOOPHONE.API.1001"},
		{"/v1/instances/nosuch01/app-list?page_no=1&page_size=10", 401, "KOOPHONE.API.1001"},
	} {
		e.call("GET", tc.path, nil).want(t, tc.status, tc.code)
	}
	h := e.headers()
	h.Del("X-Request-Id")
	e.raw("GET", base+"page_no=1&page_size=10", nil, h).want(t, 200, "KOOPHONE.API.0002")

	u := newEnv(t, func(c *sim.Config) { c.Unsubscribed = true })
	u.call("GET", "/v1/instances/"+u.ids(1)[0]+"/app-list?page_no=1&page_size=10", nil).want(t, 200, "KOOPHONE.API.1004")
}

func TestListInstancesPoolsAndOrder(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) {
		c.FleetSize = 5
		c.Pools = []string{"pool-a", "pool-b"}
	})
	list := func(q string) []string {
		r := e.call("GET", "/v1/instances/batch-query?page_no=1&page_size=100&x-request-id=r1&"+q, nil)
		r.want(t, 200, "0")
		var page struct {
			Result []struct {
				InstanceName string `json:"instance_name"`
			} `json:"result"`
		}
		r.data(t, &page)
		var names []string
		for _, p := range page.Result {
			names = append(names, p.InstanceName)
		}
		return names
	}
	if got := list("pool_name=pool-b"); len(got) != 2 || got[0] != "sim-00002" || got[1] != "sim-00004" {
		t.Fatalf("pool-b: %v", got)
	}
	if got := list("order=desc&order_by=instance_name"); len(got) != 5 || got[0] != "sim-00005" || got[4] != "sim-00001" {
		t.Fatalf("desc: %v", got)
	}
	if got := list("order=asc"); got[0] != "sim-00001" {
		t.Fatalf("asc: %v", got)
	}
	e.call("GET", "/v1/instances/batch-query?page_no=1&page_size=10&x-request-id=r1&order=up", nil).want(t, 400, "KOOPHONE.API.1000")
	e.call("GET", "/v1/instances/batch-query?page_no=1&page_size=10&x-request-id=r1&order_by=colour", nil).want(t, 400, "KOOPHONE.API.1000")
}

func TestGetDeviceTokenStreamType(t *testing.T) {
	e := newEnv(t, nil)
	id := e.ids(1)[0]
	// The query is checked before the phone's state: a bad stream_type is 1000 even on an unprepared phone.
	e.call("POST", "/v1/instances/"+id+"/auth?stream_type=3", nil).want(t, 400, "KOOPHONE.API.1000")
	e.call("POST", "/v1/instances/"+id+"/auth?stream_type=", nil).want(t, 400, "KOOPHONE.API.1000")
	// Valid (or absent) stream_type gets to the phone's state: not prepared.
	e.call("POST", "/v1/instances/"+id+"/auth?stream_type=2", nil).want(t, 200, "KOOPHONE.API.62010")
	e.call("POST", "/v1/instances/"+id+"/auth", nil).want(t, 200, "KOOPHONE.API.62010")
	last, ok := e.sim.Last("GetDeviceToken")
	if !ok || last.Query.Has("stream_type") || len(last.Body) != 0 {
		t.Fatalf("last request: %+v", last)
	}
}
