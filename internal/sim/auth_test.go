package sim_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

// sign is a deliberately plain APIG signer for the tests (the simulator's verifier is the code under test): it
// signs Host, Content-Type (when set) and X-Sdk-Date, with the query already in canonical order.
func sign(t *testing.T, req *http.Request, body []byte, ak, sk string, at time.Time) {
	t.Helper()
	date := at.UTC().Format("20060102T150405Z")
	req.Header.Set("X-Sdk-Date", date)
	names := []string{"host", "x-sdk-date"}
	if req.Header.Get("Content-Type") != "" {
		names = append(names, "content-type")
	}
	sort.Strings(names)
	var hdrs strings.Builder
	for _, n := range names {
		v := req.Header.Get(n)
		if n == "host" {
			v = req.URL.Host
		}
		hdrs.WriteString(n + ":" + v + "\n")
	}
	q := req.URL.Query()
	var keys []string
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, url.PathEscape(k)+"="+strings.ReplaceAll(url.QueryEscape(q.Get(k)), "+", "%20"))
	}
	sum := sha256.Sum256(body)
	cr := strings.Join([]string{req.Method, req.URL.Path + "/", strings.Join(parts, "&"), hdrs.String(),
		strings.Join(names, ";"), hex.EncodeToString(sum[:])}, "\n")
	crSum := sha256.Sum256([]byte(cr))
	mac := hmac.New(sha256.New, []byte(sk))
	mac.Write([]byte("SDK-HMAC-SHA256\n" + date + "\n" + hex.EncodeToString(crSum[:])))
	req.Header.Set("Authorization", "SDK-HMAC-SHA256 Access="+ak+", SignedHeaders="+strings.Join(names, ";")+
		", Signature="+hex.EncodeToString(mac.Sum(nil)))
}

// signed sends a request signed with ak/sk; tamper may change the body after signing.
func (e *env) signed(method, path string, body []byte, ak, sk string, at time.Time, tamper func([]byte) []byte) *resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-Request-Id", "signed-1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	sign(e.t, req, body, ak, sk, at)
	if tamper != nil {
		body = tamper(bytes.Clone(body))
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	out := &resp{status: res.StatusCode, header: res.Header}
	out.body, _ = io.ReadAll(res.Body)
	return out.decode()
}

func TestAKSK(t *testing.T) {
	e := newEnv(t, nil)
	body := []byte(`{"instance_ids":["` + e.ids(1)[0] + `"]}`)
	now := e.clk.Now()

	r := e.signed("POST", "/v1/instances/batch-query-status", body, sim.DefaultAK, sim.DefaultSK, now, nil)
	r.want(t, 200, "0")
	r = e.signed("GET", "/v1/instances/batch-query?page_size=5&x-request-id=q.1&page_no=1&instance_name=sim%200&pool_scene_tag=CLOUD_PHONE", nil,
		sim.DefaultAK, sim.DefaultSK, now.Add(-14*time.Minute), nil)
	r.want(t, 200, "0")

	for _, tc := range []struct {
		name   string
		ak, sk string
		at     time.Time
		tamper func([]byte) []byte
	}{
		{"one body byte changed", sim.DefaultAK, sim.DefaultSK, now, func(b []byte) []byte { b[len(b)-3]++; return b }},
		{"wrong SK", sim.DefaultAK, "not-the-secret", now, nil},
		{"unknown AK", "AKNOBODYHASTHIS00000", sim.DefaultSK, now, nil},
		{"stale date", sim.DefaultAK, sim.DefaultSK, now.Add(-16 * time.Minute), nil},
		{"future date", sim.DefaultAK, sim.DefaultSK, now.Add(16 * time.Minute), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.signed("POST", "/v1/instances/batch-query-status", body, tc.ak, tc.sk, tc.at, tc.tamper)
			r.want(t, 401, "APIGW.0301")
			if !strings.HasPrefix(r.str("error_msg"), "Incorrect IAM authentication information: ") {
				t.Errorf("error_msg %q", r.str("error_msg"))
			}
		})
	}
}
