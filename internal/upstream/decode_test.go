package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every fixture goes through the real client (HTTP, envelope, data decoding) and its quirk is asserted.
func TestFixturesThroughClient(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		file   string
		status int
		run    func(t *testing.T, c *Client)
	}{
		{"sync-command.json", 200, func(t *testing.T, c *Client) { // duplicate "error_code" key
			res, err := c.SyncCommand(ctx, CommandRequest{Command: "ls -l /system", InstanceIDs: []string{"a44uhlf7", "efjy72gs"}})
			mustNil(t, err)
			want := []CmdResult{
				{InstanceID: "a44uhlf7", Status: -1, ErrorCode: "CPS.0191", ErrorMsg: "Run command failed.",
					ExecuteMsg: "ls: cannot access '/system': No such file or directory"},
				{InstanceID: "efjy72gs", Status: 2, ExecuteMsg: "xxxxxxx"},
			}
			deepEqual(t, res.CmdResults, want)
		}},
		{"get-task.json", 200, func(t *testing.T, c *Client) { // execute_msg null
			res, err := c.GetTask(ctx, "t1")
			mustNil(t, err)
			want := []JobDetail{
				{JobID: "1564567b8bab40f34711234cb80d0123", Status: -1, ErrorCode: "CPS0005", ErrorMsg: "Phone not found."},
				{JobID: "1564567b8bab40f34711234cb80d0456", Status: 2, ExecuteMsg: "xxxxxxx"},
			}
			deepEqual(t, res.Jobs, want)
		}},
		{"batch-query-status.json", 200, func(t *testing.T, c *Client) {
			res, err := c.BatchQueryStatus(ctx, InstanceIDsRequest{InstanceIDs: []string{"a44uhlf7"}})
			mustNil(t, err)
			deepEqual(t, res.StatusResults, []StatusResult{{InstanceID: "a44uhlf7", Status: 0}})
		}},
		{"backup.json", 200, func(t *testing.T, c *Client) {
			res, err := c.BatchBackupInstances(ctx, InstanceIDsRequest{InstanceIDs: []string{"a44uhlf7", "efjy72gs"}})
			mustNil(t, err)
			deepEqual(t, res, &Task{TaskID: "RM_6837531fd3f54550927b930180a706bf", CmdJobs: []CmdJob{
				{InstanceID: "a44uhlf7", JobID: "1564567b8bab40f34711234cb80d0123"},
				{InstanceID: "efjy72gs", JobID: "1564567b8bab40f34711234cb80d0456"},
			}})
		}},
		{"unassign.json", 200, func(t *testing.T, c *Client) {
			res, err := c.UnassignInstance(ctx, UserInstancesRequest{UserInstances: []UserInstance{{UserID: "u", InstanceID: "a44uhlf7"}}})
			mustNil(t, err)
			if res.TaskID != "RM_6837531fd3f54550927b930180a706bf" || len(res.CmdJobs) != 2 {
				t.Fatalf("got %+v", res)
			}
		}},
		{"create.json", 200, func(t *testing.T, c *Client) { // instanceId absent from the example
			res, err := c.CreateInstance(ctx, CreateInstanceRequest{OS: "AOSP11", Count: 1})
			mustNil(t, err)
			deepEqual(t, res, &Order{OrderID: "CS2412261442DBN4E", InstanceInfos: []InstanceInfo{{InstanceName: "koophone-00001"}}})
		}},
		{"delete.json", 200, func(t *testing.T, c *Client) { // "data": null
			mustNil(t, c.DeleteInstance(ctx, DeleteInstanceRequest{InstanceIDList: []string{"a1"}}))
		}},
		{"device-token.json", 200, func(t *testing.T, c *Client) { // ports: null vs integer; device_id inside resource
			res, err := c.GetDeviceToken(ctx, "Q39YyZvI")
			mustNil(t, err)
			want := &DeviceToken{
				DeviceToken: "dee5081f40c83ddea3ded91c387351e9",
				Resource: DeviceResource{
					SDK:      SDKInfo{External: SDKEndpoint{Address: "10.83.71.187", Aport: "10030", Atype: "1"}},
					RTC:      RTCInfo{IceSignaling: IceSignaling{SignalingURL: "http://100.93.2.248:18082", IceServers: []string{}}},
					DeviceID: "7b0cd026df8d495b8a65d628d7bec433",
					KpID:     "Q39YyZvI",
				},
			}
			deepEqual(t, res, want)
			if p, ok := res.Resource.SDK.External.Aport.Int(); !ok || p != 10030 {
				t.Fatalf("external aport as int: %d %v", p, ok)
			}
		}},
		{"error-200-business.json", 200, func(t *testing.T, c *Client) { // error with HTTP 200
			_, err := c.GetTask(ctx, "t1")
			e := asError(t, err)
			if e.Kind != KindAPI || e.Code != "KOOPHONE.API.4001" || e.Message != "实例不存在" || e.HTTPStatus != 200 {
				t.Fatalf("got %#v", e)
			}
		}},
		{"error-400-error-info.json", 400, func(t *testing.T, c *Client) { // error_info instead of error_msg
			_, err := c.SyncCommand(ctx, CommandRequest{Command: "ls"})
			e := asError(t, err)
			if e.Kind != KindAPI || e.Code != "KOOPHONE.API.1000" || e.Message != "请求参数错误" || e.HTTPStatus != 400 {
				t.Fatalf("got %#v", e)
			}
			if e.Attempts != 1 {
				t.Fatalf("attempts %d", e.Attempts)
			}
		}},
		{"install-app.json", 200, func(t *testing.T, c *Client) { // data{task_id, cmd_jobs}
			res, err := c.InstallApp(ctx, InstallAppRequest{ObjectName: "com.example"})
			mustNil(t, err)
			deepEqual(t, res, &Task{TaskID: "ZGCAorl8ocwK7U7_t0AfH26P-DjwDw8Yknf4", CmdJobs: []CmdJob{
				{InstanceID: "XvH39QVW", JobID: "L0XM9bL0sFoKJo-6BEjFzN6ut2jsoH_1"},
				{InstanceID: "Vpp8rC4Y", JobID: "1564567b8bab40f34711234cb80d0123"},
			}})
		}},
		{"install-app-table-shape.json", 200, func(t *testing.T, c *Client) { // data.data{task_id, cmd_jobs}
			res, err := c.InstallApp(ctx, InstallAppRequest{ObjectName: "com.example"})
			mustNil(t, err)
			deepEqual(t, res, &Task{TaskID: "ZGCAorl8ocwK7U7_t0AfH26P-DjwDw8Yknf4", CmdJobs: []CmdJob{
				{InstanceID: "XvH39QVW", JobID: "L0XM9bL0sFoKJo-6BEjFzN6ut2jsoH_1"},
			}})
		}},
		{"list-instances.json", 200, func(t *testing.T, c *Client) { // phone_id "null"
			res, err := c.ListInstances(ctx, ListInstancesRequest{PageNo: 1, PageSize: 100})
			mustNil(t, err)
			if res.PageNo != 1 || res.PageSize != 100 || res.TotalCount != 72 || len(res.Result) != 1 {
				t.Fatalf("page: %+v", res)
			}
			want := Instance{
				InstanceID: "5srn5hL8", InstanceName: "CCTEST-00001", Region: "cn-north-7",
				InstanceSku:  "专业版 | 8 核 | 16GB | 10GB 存储 | 最高分辨率 720p",
				FrozenStatus: 0, RunningStatus: 1, LoginStatus: 0, AssignStatus: 1,
				AssignUser: "1008600000097131912", BillingMode: "1",
				ProjectID: "9d71ec45aef04d84a991c12250227b5c", ProjectName: "cn-north-7",
				PhoneID: "", MemberName: "test", AccountName: "hhh@cs02.huaweiapaas.com",
				RegionName: "华北-乌兰察布-二零三", RegionNameEn: "CN North-Ulanqab203",
				BackupStatus: 0, BackupTime: "2024-05-24 17:34:58", RestoreStatus: 0, RestoreTime: "2024-05-24 20:34:58",
			}
			deepEqual(t, res.Result[0], want)
		}},
		{"prepare-progress.json", 200, func(t *testing.T, c *Client) {
			res, err := c.ShowProgress(ctx, ProgressRequest{UserID: "u", InstanceID: "a"})
			mustNil(t, err)
			deepEqual(t, res, &Progress{Status: 0, WaitingCount: 0})
		}},
		{"reboot.json", 200, func(t *testing.T, c *Client) { // no data at all
			mustNil(t, c.BatchRebootInstance(ctx, InstanceIDsRequest{InstanceIDs: []string{"a"}}))
		}},
		{"video-setting.json", 200, func(t *testing.T, c *Client) {
			mustNil(t, c.SetVideoConfig(ctx, SetVideoConfigRequest{InstanceIDs: []string{"a"}}))
		}},
		{"sku.json", 200, func(t *testing.T, c *Client) { // pool id string vs integer, nestInfo bandSize integer
			res, err := c.BatchShowSku(ctx, "0")
			mustNil(t, err)
			if res.BandInfo.CbcSkuID != "kp.bandwidth" || len(res.SkuSpecResponseList) != 2 {
				t.Fatalf("catalogue: %+v", res)
			}
			r0, r1 := res.SkuSpecResponseList[0], res.SkuSpecResponseList[1]
			if r0.RegionID != "cn-north-7" || r1.RegionID != "cn-north-208" || len(r0.SkuResponses) != 2 {
				t.Fatalf("regions: %+v", res.SkuSpecResponseList)
			}
			pro, ent := r0.SkuResponses[0], r0.SkuResponses[1]
			if got := pro.PoolInfo.Aosp[0].ID; got != "40" {
				t.Errorf("string pool id: %q", got)
			}
			if got := ent.PoolInfo.Aosp[0].ID; got != "58" {
				t.Errorf("integer pool id: %q", got)
			}
			if got := pro.NestInfo[0].BandSize; got != "6" {
				t.Errorf("nest bandSize: %q", got)
			}
			if pro.Type != "PROFESSIONAL" || pro.CbcSkuID != "kp.professional.xlarge.32g.2" || pro.BandSize != "4,6" ||
				pro.ChargeMode != 2 || pro.MaxResolution != "720p(无感)" || !pro.PoolInfo.Aosp[0].Enable ||
				pro.PoolInfo.Aosp[0].ResPoolID != "1600087199176311111" || pro.NestInfo[0].SceneType != "CLOUD_PHONE" {
				t.Errorf("professional sku: %+v", pro)
			}
			if ent.StorageSpec != "32GB" || len(ent.NestInfo) != 0 || r1.SkuResponses[0].PoolInfo.Aosp[0].ID != "43" {
				t.Errorf("enterprise sku: %+v", ent)
			}
		}},
	}

	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			body := fixture(t, tc.file)
			u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, tc.status, string(body)) })
			tc.run(t, newClient(t, u.URL))
		})
	}
	entries, err := os.ReadDir("testdata/responses")
	mustNil(t, err)
	for _, e := range entries {
		if !covered[e.Name()] {
			t.Errorf("fixture %s is not exercised", e.Name())
		}
	}
}

func TestDecodeEdgeCases(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		codeInData bool
		kind       Kind // 0: success
		code, msg  string
	}{
		{"not JSON 200", 200, `<html>oops</html>`, false, KindDecode, "", ""},
		{"not JSON 502", 502, `<html>Bad Gateway</html>`, false, KindHTTP, "", "Bad Gateway"},
		{"empty 200", 200, ``, false, KindDecode, "", ""},
		{"truncated 200", 200, `{"error_code":"0","data":{"jobs":[`, false, KindDecode, "", ""},
		{"no code 200", 200, `{"data":{}}`, false, KindDecode, "", ""},
		{"no code 500", 500, `{"message":"boom"}`, false, KindHTTP, "", "Internal Server Error"},
		{"JSON array", 200, `[1,2]`, false, KindDecode, "", ""},
		{"JSON null", 200, `null`, false, KindDecode, "", ""},
		{"code 0 with HTTP 500 is success", 500, `{"error_code":"0"}`, false, 0, "", ""},
		{"numeric code 0", 200, `{"error_code":0,"error_msg":null}`, false, 0, "", ""},
		{"numeric error code", 200, `{"error_code":4001,"error_msg":{"x":1}}`, false, KindAPI, "4001", `{"x":1}`},
		{"APIG error", 401, `{"error_msg":"Incorrect IAM authentication information","error_code":"APIG.1002","request_id":"x"}`, false, KindAPI, "APIG.1002", "Incorrect IAM authentication information"},
		{"data of the wrong shape", 200, `{"error_code":"0","data":{"jobs":"none"}}`, false, KindDecode, "", ""},
		{"code in data only", 200, `{"data":{"error_code":"0","result":[]}}`, true, 0, "", ""},
		{"error in data only", 200, `{"data":{"error_code":"KOOPHONE.API.5002","error_msg":"bad time"}}`, true, KindAPI, "KOOPHONE.API.5002", "bad time"},
		{"error in data under top-level 0", 200, `{"error_code":"0","data":{"error_code":"KOOPHONE.API.5004","error_msg":"end before start"}}`, true, KindAPI, "KOOPHONE.API.5004", "end before start"},
		{"top-level error wins", 400, `{"error_code":"KOOPHONE.API.1000","error_msg":"bad","data":{"error_code":"0"}}`, true, KindAPI, "KOOPHONE.API.1000", "bad"},
		{"data error ignored where not documented", 200, `{"error_code":"0","data":{"error_code":"X"}}`, false, 0, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out TaskStatus
			e := decodeResponse(tc.status, []byte(tc.body), tc.codeInData, &out)
			if tc.kind == 0 {
				if e != nil {
					t.Fatalf("want success, got %v", e)
				}
				return
			}
			if e == nil {
				t.Fatalf("want kind %v, got success", tc.kind)
			}
			if e.Kind != tc.kind || e.Code != tc.code || e.HTTPStatus != tc.status || (tc.msg != "" && e.Message != tc.msg) {
				t.Fatalf("got %#v", e)
			}
		})
	}
}

func TestResponseTooLarge(t *testing.T) {
	big := `{"error_code":"0","error_msg":"` + strings.Repeat("x", 2048) + `"}`
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, big) })
	c := newClient(t, u.URL, func(cfg *Config) { cfg.MaxResponseBytes = 1024 })
	_, err := c.GetTask(context.Background(), "t")
	e := asError(t, err)
	if e.Kind != KindDecode || e.HTTPStatus != 200 || e.Attempts != 1 || u.count() != 1 {
		t.Fatalf("got %#v after %d requests", e, u.count())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := epoch
	cases := map[string]time.Duration{
		"":      0,
		"5":     5 * time.Second,
		" 120 ": 2 * time.Minute, //nolint:gocritic // mapKey: the spaces are the case (a padded header value)
		"0":     0,
		"-3":    0,
		"soon":  0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		"99999999999999": 24 * time.Hour,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// fixtureBodies are the seed's example answers, the fuzz tests' first inputs.
func fixtureBodies(f *testing.F) [][]byte {
	entries, err := os.ReadDir("testdata/responses")
	if err != nil {
		f.Fatal(err)
	}
	var bodies [][]byte
	for _, e := range entries {
		bodies = append(bodies, fixture(f, e.Name()))
	}
	return bodies
}

// decodeTargets makes each result type the decoder fills, and last no result at all.
var decodeTargets = []func() any{
	func() any { return new(SyncCommandResult) }, func() any { return new(Task) },
	func() any { return new(TaskStatus) }, func() any { return new(StatusResults) },
	func() any { return new(DeviceToken) }, func() any { return new(InstancePage) },
	func() any { return new(SkuCatalogue) }, func() any { return new(installAppData) },
	func() any { return new(Order) }, func() any { return new(PrepareResult) },
	func() any { return new(Progress) }, func() any { return nil },
}

// FuzzDecodeResponse: whatever the body and status, the decoder never panics and returns either a value or an
// *Error of a known kind.
func FuzzDecodeResponse(f *testing.F) {
	for _, b := range fixtureBodies(f) {
		f.Add(200, b, uint8(0))
		f.Add(400, b, uint8(3))
		f.Add(503, b[:len(b)/2], uint8(5))
	}
	f.Add(200, []byte(`{"error_code":0,"data":{"data":null}}`), uint8(7))
	f.Add(502, []byte(`<html>`), uint8(1))
	f.Fuzz(func(t *testing.T, status int, body []byte, which uint8) {
		if status < 100 || status > 599 {
			status = 200
		}
		out := decodeTargets[int(which)%len(decodeTargets)]()
		e := decodeResponse(status, body, which%2 == 0, out)
		if e == nil {
			if d, ok := out.(*installAppData); ok && d.task() == nil {
				t.Fatal("nil task on success")
			}
			// Success requires a "0" code somewhere in a JSON object.
			if !json.Valid(body) {
				t.Fatalf("success on invalid JSON %q", body)
			}
			return
		}
		if e.Kind < KindAPI || e.Kind > KindAuth || e.HTTPStatus != status {
			t.Fatalf("bad error %#v", e)
		}
		_ = e.Error()
	})
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func deepEqual(t *testing.T, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Fatalf("got  %s\nwant %s", gj, wj)
	}
}

func TestErrorText(t *testing.T) {
	cases := []struct {
		e    *Error
		want string
	}{
		{&Error{Op: "GetTask", Kind: KindAPI, Code: "KOOPHONE.API.4001", Message: "实例不存在", HTTPStatus: 200, RequestID: "r1"},
			"koophone GetTask: KOOPHONE.API.4001 实例不存在 (HTTP 200) [request r1]"},
		{&Error{Op: "GetTask", Kind: KindHTTP, HTTPStatus: 502, Message: "Bad Gateway"}, "koophone GetTask: HTTP 502: Bad Gateway"},
		{&Error{Op: "GetTask", Kind: KindDecode, HTTPStatus: 200, Err: errors.New("unexpected EOF")},
			"koophone GetTask: HTTP 200: unexpected EOF"},
		{&Error{Op: "GetTask", Kind: KindTransport, Err: context.DeadlineExceeded, RequestID: "r2"},
			"koophone GetTask: context deadline exceeded [request r2]"},
	}
	for _, tc := range cases {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
	for k := KindAPI; k <= KindAuth+1; k++ {
		if k.String() == "" {
			t.Errorf("kind %d has no name", k)
		}
	}
}

// FuzzDecodeIntoMatchesTwoPass: the one-pass decoder gives the same verdict (kind, code, message) and the same
// decoded value as the two-pass one it replaces, for every body and status.
func FuzzDecodeIntoMatchesTwoPass(f *testing.F) {
	for _, b := range fixtureBodies(f) {
		f.Add(200, b, uint8(0))
		f.Add(400, b, uint8(3))
	}
	f.Add(200, []byte(`{"error_code":"0","data":{"status_results":"x"}}`), uint8(3))
	f.Add(200, []byte(`{"error_code":"KPS.1","error_msg":"no","data":{"status_results":"x"}}`), uint8(3))
	f.Add(200, []byte(`{"error_code":"0","data":null}`), uint8(1))
	f.Add(200, []byte(`{"error_code":"0","data":5}`), uint8(2))
	f.Fuzz(func(t *testing.T, status int, body []byte, which uint8) {
		if status < 100 || status > 599 {
			status = 200
		}
		outs := decodeTargets[:len(decodeTargets)-1] // every result type, not nil
		mk := outs[int(which)%len(outs)]
		one, two := mk(), mk()
		e1, e2 := decodeInto(status, body, one), decodeTwoPass(status, body, false, two)
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("one pass %v, two passes %v", e1, e2)
		}
		if e1 != nil {
			if e1.Kind != e2.Kind || e1.Code != e2.Code || e1.Message != e2.Message || e1.HTTPStatus != e2.HTTPStatus {
				t.Fatalf("one pass %#v, two passes %#v", e1, e2)
			}
			return
		}
		if !reflect.DeepEqual(one, two) {
			t.Fatalf("one pass decoded %+v, two passes %+v", one, two)
		}
	})
}

// FuzzPlainString: where plainString takes a JSON string, it reads it as encoding/json does.
func FuzzPlainString(f *testing.F) {
	for _, s := range []string{`"0"`, `"ok"`, `"a\"b"`, `"\u00e9"`, "\"\xff\"", `""`, `"`, `"tab	"`, `"é"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := plainString(raw)
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil || got != want {
			t.Fatalf("%q: plainString %q, encoding/json %q (%v)", raw, got, want, err)
		}
	})
}
