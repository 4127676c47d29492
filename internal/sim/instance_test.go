package sim_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func videoSettings(mod func([]map[string]any) []map[string]any) []map[string]any {
	spec := func(rate int) map[string]any { return map[string]any{"code_rate": rate, "fps": 30} }
	var out []map[string]any
	for _, n := range []string{"MOBILE_NETWORK", "WIFI", "WIRED"} {
		for _, enc := range []string{"H264", "H265"} {
			out = append(out, map[string]any{
				"network_type": n, "encoding_type": enc,
				"video_spec_groups": []any{map[string]any{
					"definition_540P": spec(6000), "definition_720P": spec(6000), "definition_1080P": spec(8000),
				}},
			})
		}
	}
	if mod != nil {
		out = mod(out)
	}
	return out
}

func TestSetVideoConfig(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.ids(2)
	put := func(settings any) *resp {
		return e.call("PUT", "/v1/instances/video-setting", map[string]any{"instance_ids": ids, "instance_settings": settings})
	}
	r := put(videoSettings(nil))
	r.want(t, 200, "0")
	if r.env["data"] != nil || r.str("error_msg") != "ok" {
		t.Errorf("body %s", r.body)
	}
	e.call("POST", "/v1/instances/video-setting", map[string]any{}).want(t, 404, "APIGW.0101")

	for _, tc := range []struct {
		name   string
		mod    func([]map[string]any) []map[string]any
		status int
		code   string
	}{
		{"missing combination", func(s []map[string]any) []map[string]any { return s[1:] }, 400, "KOOPHONE.API.1005"},
		{"duplicate combination", func(s []map[string]any) []map[string]any { return append(s, s[0]) }, 400, "KOOPHONE.API.1005"},
		{"bad network", func(s []map[string]any) []map[string]any { s[0]["network_type"] = "5G"; return s }, 400, "KOOPHONE.API.1000"},
		{"bad encoding", func(s []map[string]any) []map[string]any { s[0]["encoding_type"] = "AV1"; return s }, 400, "KOOPHONE.API.1000"},
		{"rate not multiple of 100", func(s []map[string]any) []map[string]any {
			s[2]["video_spec_groups"].([]any)[0].(map[string]any)["definition_720P"] = map[string]any{"code_rate": 150, "fps": 30}
			return s
		}, 400, "KOOPHONE.API.1000"},
		{"rate too high", func(s []map[string]any) []map[string]any {
			s[2]["video_spec_groups"].([]any)[0].(map[string]any)["definition_720P"] = map[string]any{"code_rate": 10100, "fps": 30}
			return s
		}, 400, "KOOPHONE.API.1000"},
		{"fps 25", func(s []map[string]any) []map[string]any {
			s[3]["video_spec_groups"].([]any)[0].(map[string]any)["definition_540P"] = map[string]any{"code_rate": 100, "fps": 25}
			return s
		}, 400, "KOOPHONE.API.1000"},
		{"missing definition", func(s []map[string]any) []map[string]any {
			delete(s[4]["video_spec_groups"].([]any)[0].(map[string]any), "definition_1080P")
			return s
		}, 400, "KOOPHONE.API.1000"},
		{"no groups", func(s []map[string]any) []map[string]any { s[5]["video_spec_groups"] = []any{}; return s }, 400, "KOOPHONE.API.1000"},
		{"limits are fine", func(s []map[string]any) []map[string]any {
			s[0]["video_spec_groups"].([]any)[0].(map[string]any)["definition_540P"] = map[string]any{"code_rate": 100, "fps": 60}
			s[1]["video_spec_groups"].([]any)[0].(map[string]any)["definition_540P"] = map[string]any{"code_rate": 10000, "fps": 30}
			return s
		}, 200, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) { put(videoSettings(tc.mod)).want(t, tc.status, tc.code) })
	}
	e.call("PUT", "/v1/instances/video-setting", map[string]any{"instance_ids": []string{"nope0000"},
		"instance_settings": videoSettings(nil)}).want(t, 401, "KOOPHONE.API.1001")
	h := e.headers()
	h.Del("X-Request-Id")
	e.raw("PUT", "/v1/instances/video-setting", map[string]any{"instance_ids": ids, "instance_settings": videoSettings(nil)}, h).
		want(t, 200, "KOOPHONE.API.0002")
}

func TestBatchQueryStatusAndReset(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.ids(3)
	r := e.call("POST", "/v1/instances/batch-query-status", map[string]any{"instance_ids": ids})
	r.want(t, 200, "0")
	var d struct {
		StatusResults []struct {
			InstanceID string `json:"instance_id"`
			Status     int    `json:"status"`
		} `json:"status_results"`
	}
	r.data(t, &d)
	if len(d.StatusResults) != 3 || d.StatusResults[2].InstanceID != ids[2] || d.StatusResults[2].Status != 0 {
		t.Fatalf("%+v", d)
	}
	e.call("POST", "/v1/instances/batch-query-status", map[string]any{"instance_ids": []string{}}).want(t, 400, "KOOPHONE.API.1000")
	e.call("POST", "/v1/instances/batch-query-status", map[string]any{"instance_ids": []string{"zzzzzzzz"}}).want(t, 401, "KOOPHONE.API.1001")

	// Install an app, then reset: the app is gone when the reset job ends, and the prepare status says resetting.
	install := e.startTask("/v1/instances/app/install", installBody("com.example.demo", "1.0", ids[0]))
	e.clk.Advance(2 * time.Second)
	if !strings.Contains(e.sync("pm list packages -3", ids[0])[0].ExecuteMsg, "com.example.demo") {
		t.Fatal("app not installed")
	}
	_ = install
	e.assign("u1", ids[0])
	task := e.startTask("/v1/instances/batch-reset", map[string]any{"instance_ids": ids[:1]})
	if !strings.HasPrefix(task.TaskID, "RM_") || len(task.TaskID) != 35 {
		t.Fatalf("reset task id %q", task.TaskID)
	}
	if st := e.prepare("u1", ids[0]); st[0] != 4 {
		t.Fatalf("prepare during reset: %v", st)
	}
	e.clk.Advance(2 * time.Second)
	if j := e.jobs(task.TaskID)[0]; j.Status != 2 {
		t.Fatalf("reset job %+v", j)
	}
	if out := e.sync("pm list packages -3", ids[0])[0].ExecuteMsg; out != "" {
		t.Fatalf("apps after reset: %q", out)
	}
}

func (e *env) assign(user string, ids ...string) {
	e.t.Helper()
	var pairs []map[string]string
	for _, id := range ids {
		pairs = append(pairs, map[string]string{"user_id": user, "instance_id": id})
	}
	e.call("POST", "/v1/instances/assign", map[string]any{"user_instances": pairs}).want(e.t, 200, "0")
}

func TestAssignUnassign(t *testing.T) {
	var frozen string
	e := newEnv(t, func(c *sim.Config) {
		frozen = sim.New(sim.Config{Clock: c.Clock, Seed: c.Seed}).InstanceIDs()[3]
		c.FrozenInstances = []string{frozen}
		c.ForeignInstances = []string{"f0reign01"}
	})
	ids := e.ids(3)
	pair := func(u, id string) map[string]any {
		return map[string]any{"user_instances": []map[string]string{{"user_id": u, "instance_id": id}}}
	}
	assign := func(body any) *resp { return e.call("POST", "/v1/instances/assign", body) }
	unassign := func(body any) *resp { return e.call("POST", "/v1/instances/unassign", body) }

	assign(pair("1008600000104285462", ids[0])).want(t, 200, "0")
	assign(pair("1008600000104285462", ids[0])).want(t, 200, "0") // same pair again: nothing to do
	assign(pair("someone-else", ids[0])).want(t, 200, "KPAPI.2209")
	assign(pair("u2", frozen)).want(t, 200, "KOOPHONE.API.2004")
	e.deviceToken(frozen).want(t, 200, "KOOPHONE.API.2004")
	if rows := e.list("instance_id=" + frozen); rows[0].FrozenStatus != 1 {
		t.Fatalf("frozen row %+v", rows[0])
	}
	assign(pair("u2", "f0reign01")).want(t, 401, "KOOPHONE.API.1001")
	assign(pair("u2", "nothere1")).want(t, 401, "KOOPHONE.API.1001")
	assign(pair(strings.Repeat("u", 33), ids[1])).want(t, 400, "KOOPHONE.API.1000")
	assign(pair("", ids[1])).want(t, 400, "KOOPHONE.API.1000")
	assign(map[string]any{"user_instances": []any{}}).want(t, 400, "KOOPHONE.API.1000")
	// The seed's example sends user_id as a number; the table says string.
	assign(map[string]any{"user_instances": []map[string]any{{"user_id": 1123422, "instance_id": ids[1]}}}).want(t, 400, "KOOPHONE.API.1000")
	// All or nothing: one bad pair, nothing assigned.
	assign(map[string]any{"user_instances": []map[string]string{
		{"user_id": "u3", "instance_id": ids[1]}, {"user_id": "u3", "instance_id": ids[0]},
	}}).want(t, 200, "KPAPI.2209")
	if rows := e.list("instance_id=" + ids[1]); rows[0].AssignStatus != 0 {
		t.Fatalf("half-assigned: %+v", rows[0])
	}

	rows := e.list("instance_id=" + ids[0])
	if rows[0].AssignStatus != 1 || rows[0].AssignUser != "1008600000104285462" {
		t.Fatalf("%+v", rows[0])
	}

	unassign(pair("u9", ids[0])).want(t, 200, "KOOPHONE.API.2210")
	unassign(pair("u9", ids[1])).want(t, 200, "KOOPHONE.API.2210")
	task := taskData{}
	r := unassign(pair("1008600000104285462", ids[0]))
	r.want(t, 200, "0")
	r.data(t, &task)
	if !strings.HasPrefix(task.TaskID, "RM_") || len(task.CmdJobs) != 1 || task.CmdJobs[0].InstanceID != ids[0] {
		t.Fatalf("%+v", task)
	}
	e.clk.Advance(2 * time.Second)
	if j := e.jobs(task.TaskID)[0]; j.Status != 2 {
		t.Fatalf("%+v", j)
	}
	if rows := e.list("instance_id=" + ids[0]); rows[0].AssignStatus != 0 || rows[0].AssignUser != "" {
		t.Fatalf("still assigned: %+v", rows[0])
	}
	assign(pair("someone-else", ids[0])).want(t, 200, "0")
}

type row struct {
	InstanceID    string `json:"instance_id"`
	InstanceName  string `json:"instance_name"`
	Region        string `json:"region"`
	InstanceSku   string `json:"instance_sku"`
	FrozenStatus  int    `json:"frozen_status"`
	RunningStatus int    `json:"running_status"`
	LoginStatus   int    `json:"login_status"`
	AssignStatus  int    `json:"assign_status"`
	AssignUser    string `json:"assign_user"`
	BillingMode   string `json:"billing_mode"`
	ProjectID     string `json:"project_id"`
	ProjectName   string `json:"project_name"`
	PhoneID       string `json:"phone_id"`
	MemberName    string `json:"member_name"`
	AccountName   string `json:"account_name"`
	RegionName    string `json:"region_name"`
	RegionNameEn  string `json:"region_name_en"`
	BackupStatus  int    `json:"backup_status"`
	BackupTime    string `json:"backup_time"`
	RestoreStatus int    `json:"restore_status"`
	RestoreTime   string `json:"restore_time"`
}

type listPage struct {
	Result     []row `json:"result"`
	PageNo     int   `json:"page_no"`
	PageSize   int   `json:"page_size"`
	TotalCount int   `json:"total_count"`
}

func (e *env) listPage(query string) listPage {
	e.t.Helper()
	r := e.call("GET", "/v1/instances/batch-query?x-request-id=list-1&page_no=1&page_size=100&"+query, nil)
	r.want(e.t, 200, "0")
	var p listPage
	r.data(e.t, &p)
	return p
}

func (e *env) list(query string) []row { return e.listPage(query).Result }

func TestListInstances(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.sim.InstanceIDs()
	r := e.call("GET", "/v1/instances/batch-query?x-request-id=l1&page_no=1&page_size=200&pool_scene_tag=CLOUD_PHONE", nil)
	r.want(t, 200, "0")
	if r.str("error_msg") != "OK" {
		t.Errorf("error_msg %q", r.str("error_msg"))
	}
	var p listPage
	r.data(t, &p)
	if p.PageSize != 100 || p.PageNo != 1 || p.TotalCount != 20 || len(p.Result) != 20 {
		t.Fatalf("page %d/%d total %d rows %d", p.PageNo, p.PageSize, p.TotalCount, len(p.Result))
	}
	first := p.Result[0]
	want := row{
		InstanceID: ids[0], InstanceName: "sim-00001", Region: "cn-north-7",
		InstanceSku:   "专业版 | 8 核 | 16GB | 10GB 存储 | 最高分辨率 720p",
		RunningStatus: 2, BillingMode: "1", ProjectID: sim.DefaultProjectID, ProjectName: "cn-north-7",
		PhoneID: "null", AccountName: sim.DefaultDomain, RegionName: "华北-乌兰察布-二零三",
		RegionNameEn: "CN North-Ulanqab203", BackupTime: kooTime(start.AddDate(0, 0, -30)), RestoreTime: kooTime(start.AddDate(0, 0, -30)),
	}
	if first != want {
		t.Fatalf("row\n got %+v\nwant %+v", first, want)
	}
	for i, row := range p.Result {
		if len(row.InstanceID) != 8 || row.InstanceName != fmt.Sprintf("sim-%05d", i+1) {
			t.Fatalf("row %d: %+v", i, row)
		}
	}

	// Paging.
	r = e.call("GET", "/v1/instances/batch-query?x-request-id=l1&page_no=2&page_size=7", nil)
	r.data(t, &p)
	if p.TotalCount != 20 || len(p.Result) != 7 || p.Result[0].InstanceID != ids[7] {
		t.Fatalf("page 2: %+v", p)
	}
	r = e.call("GET", "/v1/instances/batch-query?x-request-id=l1&page_no=99&page_size=7", nil)
	r.data(t, &p)
	if p.TotalCount != 20 || len(p.Result) != 0 {
		t.Fatalf("page 99: %+v", p)
	}

	// Filters.
	if rows := e.list("instance_id=" + ids[4]); len(rows) != 1 || rows[0].InstanceID != ids[4] {
		t.Fatalf("by id: %+v", rows)
	}
	if rows := e.list("instance_name=sim-0001"); len(rows) != 10 {
		t.Fatalf("by name: %d rows", len(rows))
	}
	// The fleet was created an hour apart, starting 30 days before the clock.
	if rows := e.list("query_start_time=" + url.QueryEscape(kooTime(fleetBorn.Add(59*time.Minute))) + "&query_end_time=" + url.QueryEscape(kooTime(fleetBorn.Add(3*time.Hour)))); len(rows) != 3 ||
		rows[0].InstanceID != ids[1] {
		t.Fatalf("by time: %+v", rows)
	}
	if rows := e.list("pool_scene_tag=CLOUD_APP"); len(rows) != 0 {
		t.Fatalf("CLOUD_APP: %d", len(rows))
	}

	for _, tc := range []struct {
		query  string
		status int
		code   string
	}{
		{"page_size=10", 400, "KOOPHONE.API.1000"},
		{"page_no=1", 400, "KOOPHONE.API.1000"},
		{"page_no=0&page_size=10", 400, "KOOPHONE.API.1000"},
		{"page_no=1&page_size=x", 400, "KOOPHONE.API.1000"},
		{"page_no=1&page_size=10&pool_scene_tag=CLOUD_TV", 400, "KOOPHONE.API.1000"},
		{"page_no=1&page_size=10&query_start_time=2023-08-15T14:30:45Z", 400, "KOOPHONE.API.5002"},
		{"page_no=1&page_size=10&query_end_time=yesterday", 400, "KOOPHONE.API.5002"},
		{"page_no=1&page_size=10&query_start_time=2023-08-15%2014:30:45&query_end_time=2023-08-15%2014:30:44", 400, "KOOPHONE.API.5004"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			e.call("GET", "/v1/instances/batch-query?x-request-id=l1&"+tc.query, nil).want(t, tc.status, tc.code)
		})
	}
}

func TestBatchReboot(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.RebootDuration = 5 * time.Second })
	ids := e.ids(2)
	r := e.call("POST", "/v1/instances/reboot", map[string]any{"instance_ids": ids[:1]})
	r.want(t, 200, "0")
	if r.str("error_msg") != "OK" || r.env["data"] != nil {
		t.Errorf("body %s", r.body)
	}
	if rows := e.list("instance_id=" + ids[0]); rows[0].RunningStatus != 4 {
		t.Fatalf("rebooting phone running_status %d", rows[0].RunningStatus)
	}
	e.call("POST", "/v1/instances/reboot", map[string]any{"instance_ids": ids}).want(t, 400, "KOOPHONE.API.5005")
	if res := e.sync("id", ids[0]); res[0].Status != -1 || res[0].ExecuteMsg != "error: device offline" {
		t.Fatalf("command on a rebooting phone: %+v", res)
	}
	e.clk.Advance(5 * time.Second)
	if rows := e.list("instance_id=" + ids[0]); rows[0].RunningStatus != 2 {
		t.Fatalf("after reboot running_status %d", rows[0].RunningStatus)
	}
	e.call("POST", "/v1/instances/reboot", map[string]any{"instance_ids": ids}).want(t, 200, "0")
	e.call("POST", "/v1/instances/reboot", map[string]any{"instance_ids": []string{"missing1"}}).want(t, 401, "KOOPHONE.API.1001")
}
