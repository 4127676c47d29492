package upstream

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
)

// Every operation: method, path, query, headers and the exact body bytes sent.
func TestOperationsWire(t *testing.T) {
	ids := InstanceIDsRequest{InstanceIDs: []string{"a44uhlf7", "efjy72gs"}}
	users := UserInstancesRequest{UserInstances: []UserInstance{{UserID: "u1", InstanceID: "a44uhlf7"}}}
	cases := []struct {
		name   string
		invoke func(ctx context.Context, c *Client) error
		method string
		path   string // escaped, as on the wire
		query  string // raw, as on the wire ("" for none); REQID stands for the request id
		body   string // exact bytes; "" for no body
	}{
		{"SyncCommand", func(ctx context.Context, c *Client) error {
			_, err := c.SyncCommand(ctx, CommandRequest{Command: "ls -l /system", InstanceIDs: ids.InstanceIDs})
			return err
		}, "POST", "/v1/instances/sync-command", "",
			`{"command":"ls -l /system","instance_ids":["a44uhlf7","efjy72gs"]}`},
		{"AsyncCommand", func(ctx context.Context, c *Client) error {
			_, err := c.AsyncCommand(ctx, CommandRequest{Command: "reboot", InstanceIDs: []string{"a1"}})
			return err
		}, "POST", "/v1/instances/async-command", "", `{"command":"reboot","instance_ids":["a1"]}`},
		{"GetTask", func(ctx context.Context, c *Client) error {
			_, err := c.GetTask(ctx, "RM_68/x y")
			return err
		}, "GET", "/v1/instances/tasks/RM_68%2Fx%20y", "", ""},
		{"SetVideoConfig", func(ctx context.Context, c *Client) error {
			return c.SetVideoConfig(ctx, SetVideoConfigRequest{
				InstanceIDs: []string{"a1"},
				InstanceSettings: []InstanceSetting{{NetworkType: "WIFI", EncodingType: "H264", VideoSpecGroups: []VideoSpecGroup{{
					Definition540P:  VideoSpec{CodeRate: 1000, FPS: 30},
					Definition720P:  VideoSpec{CodeRate: 2000, FPS: 30},
					Definition1080P: VideoSpec{CodeRate: 4000, FPS: 60},
				}}}},
			})
		}, "PUT", "/v1/instances/video-setting", "",
			`{"instance_ids":["a1"],"instance_settings":[{"network_type":"WIFI","encoding_type":"H264","video_spec_groups":[{"definition_540P":{"code_rate":1000,"fps":30},"definition_720P":{"code_rate":2000,"fps":30},"definition_1080P":{"code_rate":4000,"fps":60}}]}]}`},
		{"BatchQueryStatus", func(ctx context.Context, c *Client) error {
			_, err := c.BatchQueryStatus(ctx, ids)
			return err
		}, "POST", "/v1/instances/batch-query-status", "", `{"instance_ids":["a44uhlf7","efjy72gs"]}`},
		{"BatchReset", func(ctx context.Context, c *Client) error {
			_, err := c.BatchReset(ctx, ids)
			return err
		}, "POST", "/v1/instances/batch-reset", "", `{"instance_ids":["a44uhlf7","efjy72gs"]}`},
		{"GetDeviceToken", func(ctx context.Context, c *Client) error {
			_, err := c.GetDeviceToken(ctx, "Q39YyZvI")
			return err
		}, "POST", "/v1/instances/Q39YyZvI/auth", "", ""},
		{"AssignInstance", func(ctx context.Context, c *Client) error {
			return c.AssignInstance(ctx, users)
		}, "POST", "/v1/instances/assign", "", `{"user_instances":[{"user_id":"u1","instance_id":"a44uhlf7"}]}`},
		{"UnassignInstance", func(ctx context.Context, c *Client) error {
			_, err := c.UnassignInstance(ctx, users)
			return err
		}, "POST", "/v1/instances/unassign", "", `{"user_instances":[{"user_id":"u1","instance_id":"a44uhlf7"}]}`},
		{"ListInstances", func(ctx context.Context, c *Client) error {
			_, err := c.ListInstances(ctx, ListInstancesRequest{
				PageNo: 2, PageSize: 50, InstanceName: "CCTEST 01", QueryStartTime: "2024-05-24 17:34:58",
				QueryEndTime: "2024-05-25 00:00:00", PoolSceneTag: "CLOUD_PHONE",
			})
			return err
		}, "GET", "/v1/instances/batch-query",
			"instance_name=CCTEST%2001&page_no=2&page_size=50&pool_scene_tag=CLOUD_PHONE&query_end_time=2024-05-25%2000%3A00%3A00&query_start_time=2024-05-24%2017%3A34%3A58&x-request-id=REQID", ""},
		{"ListInstancesMinimal", func(ctx context.Context, c *Client) error {
			_, err := c.ListInstances(ctx, ListInstancesRequest{PageNo: 1, PageSize: 100, InstanceID: "5srn5hL8"})
			return err
		}, "GET", "/v1/instances/batch-query", "instance_id=5srn5hL8&page_no=1&page_size=100&x-request-id=REQID", ""},
		{"BatchRebootInstance", func(ctx context.Context, c *Client) error {
			return c.BatchRebootInstance(ctx, ids)
		}, "POST", "/v1/instances/reboot", "", `{"instance_ids":["a44uhlf7","efjy72gs"]}`},
		{"BatchShowSku", func(ctx context.Context, c *Client) error {
			_, err := c.BatchShowSku(ctx, "")
			return err
		}, "GET", "/v1/instances/sku", "type=0", ""},
		{"CreateInstance", func(ctx context.Context, c *Client) error {
			_, err := c.CreateInstance(ctx, CreateInstanceRequest{
				OS: "AOSP11", InstanceSkuID: "kp.professional.xlarge.32g.2", BandSkuID: "kp.bandwidth",
				RegionID: "cn-north-7", InstanceNamePrefix: "koophone", BandSize: 4, Count: 2,
				ChargeParam: ChargeParam{ChargingMode: 1, PeriodType: 2, PeriodNum: 1, IsAutoPay: 1},
			})
			return err
		}, "POST", "/v1/instances/create", "",
			`{"os":"AOSP11","instanceSkuId":"kp.professional.xlarge.32g.2","bandSkuId":"kp.bandwidth","regionId":"cn-north-7","instanceNamePrefix":"koophone","bandSize":4,"count":2,"chargeParam":{"chargingMode":1,"periodType":2,"periodNum":1,"isAutoPay":1,"isAutoRenew":0}}`},
		{"DeleteInstance", func(ctx context.Context, c *Client) error {
			return c.DeleteInstance(ctx, DeleteInstanceRequest{InstanceIDList: []string{"a1", "a2"}})
		}, "POST", "/v1/instances/delete", "", `{"instanceIdList":["a1","a2"]}`},
		{"BatchPrepareInstances", func(ctx context.Context, c *Client) error {
			_, err := c.BatchPrepareInstances(ctx, PrepareRequest{UserID: "u1", InstanceIDs: []string{"a1"}})
			return err
		}, "POST", "/v1/instances/prepare", "", `{"user_id":"u1","instance_ids":["a1"]}`},
		{"ShowProgress", func(ctx context.Context, c *Client) error {
			_, err := c.ShowProgress(ctx, ProgressRequest{UserID: "u1", InstanceID: "a1"})
			return err
		}, "POST", "/v1/instances/prepare-progress", "", `{"user_id":"u1","instance_id":"a1"}`},
		{"BatchBackupInstances", func(ctx context.Context, c *Client) error {
			_, err := c.BatchBackupInstances(ctx, ids)
			return err
		}, "POST", "/v1/instances/backup", "", `{"instance_ids":["a44uhlf7","efjy72gs"]}`},
		{"StopInstancesStreaming", func(ctx context.Context, c *Client) error {
			return c.StopInstancesStreaming(ctx, InstanceIDRequest{InstanceID: "a1"})
		}, "POST", "/v1/instances/streaming/stop", "", `{"instance_id":"a1"}`},
		{"ReleaseInstancesSession", func(ctx context.Context, c *Client) error {
			return c.ReleaseInstancesSession(ctx, InstanceIDRequest{InstanceID: "a1"})
		}, "POST", "/v1/instances/session/release", "", `{"instance_id":"a1"}`},
		{"InstallApp", func(ctx context.Context, c *Client) error {
			_, err := c.InstallApp(ctx, InstallAppRequest{
				FastInstall: "1", ObjectName: "com.example.app", FileName: "app.apk", ObjectVersion: "1.0",
				ObjectSize: "12.5", BizType: "apk", ContentType: "application/octet-stream",
				InstallPackageURL: "https://bucket.obs.example.com/app.apk?a=1&b=2", InstanceIDList: []string{"a1"},
			})
			return err
		}, "POST", "/v1/instances/app/install", "",
			`{"fast_install":"1","object_name":"com.example.app","file_name":"app.apk","object_version":"1.0","object_size":"12.5","biz_type":"apk","content_type":"application/octet-stream","content_md5":"","install_package_url":"https://bucket.obs.example.com/app.apk?a=1&b=2","instance_id_list":["a1"]}`},
	}

	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, okBody) })
	c := newClient(t, u.URL, func(cfg *Config) { cfg.UserAgent = "ua-test/1" })
	ops := map[string]bool{}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reqID := "req-" + tc.name
			if err := tc.invoke(requestid.With(context.Background(), reqID), c); err != nil {
				t.Fatal(err)
			}
			reqs := u.requests()
			if len(reqs) != i+1 {
				t.Fatalf("upstream saw %d requests, want %d", len(reqs), i+1)
			}
			got := reqs[i]
			if got.Method != tc.method || got.RawPath != tc.path {
				t.Errorf("sent %s %s, want %s %s", got.Method, got.RawPath, tc.method, tc.path)
			}
			wantQuery := tc.query
			if wantQuery != "" {
				wantQuery = strings.ReplaceAll(wantQuery, "REQID", url.QueryEscape(reqID))
			}
			if got.RawQuery != wantQuery {
				t.Errorf("query\n got %s\nwant %s", got.RawQuery, wantQuery)
			}
			if string(got.Body) != tc.body {
				t.Errorf("body\n got %s\nwant %s", got.Body, tc.body)
			}
			h := got.Header
			if h.Get("x-request-id") != reqID {
				t.Errorf("x-request-id header %q", h.Get("x-request-id"))
			}
			if h.Get("X-Auth-Token") != testToken {
				t.Errorf("X-Auth-Token %q", h.Get("X-Auth-Token"))
			}
			if h.Get("Accept") != "application/json" || h.Get("User-Agent") != "ua-test/1" {
				t.Errorf("Accept %q, User-Agent %q", h.Get("Accept"), h.Get("User-Agent"))
			}
			wantCT := ""
			if tc.body != "" {
				wantCT = "application/json;charset=UTF-8"
			}
			if h.Get("Content-Type") != wantCT {
				t.Errorf("Content-Type %q, want %q", h.Get("Content-Type"), wantCT)
			}
		})
		ops[strings.TrimSuffix(tc.name, "Minimal")] = true
	}
	if len(ops) != 20 {
		t.Errorf("covered %d operations, want 20", len(ops))
	}
}

// Without a caller's id, every call gets a fresh UUID.
func TestRequestIDGenerated(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, okBody) })
	c := newClient(t, u.URL)
	for range 2 {
		if err := c.BatchRebootInstance(context.Background(), InstanceIDsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := u.requests()
	a, b := reqs[0].Header.Get("x-request-id"), reqs[1].Header.Get("x-request-id")
	if len(a) != 36 || len(b) != 36 || a == b {
		t.Fatalf("request ids %q %q", a, b)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{Endpoint: "https://k.example.com"},
		{Endpoint: "", Auth: NewStaticToken("t")},
		{Endpoint: "ftp://k.example.com", Auth: NewStaticToken("t")},
		{Endpoint: "https://k.example.com?x=1", Auth: NewStaticToken("t")},
		{Endpoint: "https://k.example.com", Auth: NewStaticToken("")},
		{Endpoint: "https://k.example.com", Auth: NewAKSK("", "sk", "")},
		{Endpoint: "https://k.example.com", Auth: NewIAMPassword(IAMConfig{Endpoint: "https://iam", User: "u"})},
	} {
		if c, err := New(cfg); err == nil {
			c.Close()
			t.Errorf("New(%v) accepted", cfg)
		}
	}
}

func TestIdentity(t *testing.T) {
	mk := func(endpoint string, a Authenticator) string {
		c, err := New(Config{Endpoint: endpoint, Auth: a})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Identity()
	}
	a := mk("https://k.example.com", NewStaticToken("tok-a"))
	if a != mk("https://k.example.com/", NewStaticToken("tok-a")) {
		t.Error("identity not stable")
	}
	if a == mk("https://k.example.com", NewStaticToken("tok-b")) || a == mk("https://k2.example.com", NewStaticToken("tok-a")) {
		t.Error("identity does not tell principals or endpoints apart")
	}
	if containsAny(a, "tok-a") || len(a) != 32 {
		t.Errorf("identity %q", a)
	}
	s := mk("https://k.example.com", NewAKSK("AK123", "SK-SECRET", "p1"))
	if s == mk("https://k.example.com", NewAKSK("AK123", "SK-SECRET", "p2")) || containsAny(s, "AK123", "SK-SECRET") {
		t.Errorf("aksk identity %q", s)
	}
}
