package sim_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func installBody(name, version string, ids ...string) map[string]any {
	return map[string]any{
		"fast_install":        "0",
		"object_name":         name,
		"file_name":           "demo.apk",
		"object_version":      version,
		"object_size":         "120",
		"biz_type":            "apk",
		"content_type":        "application/octet-stream",
		"content_md5":         "",
		"install_package_url": "https://obs-kpxa-zg.obs.cn-north-7.ulanqab.huawei.com:443/chp_admin/demo.apk?AccessKeyId=X&Signature=Y%3D",
		"instance_id_list":    ids,
	}
}

func TestInstallApp(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.ids(2)
	task := e.startTask("/v1/instances/app/install", installBody("com.tencent.mm", "8.0.58", ids...))
	if !strings.HasPrefix(task.TaskID, "ZGCA") || len(task.TaskID) != 36 || len(task.CmdJobs) != 2 {
		t.Fatalf("%+v", task)
	}
	if out := e.sync("pm list packages -3", ids[0])[0].ExecuteMsg; out != "" {
		t.Fatalf("installed before the job ended: %q", out)
	}
	e.clk.Advance(2 * time.Second)
	for _, j := range e.jobs(task.TaskID) {
		if j.Status != 2 {
			t.Fatalf("%+v", j)
		}
	}
	if out := e.sync("pm list packages -3", ids[0])[0].ExecuteMsg; out != "package:com.tencent.mm" {
		t.Fatalf("pm: %q", out)
	}
	if out := e.sync("pm list packages", ids[1])[0].ExecuteMsg; !strings.Contains(out, "package:com.tencent.mm") {
		t.Fatalf("pm: %q", out)
	}
	// Already installed on every phone: 62005. A new version is fine.
	e.call("POST", "/v1/instances/app/install", installBody("com.tencent.mm", "8.0.58", ids...)).want(t, 200, "KOOPHONE.API.62005")
	e.startTask("/v1/instances/app/install", installBody("com.tencent.mm", "8.0.59", ids...))

	// The seed's example sends fast_install and object_size as numbers.
	b := installBody("com.example.num", "1", ids[0])
	b["fast_install"], b["object_size"] = 1, 120
	e.call("POST", "/v1/instances/app/install", b).want(t, 200, "0")
	delete(b, "fast_install")
	delete(b, "content_md5")
	b["object_name"] = "com.example.other"
	e.call("POST", "/v1/instances/app/install", b).want(t, 200, "0")

	for _, tc := range []struct {
		name   string
		mod    func(map[string]any)
		status int
		code   string
	}{
		{"fast_install 2", func(b map[string]any) { b["fast_install"] = "2" }, 200, "KOOPHONE.API.3008"},
		{"fast_install yes", func(b map[string]any) { b["fast_install"] = "yes" }, 200, "KOOPHONE.API.3008"},
		{"size not a number", func(b map[string]any) { b["object_size"] = "120MB" }, 200, "KOOPHONE.API.62006"},
		{"size negative", func(b map[string]any) { b["object_size"] = -1 }, 200, "KOOPHONE.API.62006"},
		{"size over 2 GB", func(b map[string]any) { b["object_size"] = "2048.5" }, 200, "KOOPHONE.API.62015"},
		{"size 2 GB", func(b map[string]any) { b["object_size"] = "2048" }, 200, "0"},
		{"biz_type", func(b map[string]any) { b["biz_type"] = "ipa" }, 400, "KOOPHONE.API.1000"},
		{"http url", func(b map[string]any) { b["install_package_url"] = "http://obs.example.com/a.apk" }, 400, "KOOPHONE.API.1000"},
		{"name too long", func(b map[string]any) { b["object_name"] = strings.Repeat("a", 101) }, 400, "KOOPHONE.API.1000"},
		{"no version", func(b map[string]any) { delete(b, "object_version") }, 400, "KOOPHONE.API.1000"},
		{"md5 too long", func(b map[string]any) { b["content_md5"] = strings.Repeat("f", 201) }, 400, "KOOPHONE.API.1000"},
		{"no phones", func(b map[string]any) { b["instance_id_list"] = []string{} }, 400, "KOOPHONE.API.1000"},
		{"unknown phone", func(b map[string]any) { b["instance_id_list"] = []string{"nothere1"} }, 401, "KOOPHONE.API.1001"},
		{"unknown field", func(b map[string]any) { b["instance_ids"] = ids }, 400, "KOOPHONE.API.1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := installBody("com.example."+strings.ReplaceAll(tc.name, " ", ""), "1", ids[0])
			tc.mod(b)
			e.call("POST", "/v1/instances/app/install", b).want(t, tc.status, tc.code)
		})
	}

	// A download host with "fail" in it makes every job fail with 62017.
	b = installBody("com.example.broken", "1", ids...)
	b["install_package_url"] = "https://fail.obs.example.com/x.apk"
	task = e.startTask("/v1/instances/app/install", b)
	e.clk.Advance(2 * time.Second)
	for _, j := range e.jobs(task.TaskID) {
		if j.Status != -1 || j.ErrorCode != "KOOPHONE.API.62017" {
			t.Fatalf("%+v", j)
		}
	}
	if out := e.sync("pm list packages broken", ids[0])[0].ExecuteMsg; out != "" {
		t.Fatalf("failed install installed: %q", out)
	}
}

func TestInstallQuotaAndShape(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.InstallResultShape = "table" })
	id := e.ids(1)[0]
	r := e.call("POST", "/v1/instances/app/install", installBody("com.example.a", "1", id))
	r.want(t, 200, "0")
	var d struct {
		Data taskData `json:"data"`
	}
	r.data(t, &d)
	if !strings.HasPrefix(d.Data.TaskID, "ZGCA") || len(d.Data.CmdJobs) != 1 {
		t.Fatalf("table shape: %s", r.body)
	}
	// 1 TB per tenant: 512 packages of 2 GB fill it (the first one took 120 MB).
	for i := range 511 {
		b := installBody("com.example.big"+strconv.Itoa(i), "1", id)
		b["object_size"] = "2048"
		e.call("POST", "/v1/instances/app/install", b).want(t, 200, "0")
	}
	b := installBody("com.example.last", "1", id)
	b["object_size"] = "2048"
	e.call("POST", "/v1/instances/app/install", b).want(t, 200, "KOOPHONE.API.62016")
}
