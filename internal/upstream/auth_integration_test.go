package upstream_test

// Authentication end to end against the simulator: the IAM password flow (token fetch, reuse, refresh ahead of
// expiry, refresh after revocation, refusal), AK/SK signatures verified by the simulator's independent
// implementation, and a static token.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// iamConfig is the simulator's IAM user scoped to project (a name, or a 32-hex id), on the shared fake clock.
func (e *simEnv) iamConfig(project string) upstream.IAMConfig {
	return upstream.IAMConfig{
		Endpoint: e.srv.URL, Domain: e.creds.Domain, User: e.creds.User, Password: e.creds.Password,
		Project: project, HTTPClient: &http.Client{Transport: e.transport()}, Clock: e.clk,
	}
}

// calls is a snapshot of the simulator's request counters, to assert on deltas.
type callCounts map[string]int64

func (e *simEnv) snapshot(ops ...string) callCounts {
	c := callCounts{}
	for _, op := range ops {
		c[op] = e.sim.Calls(op)
	}
	return c
}

// wantDelta asserts how many requests each operation received since before.
func (e *simEnv) wantDelta(t *testing.T, what string, before callCounts, want map[string]int64) {
	t.Helper()
	for op, n := range want {
		if got := e.sim.Calls(op) - before[op]; got != n {
			t.Errorf("%s: the simulator saw %d %s requests, want %d", what, got, op, n)
		}
	}
}

// TestSimAuthIAMPassword: the first call fetches a token, later calls reuse it, the token is refreshed once past
// the client's refresh point (18 h into IAM's 24 h: a quarter of its life before expiry), concurrent callers
// share that one refresh, and a revoked token costs exactly one more IAM call and one resend.
func TestSimAuthIAMPassword(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	c := e.client(upstream.NewIAMPassword(e.iamConfig(e.creds.ProjectName)), nil)
	phones := e.ids(2)
	query := func(what string) {
		t.Helper()
		_, err := c.BatchQueryStatus(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: phones})
		mustOK(t, what, err)
	}
	const op = "BatchQueryStatus"

	before := e.snapshot(sim.OpIAM, op)
	query("first call")
	e.wantDelta(t, "first call", before, map[string]int64{sim.OpIAM: 1, op: 1})
	for range 3 {
		query("cached token")
	}
	e.wantDelta(t, "four calls", before, map[string]int64{sim.OpIAM: 1, op: 4})

	// Just before the refresh point nothing happens; just after it, exactly one refresh.
	refreshAt := 18 * time.Hour
	e.fake.Advance(refreshAt - time.Second)
	query("before the refresh point")
	e.wantDelta(t, "before the refresh point", before, map[string]int64{sim.OpIAM: 1})
	e.fake.Advance(2 * time.Second)
	query("past the refresh point")
	query("after the refresh")
	e.wantDelta(t, "past the refresh point", before, map[string]int64{sim.OpIAM: 2, op: 7})

	// Concurrent callers past the next refresh point: one refreshes, the others keep using the still-valid token.
	e.fake.Advance(refreshAt)
	mid := e.snapshot(sim.OpIAM, op)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := c.BatchQueryStatus(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: phones})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		mustOK(t, "concurrent call", err)
	}
	e.wantDelta(t, "8 concurrent calls past the refresh point", mid, map[string]int64{sim.OpIAM: 1, op: 8})

	// Revocation: the simulator answers 6001/401, the client fetches a new token once and resends, for a read
	// and for a write alike (a refused credential is refused before anything is done).
	for _, tc := range []struct {
		op   string
		call func() error
	}{
		{"BatchQueryStatus", func() error {
			_, err := c.BatchQueryStatus(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: phones})
			return err
		}},
		{"AsyncCommand", func() error {
			_, err := c.AsyncCommand(itCtx(t), upstream.CommandRequest{Command: "echo revoked", InstanceIDs: phones})
			return err
		}},
	} {
		e.sim.RevokeTokens()
		b := e.snapshot(sim.OpIAM, tc.op)
		mustOK(t, tc.op+" after RevokeTokens", tc.call())
		e.wantDelta(t, tc.op+" after RevokeTokens", b, map[string]int64{sim.OpIAM: 1, tc.op: 2})
		b = e.snapshot(sim.OpIAM, tc.op)
		mustOK(t, tc.op+" with the new token", tc.call())
		e.wantDelta(t, tc.op+" with the new token", b, map[string]int64{sim.OpIAM: 0, tc.op: 1})
	}
}

// TestSimAuthIAMProject: the project may be named by name or by its 32-hex id (the client sends scope.project.name
// or .id accordingly); an unknown one is KindAuth and KooPhone is never called.
func TestSimAuthIAMProject(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	for _, tc := range []struct {
		name, project string
		ok            bool
	}{
		{"by name", e.creds.ProjectName, true},
		{"by id", e.creds.ProjectID, true},
		{"unknown name", "cn-nowhere-1", false},
		{"unknown id", strings.Repeat("ab", 16), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(upstream.NewIAMPassword(e.iamConfig(tc.project)), nil)
			before := e.snapshot(sim.OpIAM, "ListInstances")
			_, err := c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 1})
			if tc.ok {
				mustOK(t, "ListInstances", err)
				e.wantDelta(t, tc.name, before, map[string]int64{sim.OpIAM: 1, "ListInstances": 1})
				return
			}
			got := wantError(t, err, upstream.KindAuth, "", http.StatusBadRequest)
			if got.Op != "ListInstances" || got.Attempts != 1 {
				t.Errorf("IAM failure reported as %+v", *got)
			}
			e.wantDelta(t, tc.name, before, map[string]int64{sim.OpIAM: 1, "ListInstances": 0})
		})
	}
}

// TestSimAuthIAMWrongPassword: IAM's 401 is KindAuth, nothing reaches KooPhone, and the password appears in no
// rendering of the error or of the configuration.
func TestSimAuthIAMWrongPassword(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	cfg := e.iamConfig(e.creds.ProjectName)
	cfg.Password = "Wr0ng-Pa55word-7f3c"
	auth := upstream.NewIAMPassword(cfg)
	c := e.client(auth, nil)

	before := e.snapshot(sim.OpIAM, "AsyncCommand")
	_, err := c.AsyncCommand(itCtx(t), upstream.CommandRequest{Command: "id", InstanceIDs: e.ids(1)})
	got := wantError(t, err, upstream.KindAuth, "", http.StatusUnauthorized)
	e.wantDelta(t, "wrong password", before, map[string]int64{sim.OpIAM: 1, "AsyncCommand": 0})
	if got.Attempts != 1 {
		t.Errorf("attempts %d, want 1 (an IAM refusal is not retried)", got.Attempts)
	}
	for what, text := range map[string]string{
		"Error()": err.Error(), "%+v": fmt.Sprintf("%+v", *got), "%#v": fmt.Sprintf("%#v", *got),
		"config %v": fmt.Sprintf("%v", cfg), "config %#v": fmt.Sprintf("%#v", cfg),
		"authenticator %v": fmt.Sprintf("%v", auth), "authenticator %#v": fmt.Sprintf("%#v", auth),
		"Principal": auth.Principal(),
	} {
		if strings.Contains(text, cfg.Password) {
			t.Errorf("%s reveals the password: %s", what, text)
		}
	}
	if !strings.Contains(err.Error(), "password is wrong") {
		t.Errorf("error %q does not pass IAM's reason on", err)
	}
}

// TestSimAuthIAMPermissionDeniedKeepsToken: KooPhone answers "no permission for this instance" (1001) with HTTP
// 401; that refuses the phone, not the token, so the client neither refreshes the token nor sends the call again.
func TestSimAuthIAMPermissionDeniedKeepsToken(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	c := e.client(upstream.NewIAMPassword(e.iamConfig(e.creds.ProjectName)), nil)
	_, err := c.BatchQueryStatus(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: e.ids(1)})
	mustOK(t, "warm-up", err)

	before := e.snapshot(sim.OpIAM, "SyncCommand")
	_, err = c.SyncCommand(itCtx(t), upstream.CommandRequest{Command: "id", InstanceIDs: []string{"nosuch01"}})
	got := apiError(t, err, "KOOPHONE.API.1001", http.StatusUnauthorized)
	if got.Attempts != 1 {
		t.Errorf("attempts %d, want 1", got.Attempts)
	}
	e.wantDelta(t, "1001 with a valid IAM token", before, map[string]int64{sim.OpIAM: 0, "SyncCommand": 1})
}

// TestSimAuthAKSK: the simulator verifies the client's SDK-HMAC-SHA256 signatures on a GET with a query (filters
// that need escaping included), POSTs and a PUT with bodies, a body-less POST with a path parameter, and a path
// segment that needs escaping; a wrong SK and a wrong project are refused and not retried.
func TestSimAuthAKSK(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	c := e.client(nil, nil)
	phones := e.ids(2)

	page, err := c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 5})
	mustOK(t, "signed GET with a query", err)
	if page.TotalCount != 20 {
		t.Errorf("total_count %d", page.TotalCount)
	}
	// Space, plus, slash, colon and non-ASCII in query values: signed and sent in the same canonical form.
	_, err = c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 5,
		InstanceName: "a b+c/d:é", QueryStartTime: "2026-03-01 00:00:00"})
	mustOK(t, "signed GET with escaped query values", err)

	task, err := c.AsyncCommand(itCtx(t), upstream.CommandRequest{Command: "echo signed", InstanceIDs: phones})
	mustOK(t, "signed POST with a body", err)
	_, err = c.GetTask(itCtx(t), task.TaskID)
	mustOK(t, "signed GET with a path parameter", err)
	mustOK(t, "signed PUT", c.SetVideoConfig(itCtx(t), upstream.SetVideoConfigRequest{InstanceIDs: phones, InstanceSettings: sixVideoSettings()}))
	_, err = c.GetDeviceToken(itCtx(t), phones[0])
	wantAPIError(t, err, "KOOPHONE.API.62010", http.StatusOK) // signature accepted: the operation itself answered

	// A task id that must be escaped in the path: the signature over the escaped segment is accepted, so the
	// answer is GetTask's own 1323, not APIGW.0301.
	_, err = c.GetTask(itCtx(t), "no such:task@1 é")
	wantAPIError(t, err, "KOOPHONE.API.1323", http.StatusBadRequest)

	for _, tc := range []struct {
		name   string
		auth   upstream.Authenticator
		code   string
		status int
	}{
		{"wrong SK", upstream.NewAKSK(e.creds.AK, e.creds.SK+"x", e.creds.ProjectID), "APIGW.0301", 401},
		{"unknown AK", upstream.NewAKSK("AKNOTKNOWN0000000000", e.creds.SK, e.creds.ProjectID), "APIGW.0301", 401},
		{"wrong project", upstream.NewAKSK(e.creds.AK, e.creds.SK, strings.Repeat("0", 32)), "KOOPHONE.API.0004", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := e.client(tc.auth, nil)
			for _, call := range []struct {
				op string
				do func() error
			}{
				{"ListInstances", func() error {
					_, err := bad.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 1})
					return err
				}},
				{"AsyncCommand", func() error {
					_, err := bad.AsyncCommand(itCtx(t), upstream.CommandRequest{Command: "id", InstanceIDs: phones})
					return err
				}},
			} {
				before := e.snapshot(call.op)
				got := apiError(t, call.do(), tc.code, tc.status)
				if got.Attempts != 1 {
					t.Errorf("%s: %d attempts, want 1 (a signature cannot be refreshed)", call.op, got.Attempts)
				}
				e.wantDelta(t, call.op, before, map[string]int64{call.op: 1})
			}
		})
	}
}

// tamperTransport changes one byte of a request body after the client has signed it, as a proxy corrupting the
// body (or an attacker) would, while tamper is set.
type tamperTransport struct {
	base   http.RoundTripper
	tamper atomic.Bool
	n      atomic.Int64 // bodies changed
}

func (tt *tamperTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !tt.tamper.Load() || req.Body == nil {
		return tt.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	// "ping" → "pinG": one byte, same length, still valid JSON that the simulator would otherwise accept.
	i := bytes.Index(body, []byte("ping"))
	if i < 0 {
		return nil, fmt.Errorf("tamperTransport: no \"ping\" in %s", body)
	}
	mod := bytes.Clone(body)
	mod[i+3] = 'G'
	tt.n.Add(1)
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(mod))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(mod)), nil }
	r.ContentLength = int64(len(mod))
	return tt.base.RoundTrip(r)
}

// TestSimAuthAKSKTamperedBody: the signature covers the body, so one changed byte after signing is APIGW.0301,
// and the same request left alone passes.
func TestSimAuthAKSKTamperedBody(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	tt := &tamperTransport{base: e.transport()}
	c := e.client(nil, func(cfg *upstream.Config) { cfg.HTTPClient = &http.Client{Transport: tt} })
	req := upstream.CommandRequest{Command: "echo ping", InstanceIDs: e.ids(1)}

	tt.tamper.Store(true)
	before := e.snapshot("SyncCommand")
	_, err := c.SyncCommand(itCtx(t), req)
	got := apiError(t, err, "APIGW.0301", http.StatusUnauthorized)
	if tt.n.Load() != 1 || got.Attempts != 1 || !strings.Contains(got.Message, "signature") {
		t.Errorf("tampered: %d bodies changed, error %+v", tt.n.Load(), *got)
	}
	e.wantDelta(t, "tampered body", before, map[string]int64{"SyncCommand": 1})

	tt.tamper.Store(false)
	res, err := c.SyncCommand(itCtx(t), req)
	mustOK(t, "the same request, untouched", err)
	if res.CmdResults[0].ExecuteMsg != "ping" {
		t.Errorf("echo ping answered %+v", res.CmdResults)
	}
}

// TestSimAuthStaticToken: a token fetched from the simulator's IAM by hand works as a static token; an invalid
// or revoked one is 6001/401, final (no refresh, no IAM call, one request).
func TestSimAuthStaticToken(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	token := e.fetchToken(t)
	good := e.client(upstream.NewStaticToken(token), nil)
	bogus := e.client(upstream.NewStaticToken("MIInot-a-token"), nil)
	list := func(c *upstream.Client) error {
		_, err := c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 1})
		return err
	}

	before := e.snapshot(sim.OpIAM, "ListInstances")
	mustOK(t, "static token", list(good))
	got := apiError(t, list(bogus), "KOOPHONE.API.6001", http.StatusUnauthorized)
	if got.Attempts != 1 {
		t.Errorf("invalid static token: %d attempts, want 1", got.Attempts)
	}
	e.sim.RevokeTokens()
	wantAPIError(t, list(good), "KOOPHONE.API.6001", http.StatusUnauthorized)
	e.wantDelta(t, "static tokens", before, map[string]int64{sim.OpIAM: 0, "ListInstances": 3})
}

// fetchToken asks the simulator's IAM for a project-scoped token with a hand-written Keystone request.
func (e *simEnv) fetchToken(t *testing.T) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": e.creds.User, "password": e.creds.Password, "domain": map[string]string{"name": e.creds.Domain},
		}}},
		"scope": map[string]any{"project": map[string]string{"id": e.creds.ProjectID}},
	}})
	hc := &http.Client{Transport: e.transport()}
	resp, err := hc.Post(e.srv.URL+"/v3/auth/tokens", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	tok := resp.Header.Get("X-Subject-Token")
	if resp.StatusCode != http.StatusCreated || tok == "" {
		t.Fatalf("IAM: HTTP %d, token %q", resp.StatusCode, tok)
	}
	return tok
}
