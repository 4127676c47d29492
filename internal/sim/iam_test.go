package sim_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func TestIAMIssuesProjectToken(t *testing.T) {
	e := newEnv(t, nil)
	r := e.raw("POST", "/v3/auth/tokens", keystone(sim.DefaultDomain, sim.DefaultUser, sim.DefaultPassword,
		map[string]string{"name": "cn-north-7"}), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("HTTP %d %s", r.status, r.body)
	}
	tok := r.header.Get("X-Subject-Token")
	if len(tok) < 1000 {
		t.Fatalf("token of %d characters; IAM's are kilobytes long", len(tok))
	}
	var body struct {
		Token struct {
			ExpiresAt string   `json:"expires_at"`
			IssuedAt  string   `json:"issued_at"`
			Methods   []string `json:"methods"`
			Project   struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"project"`
			User struct {
				Name   string `json:"name"`
				Domain struct {
					Name string `json:"name"`
				} `json:"domain"`
			} `json:"user"`
		} `json:"token"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Token.ExpiresAt != start.Add(24*time.Hour).Format(iamTime) || body.Token.IssuedAt != start.Format(iamTime) {
		t.Errorf("expires_at %q issued_at %q", body.Token.ExpiresAt, body.Token.IssuedAt)
	}
	if body.Token.Project.ID != sim.DefaultProjectID || body.Token.Project.Name != "cn-north-7" ||
		body.Token.User.Name != sim.DefaultUser || body.Token.User.Domain.Name != sim.DefaultDomain ||
		len(body.Token.Methods) != 1 || body.Token.Methods[0] != "password" {
		t.Errorf("token body %s", r.body)
	}
	if tok == e.token {
		t.Error("two logins gave the same token")
	}
	// Scope by project id works as well as by name.
	r = e.raw("POST", "/v3/auth/tokens", keystone(sim.DefaultDomain, sim.DefaultUser, sim.DefaultPassword,
		map[string]string{"id": sim.DefaultProjectID}), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("scope by id: HTTP %d %s", r.status, r.body)
	}
	if e.sim.Calls(sim.OpIAM) != 3 {
		t.Errorf("IAM calls = %d, want 3", e.sim.Calls(sim.OpIAM))
	}
}

func TestIAMRejects(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name   string
		body   any
		status int
		msg    string
	}{
		{"wrong password", keystone(sim.DefaultDomain, sim.DefaultUser, "nope", map[string]string{"name": "cn-north-7"}), 401, "The username or password is wrong."},
		{"wrong domain", keystone("other", sim.DefaultUser, sim.DefaultPassword, map[string]string{"name": "cn-north-7"}), 401, "The username or password is wrong."},
		{"unknown user", keystone(sim.DefaultDomain, "mallory", sim.DefaultPassword, map[string]string{"name": "cn-north-7"}), 401, "The username or password is wrong."},
		{"no scope", keystone(sim.DefaultDomain, sim.DefaultUser, sim.DefaultPassword, nil), 400, ""},
		{"other project", keystone(sim.DefaultDomain, sim.DefaultUser, sim.DefaultPassword, map[string]string{"name": "cn-north-4"}), 400, ""},
		{"other project id", keystone(sim.DefaultDomain, sim.DefaultUser, sim.DefaultPassword, map[string]string{"id": "0123"}), 400, ""},
		{"not json", "{", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.raw("POST", "/v3/auth/tokens", tc.body, nil)
			var body struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
					Title   string `json:"title"`
				} `json:"error"`
			}
			_ = json.Unmarshal(r.body, &body)
			if r.status != tc.status || body.Error.Code != tc.status || body.Error.Title == "" || r.header.Get("X-Subject-Token") != "" {
				t.Fatalf("HTTP %d %s", r.status, r.body)
			}
			if tc.msg != "" && body.Error.Message != tc.msg {
				t.Errorf("message %q", body.Error.Message)
			}
		})
	}
}

func TestTokenExpiresAndRevokes(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.TokenTTL = time.Hour })
	list := "/v1/instances/batch-query?page_no=1&page_size=10&x-request-id=r1"
	e.call("GET", list, nil).want(t, 200, "0")

	e.clk.Advance(59 * time.Minute)
	e.call("GET", list, nil).want(t, 200, "0")
	e.clk.Advance(time.Minute)
	e.call("GET", list, nil).want(t, 401, "KOOPHONE.API.6001")

	e.token = e.login(sim.DefaultUser, sim.DefaultPassword)
	e.call("GET", list, nil).want(t, 200, "0")
	e.sim.RevokeTokens()
	e.call("GET", list, nil).want(t, 401, "KOOPHONE.API.6001")

	e.token = e.login(sim.DefaultUser, sim.DefaultPassword)
	e.call("GET", list, nil).want(t, 200, "0")
	if r := e.raw("POST", "/_sim/revoke-tokens", nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("admin revoke: HTTP %d", r.status)
	}
	e.call("GET", list, nil).want(t, 401, "KOOPHONE.API.6001")

	// No token at all, or one the simulator never issued.
	hdr := e.headers()
	hdr.Del("X-Auth-Token")
	e.raw("GET", list, nil, hdr).want(t, 401, "KOOPHONE.API.6001")
	hdr.Set("X-Auth-Token", "MIIforged")
	e.raw("GET", list, nil, hdr).want(t, 401, "KOOPHONE.API.6001")
}

func TestTokenHeaderCaseAndProject(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.ids(1)
	body := map[string]any{"instance_ids": ids}
	// Header names are case-insensitive: a lowercase x-auth-token works.
	hdr := http.Header{"x-auth-token": {e.token}, "x-request-id": {"r-1"}}
	e.raw("POST", "/v1/instances/batch-query-status", body, hdr).want(t, 200, "0")

	h := e.headers()
	h.Set("X-Project-Id", sim.DefaultProjectID)
	e.raw("POST", "/v1/instances/batch-query-status", body, h).want(t, 200, "0")
	h.Set("X-Project-Id", "ffffffffffffffffffffffffffffffff")
	e.raw("POST", "/v1/instances/batch-query-status", body, h).want(t, 200, "KOOPHONE.API.0004")
}
