package sim_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

type cmdResult struct {
	InstanceID string `json:"instance_id"`
	Status     int    `json:"status"`
	ErrorCode  string `json:"error_code"`
	ErrorMsg   string `json:"error_msg"`
	ExecuteMsg string `json:"execute_msg"`
}

func (e *env) sync(cmd string, ids ...string) []cmdResult {
	e.t.Helper()
	r := e.call("POST", "/v1/instances/sync-command", map[string]any{"command": cmd, "instance_ids": ids})
	r.want(e.t, 200, "0")
	if r.str("error_msg") != "ok" {
		e.t.Errorf("error_msg %q", r.str("error_msg"))
	}
	var d struct {
		CmdResults []cmdResult `json:"cmd_results"`
	}
	r.data(e.t, &d)
	return d.CmdResults
}

func TestSyncCommandShell(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.ids(2)
	for _, tc := range []struct {
		cmd    string
		status int
		want   string // substring of execute_msg
	}{
		{"echo hello   world", 2, "hello world"},
		{"ls /system", 2, "build.prop"},
		{"ls -l /system", 2, "drwxr-xr-x"},
		{"ls /nowhere", -1, "ls: cannot access '/nowhere': No such file or directory"},
		{"getprop ro.serialno", 2, ids[0]},
		{"getprop ro.build.version.release", 2, "9"},
		{"getprop", 2, "[ro.product.model]: [KooPhone]"},
		{"pm list packages", 2, "package:com.android.settings"},
		{"dumpsys battery", 2, "level: 100"},
		{"id", 2, "uid=2000(shell)"},
		{"uname -a", 2, "Linux localhost"},
		{"date", 2, start.Format(time.UnixDate)},
		{"cat /system/build.prop", 2, "ro.serialno=" + ids[0]},
		{"reboot", -1, "sh: reboot: not found"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			res := e.sync(tc.cmd, ids[0])
			if len(res) != 1 || res[0].InstanceID != ids[0] || res[0].Status != tc.status || !strings.Contains(res[0].ExecuteMsg, tc.want) {
				t.Fatalf("%+v, want status %d and %q", res, tc.status, tc.want)
			}
			if tc.status == -1 && (res[0].ErrorCode != "CPS.0191" || res[0].ErrorMsg != "Run command failed.") {
				t.Errorf("failure %q %q", res[0].ErrorCode, res[0].ErrorMsg)
			}
			if tc.status == 2 && (res[0].ErrorCode != "" || res[0].ErrorMsg != "") {
				t.Errorf("success with error %q %q", res[0].ErrorCode, res[0].ErrorMsg)
			}
		})
	}
	// Per phone: the serial differs.
	res := e.sync("getprop ro.serialno", ids...)
	if res[0].ExecuteMsg != ids[0] || res[1].ExecuteMsg != ids[1] {
		t.Errorf("serials %+v", res)
	}
	// The longest command there is: 1024 bytes.
	long := "echo " + strings.Repeat("abcdefghi ", 101) + "abcdefghi"
	if out := e.sync(long, ids[0])[0].ExecuteMsg; len(long) != 1024 || len(out) != 1019 {
		t.Errorf("echo of %d bytes gave %d", len(long)-5, len(out))
	}
}

func TestSyncCommandErrors(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.ForeignInstances = []string{"f0reign01"} })
	id := e.ids(1)[0]
	many := make([]string, 101)
	for i := range many {
		many[i] = id
	}
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"semicolon", map[string]any{"command": "ls; rm", "instance_ids": []string{id}}, 400, "KOOPHONE.API.1000"},
		{"pipe", map[string]any{"command": "ls | cat", "instance_ids": []string{id}}, 400, "KOOPHONE.API.1000"},
		{"newline", map[string]any{"command": "ls\nid", "instance_ids": []string{id}}, 400, "KOOPHONE.API.1000"},
		{"too long", map[string]any{"command": "echo " + strings.Repeat("a", 1020), "instance_ids": []string{id}}, 400, "KOOPHONE.API.1000"},
		{"empty", map[string]any{"command": "  ", "instance_ids": []string{id}}, 400, "KOOPHONE.API.1000"},
		{"no ids", map[string]any{"command": "id", "instance_ids": []string{}}, 400, "KOOPHONE.API.1000"},
		{"101 ids", map[string]any{"command": "id", "instance_ids": many}, 400, "KOOPHONE.API.1000"},
		{"id too long", map[string]any{"command": "id", "instance_ids": []string{strings.Repeat("x", 33)}}, 400, "KOOPHONE.API.1000"},
		{"unknown field", map[string]any{"command": "id", "instance_ids": []string{id}, "timeout": 3}, 400, "KOOPHONE.API.1000"},
		{"wrong case", map[string]any{"Command": "id", "instance_ids": []string{id}}, 400, "KOOPHONE.API.1000"},
		{"wrong type", map[string]any{"command": 7, "instance_ids": []string{id}}, 400, "KOOPHONE.API.1000"},
		{"not json", "command=id", 400, "KOOPHONE.API.1000"},
		{"two values", `{"command":"id","instance_ids":["` + id + `"]} {}`, 400, "KOOPHONE.API.1000"},
		{"unknown instance", map[string]any{"command": "id", "instance_ids": []string{id, "nothere1"}}, 401, "KOOPHONE.API.1001"},
		{"foreign instance", map[string]any{"command": "id", "instance_ids": []string{"f0reign01"}}, 401, "KOOPHONE.API.1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call("POST", "/v1/instances/sync-command", tc.body)
			r.want(t, tc.status, tc.code)
			// SyncCommand's 400 and 500 bodies call the message error_info.
			if tc.status == 400 && (r.str("error_info") == "" || r.env["error_msg"] != nil) {
				t.Errorf("400 body %s", r.body)
			}
			if tc.status == 401 && r.str("error_msg") == "" {
				t.Errorf("401 body %s", r.body)
			}
		})
	}
}

func TestRequestIDRules(t *testing.T) {
	e := newEnv(t, nil)
	id := e.ids(1)[0]
	body := map[string]any{"command": "id", "instance_ids": []string{id}}

	r := e.call("POST", "/v1/instances/sync-command", body)
	if r.header.Get("X-Request-Id") != "req-0001" {
		t.Errorf("request id not echoed: %q", r.header.Get("X-Request-Id"))
	}
	h := e.headers()
	h.Del("X-Request-Id")
	r = e.raw("POST", "/v1/instances/sync-command", body, h)
	r.want(t, 200, "KOOPHONE.API.0002")
	if r.str("error_msg") == "" {
		t.Errorf("0002 is HTTP 200, so its message is error_msg: %s", r.body)
	}
	h.Set("X-Request-Id", "has space")
	e.raw("POST", "/v1/instances/sync-command", body, h).want(t, 400, "KOOPHONE.API.0003")
	h.Set("X-Request-Id", strings.Repeat("a", 129))
	e.raw("POST", "/v1/instances/sync-command", body, h).want(t, 400, "KOOPHONE.API.0003")
	h.Set("X-Request-Id", "3f2a-Z_.:9")
	e.raw("POST", "/v1/instances/sync-command", body, h).want(t, 200, "0")

	// Operations whose tables do not list the header work without it.
	h.Del("X-Request-Id")
	e.raw("GET", "/v1/instances/sku?type=0", nil, h).want(t, 200, "0")
	e.raw("POST", "/v1/instances/prepare-progress", map[string]any{"user_id": "u1", "instance_id": id}, h).
		want(t, 200, "KOOPHONE.API.2210")
	// ListInstances takes it as a query parameter.
	e.raw("GET", "/v1/instances/batch-query?page_no=1&page_size=1", nil, e.headers()).want(t, 200, "KOOPHONE.API.0002")
	r = e.raw("GET", "/v1/instances/batch-query?page_no=1&page_size=1&x-request-id=q-1", nil, h)
	r.want(t, 200, "0")
	if r.header.Get("X-Request-Id") != "q-1" {
		t.Errorf("echoed %q", r.header.Get("X-Request-Id"))
	}
}

func TestUnknownRoute(t *testing.T) {
	e := newEnv(t, nil)
	e.call("GET", "/v1/instances/sync-command", nil).want(t, 404, "APIGW.0101")
	e.call("POST", "/v1/nothing", nil).want(t, 404, "APIGW.0101")
	if n := e.sim.Calls("SyncCommand"); n != 0 {
		t.Errorf("wrong method counted as SyncCommand: %d", n)
	}
}

func TestAsyncCommandAndGetTask(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.JobDuration = 3 * time.Second })
	ids := e.ids(3)

	task := e.startTask("/v1/instances/async-command", map[string]any{"command": "getprop ro.serialno", "instance_ids": ids[:2]})
	if len(task.TaskID) != 32 || strings.Trim(task.TaskID, "0123456789abcdef") != "" || len(task.CmdJobs) != 2 {
		t.Fatalf("task %+v", task)
	}
	for i, j := range task.CmdJobs {
		if j.InstanceID != ids[i] || len(j.JobID) != 32 {
			t.Fatalf("job %+v", j)
		}
	}
	for _, j := range e.jobs(task.TaskID) {
		if j.Status != 1 || j.ExecuteMsg != nil {
			t.Fatalf("at start: %+v", j)
		}
	}
	e.clk.Advance(2999 * time.Millisecond)
	if j := e.jobs(task.TaskID)[0]; j.Status != 1 {
		t.Fatalf("before JobDuration: %+v", j)
	}
	e.clk.Advance(time.Millisecond)
	for i, j := range e.jobs(task.TaskID) {
		if j.Status != 2 || j.ExecuteMsg == nil || *j.ExecuteMsg != ids[i] || j.JobID != task.CmdJobs[i].JobID {
			t.Fatalf("after JobDuration: %+v", j)
		}
	}

	// An unknown command fails per phone.
	task = e.startTask("/v1/instances/async-command", map[string]any{"command": "frobnicate now", "instance_ids": ids[:1]})
	e.clk.Advance(3 * time.Second)
	j := e.jobs(task.TaskID)[0]
	if j.Status != -1 || j.ErrorCode != "CPS.0191" || *j.ExecuteMsg != "sh: frobnicate: not found" {
		t.Fatalf("%+v", j)
	}

	// Unknown task: 1323 with HTTP 400.
	e.call("GET", "/v1/instances/tasks/6837531fd3f54550927b930180a706bf", nil).want(t, 400, "KOOPHONE.API.1323")
	h := e.headers()
	h.Del("X-Request-Id")
	e.raw("GET", "/v1/instances/tasks/"+task.TaskID, nil, h).want(t, 200, "KOOPHONE.API.0002")
}

func TestFailInstances(t *testing.T) {
	var fail string
	e := newEnv(t, func(c *sim.Config) {
		// The fleet is deterministic: a throwaway simulator with the same seed names the phone to fail.
		fail = sim.New(sim.Config{Clock: c.Clock, Seed: c.Seed}).InstanceIDs()[1]
		c.FailInstances = []string{fail}
	})
	ids := e.ids(2)
	if ids[1] != fail {
		t.Fatalf("fleet not deterministic: %v vs %s", ids, fail)
	}
	res := e.sync("id", ids...)
	if res[0].Status != 2 || res[1].Status != -1 || res[1].ErrorCode != "CPS0005" || res[1].ErrorMsg != "Phone not found." {
		t.Fatalf("%+v", res)
	}
	for _, path := range []string{"/v1/instances/async-command", "/v1/instances/batch-reset", "/v1/instances/backup"} {
		body := map[string]any{"instance_ids": ids}
		if strings.HasSuffix(path, "command") {
			body["command"] = "id"
		}
		task := e.startTask(path, body)
		e.clk.Advance(2 * time.Second)
		jobs := e.jobs(task.TaskID)
		if jobs[0].Status != 2 || jobs[1].Status != -1 || jobs[1].ErrorCode != "CPS0005" || jobs[1].ExecuteMsg != nil {
			t.Fatalf("%s: %+v", path, jobs)
		}
	}
}

func TestEnvelopeContentType(t *testing.T) {
	e := newEnv(t, nil)
	r := e.call("POST", "/v1/instances/batch-query-status", map[string]any{"instance_ids": e.ids(1)})
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	if r.status != http.StatusOK {
		t.Fatal(r.status)
	}
}
