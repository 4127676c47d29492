package sim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// iamTime and kooTime are how IAM and KooPhone write times.
const iamTime = "2006-01-02T15:04:05.000000Z"

func kooTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// fleetBorn is when the simulator's first phone was created: 30 days before the clock it starts on.
var fleetBorn = start.AddDate(0, 0, -30)

var start = clocktest.Start(time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC))

// env is a simulator on a loopback port, driven by a fake clock, with a token already issued.
type env struct {
	t      *testing.T
	sim    *sim.Server
	clk    *clock.Fake
	url    string
	client *http.Client
	token  string
}

func newEnv(t *testing.T, mod func(*sim.Config)) *env {
	t.Helper()
	clk := clock.NewFake(start)
	cfg := sim.DefaultConfig()
	cfg.Clock = clk
	if mod != nil {
		mod(&cfg)
	}
	s := sim.New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	e := &env{t: t, sim: s, clk: clk, url: srv.URL, client: srv.Client()}
	e.token = e.login(sim.DefaultUser, sim.DefaultPassword)
	return e
}

// resp is an answer, with the KooPhone envelope decoded when there is one.
type resp struct {
	status int
	header http.Header
	body   []byte
	env    map[string]json.RawMessage
}

func (r *resp) str(member string) string {
	var s string
	_ = json.Unmarshal(r.env[member], &s)
	return s
}

func (r *resp) code() string { return r.str("error_code") }

// data decodes the envelope's data into v.
func (r *resp) data(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.env["data"], v); err != nil {
		t.Fatalf("data %s: %v", r.env["data"], err)
	}
}

// raw sends a request as is; body may be nil, a string, []byte or a value to marshal.
func (e *env) raw(method, path string, body any, hdr http.Header) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = res.Body.Close() }()
	out := &resp{status: res.StatusCode, header: res.Header}
	out.body, _ = io.ReadAll(res.Body)
	return out.decode()
}

func (r *resp) decode() *resp {
	_ = json.Unmarshal(r.body, &r.env)
	return r
}

// call sends an authenticated request with a request id and a JSON content type.
func (e *env) call(method, path string, body any) *resp {
	e.t.Helper()
	return e.raw(method, path, body, e.headers())
}

func (e *env) headers() http.Header {
	return http.Header{
		"X-Auth-Token": {e.token},
		"X-Request-Id": {"req-0001"},
		"Content-Type": {"application/json"},
	}
}

// want checks an answer's HTTP status and error_code.
func (r *resp) want(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Fatalf("got HTTP %d %q, want HTTP %d %q; body %s", r.status, r.code(), status, code, r.body)
	}
}

func (e *env) login(user, password string) string {
	e.t.Helper()
	r := e.raw("POST", "/v3/auth/tokens", keystone(sim.DefaultDomain, user, password, map[string]string{"name": "cn-north-7"}), nil)
	if r.status != http.StatusCreated {
		e.t.Fatalf("login: HTTP %d %s", r.status, r.body)
	}
	return r.header.Get("X-Subject-Token")
}

func keystone(domain, user, password string, project map[string]string) map[string]any {
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{
			"methods": []string{"password"},
			"password": map[string]any{"user": map[string]any{
				"name": user, "password": password, "domain": map[string]string{"name": domain},
			}},
		},
	}}
	if project != nil {
		body["auth"].(map[string]any)["scope"] = map[string]any{"project": project}
	}
	return body
}

// ids returns the first n instance ids of the fleet.
func (e *env) ids(n int) []string { return e.sim.InstanceIDs()[:n] }

// task starts an async task and returns its data.
type taskData struct {
	TaskID  string `json:"task_id"`
	CmdJobs []struct {
		InstanceID string `json:"instance_id"`
		JobID      string `json:"job_id"`
	} `json:"cmd_jobs"`
}

type jobDetail struct {
	JobID      string  `json:"job_id"`
	Status     int     `json:"status"`
	ErrorCode  string  `json:"error_code"`
	ErrorMsg   string  `json:"error_msg"`
	ExecuteMsg *string `json:"execute_msg"`
}

func (e *env) jobs(taskID string) []jobDetail {
	e.t.Helper()
	r := e.call("GET", "/v1/instances/tasks/"+taskID, nil)
	r.want(e.t, 200, "0")
	var d struct {
		Jobs []jobDetail `json:"jobs"`
	}
	r.data(e.t, &d)
	return d.Jobs
}

func (e *env) startTask(path string, body any) taskData {
	e.t.Helper()
	r := e.call("POST", path, body)
	r.want(e.t, 200, "0")
	var d taskData
	r.data(e.t, &d)
	return d
}

func (e *env) status(id string) int {
	e.t.Helper()
	r := e.call("POST", "/v1/instances/batch-query-status", map[string]any{"instance_ids": []string{id}})
	r.want(e.t, 200, "0")
	var d struct {
		StatusResults []struct {
			InstanceID string `json:"instance_id"`
			Status     int    `json:"status"`
		} `json:"status_results"`
	}
	r.data(e.t, &d)
	return d.StatusResults[0].Status
}
