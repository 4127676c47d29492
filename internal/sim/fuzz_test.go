package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
)

// FuzzRequest throws arbitrary methods, paths, Authorization headers and bodies at the handler. Nothing may
// panic (the handler recovers, but counts what it recovered), and every answer must be a JSON envelope.
//
//	go test -run '^$' -fuzz FuzzRequest -fuzztime 60s ./internal/sim/
func FuzzRequest(f *testing.F) {
	start := clocktest.Start(time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC))
	s := New(Config{Clock: clock.NewFake(start), FleetSize: 3, Seed: 7, ForeignInstances: []string{"f0reign01"}})
	id := s.InstanceIDs()[0]
	tok := s.issueToken(start, start.Add(time.Hour))

	seeds := []struct{ method, path, auth, body string }{
		{"POST", "/v1/instances/sync-command", "", `{"command":"ls -l /system","instance_ids":["` + id + `"]}`},
		{"POST", "/v1/instances/async-command", "", `{"command":"getprop","instance_ids":["` + id + `","f0reign01"]}`},
		{"GET", "/v1/instances/tasks/abc", "", ``},
		{"PUT", "/v1/instances/video-setting", "", `{"instance_ids":["` + id + `"],"instance_settings":[{"network_type":"WIFI","encoding_type":"H264","video_spec_groups":[{"definition_540P":{"code_rate":100,"fps":30}}]}]}`},
		{"POST", "/v1/instances/batch-query-status", "", `{"instance_ids":["` + id + `"]}`},
		{"POST", "/v1/instances/batch-reset", "", `{"instance_ids":[1,2]}`},
		{"POST", "/v1/instances/" + id + "/auth", "", ``},
		{"POST", "/v1/instances/assign", "", `{"user_instances":[{"user_id":"u","instance_id":"` + id + `"}]}`},
		{"POST", "/v1/instances/unassign", "", `{"user_instances":[{"user_id":7,"instance_id":null}]}`},
		{"GET", "/v1/instances/batch-query?page_no=1&page_size=9999999999999999999&x-request-id=a", "", ``},
		{"POST", "/v1/instances/reboot", "", `{"instance_ids":"` + id + `"}`},
		{"GET", "/v1/instances/sku?type=0", "", ``},
		{"POST", "/v1/instances/create", "", `{"os":"AOSP9","instanceSkuId":"kp.professional.xlarge.32g.2","bandSkuId":"kp.bandwidth","regionId":"cn-north-7","instanceNamePrefix":"f","bandSize":1e308,"count":1,"chargeParam":{"chargingMode":1,"periodType":3,"periodNum":1,"isAutoPay":1}}`},
		{"POST", "/v1/instances/delete", "", `{"instanceIdList":["` + id + `"]}`},
		{"POST", "/v1/instances/prepare", "", `{"user_id":"u","instance_ids":["` + id + `","` + id + `"]}`},
		{"POST", "/v1/instances/prepare-progress", "", `{"user_id":"u","instance_id":"` + id + `"}`},
		{"POST", "/v1/instances/backup", "", `{"instance_ids":["` + id + `"]}`},
		{"POST", "/v1/instances/streaming/stop", "", `{"instance_id":"` + id + `"}`},
		{"POST", "/v1/instances/session/release", "", `{"instance_id":{}}`},
		{"POST", "/v1/instances/app/install", "", `{"fast_install":1,"object_name":"a","file_name":"a.apk","object_version":"1","object_size":1e999,"biz_type":"apk","content_type":"x","install_package_url":"https://h/a","instance_id_list":["` + id + `"]}`},
		{"POST", "/v3/auth/tokens", "", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"sim-user","password":"sim-password","domain":{"name":"sim-domain"}}}},"scope":{"project":{"name":"cn-north-7"}}}}`},
		{"POST", "/v1/instances/batch-query-status", "SDK-HMAC-SHA256 Access=" + DefaultAK + ", SignedHeaders=host;x-sdk-date, Signature=00", `{}`},
		{"POST", "/v1/instances/batch-query-status", "SDK-HMAC-SHA256 ,,,=;;=", `[]`},
		{"GET", "/v1/instances/batch-query?%zz", "SDK-HMAC-SHA256 Access=x, SignedHeaders=X-SDK-DATE, Signature=1", ``},
	}
	for _, sd := range seeds {
		f.Add(sd.method, sd.path, sd.auth, []byte(sd.body))
	}
	f.Fuzz(func(t *testing.T, method, path, auth string, body []byte) {
		if strings.HasPrefix(path, "/_sim/") || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") {
			t.Skip() // the admin API reconfigures the simulator; malformed targets never reach a handler
		}
		if method == "" || strings.ContainsAny(method, " \r\n\t()<>@,;:\\\"/[]?={}") {
			t.Skip()
		}
		r := httptest.NewRequest("GET", "http://sim.local/", bytes.NewReader(body))
		r.Method = method
		u, err := r.URL.Parse(path)
		if err != nil {
			t.Skip()
		}
		r.URL, r.RequestURI = u, path
		r.Header.Set("X-Request-Id", "fuzz-1")
		r.Header.Set("Content-Type", "application/json")
		if auth != "" {
			r.Header.Set("Authorization", auth)
			r.Header.Set("X-Sdk-Date", start.Format(sdkDateFormat))
		} else {
			r.Header.Set("X-Auth-Token", tok)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if n := s.panics.Load(); n > 0 {
			t.Fatalf("%d handler panics on %s %s %q", n, method, path, body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s: HTTP %d, body not JSON: %q", method, path, w.Code, w.Body.Bytes())
		}
		if w.Code == http.StatusOK {
			var env struct {
				ErrorCode *string `json:"error_code"`
			}
			if json.Unmarshal(w.Body.Bytes(), &env) != nil || env.ErrorCode == nil {
				t.Fatalf("%s %s: HTTP 200 without error_code: %s", method, path, w.Body.Bytes())
			}
		}
	})
}
