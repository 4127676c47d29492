package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/auth/authtest"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// Finding 4: denied resets naming 95,000 phones (gRPC) and 60,000 (REST, under the body cap) each write one
// small audit line that counts the ids instead of copying them (on main: megabytes per call).
func TestDeniedHugeResetAuditIsBounded(t *testing.T) {
	e := newSecureEnv(t, secureOpts{keys: map[string]string{"rk": "reader"}, policy: `statements:
  - {effect: allow, principals: ["key:reader"], actions: ["koophone:cloudphoneResource:query*"]}
`})
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("p%07d", i)
		}
		return out
	}
	_, err := pb.NewInstanceServiceClient(e.dial()).BatchReset(e.bearer("rk"), &pb.BatchResetRequest{InstanceIds: ids(95000)})
	if denial(err) == nil {
		t.Fatalf("gRPC reset by a reader: %v", err)
	}
	body, _ := json.Marshal(map[string]any{"instance_ids": ids(60000)})
	if code, res := e.rest(http.DefaultClient, http.MethodPost, "/v1/instances/batch-reset", string(body), "rk"); code != http.StatusForbidden {
		t.Fatalf("REST reset by a reader: %d %.200s", code, res)
	}
	audit := e.audit()
	lines := strings.Split(strings.TrimSpace(audit), "\n")
	if len(lines) != 2 || len(audit) > 8<<10 {
		t.Fatalf("%d audit lines of %d bytes in all, want 2 lines of at most 8 KiB:\n%.2000s", len(lines), len(audit), audit)
	}
	for i, want := range []float64{95000, 60000} {
		var l map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &l); err != nil {
			t.Fatal(err)
		}
		if l["instance_ids_total"] != want || l["outcome"] != "PermissionDenied" || l["principal"] != "key:reader" || len(l["instance_ids"].([]any)) == 0 {
			t.Errorf("audit line %d: %s", i, lines[i])
		}
	}
}

// fileCase is a gateway with API keys and a policy on real files, and the ways to see what it does now.
type fileCase struct {
	*secureEnv
}

const readersPolicy = `statements:
  - {effect: allow, principals: ["key:alice"], actions: ["koophone:cloudphoneResource:query*"]}
`

func newFileCase(t *testing.T, o secureOpts) fileCase {
	if o.keys == nil {
		o.keys = map[string]string{"alice-key": "alice"}
	}
	if o.policy == "" {
		o.policy = readersPolicy
	}
	if o.clock == nil {
		o.clock = clock.NewFake(time.Now())
	}
	return fileCase{newSecureEnv(t, o)}
}

// list calls ListInstances with key on both transports: the gRPC code and the HTTP status.
func (c fileCase) list(key string) (codes.Code, int) {
	_, err := pb.NewInstanceServiceClient(c.dial()).ListInstances(c.bearer(key), &pb.ListInstancesRequest{PageNo: 1, PageSize: 10})
	code, _ := c.rest(c.httpClient(), http.MethodGet, listPath, "", key)
	return status.Code(err), code
}

func (c fileCase) wantList(what, key string, grpcWant codes.Code, httpWant int) {
	c.t.Helper()
	if g, h := c.list(key); g != grpcWant || h != httpWant {
		c.t.Errorf("%s: gRPC %v, REST %d; want %v, %d", what, g, h, grpcWant, httpWant)
	}
}

// health is the gRPC health status of the whole server.
func (c fileCase) health() healthpb.HealthCheckResponse_ServingStatus {
	res, err := healthpb.NewHealthClient(c.dial()).Check(c.bearer(""), &healthpb.HealthCheckRequest{})
	if err != nil {
		c.t.Fatal(err)
	}
	return res.GetStatus()
}

// metric returns the text of /metrics lines starting with prefix.
func (c fileCase) metric(prefix string) string {
	_, body := c.rest(c.httpClient(), http.MethodGet, "/metrics", "", "")
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (c fileCase) path(name string) string { return filepath.Join(c.dir, name) }

// Finding 5: revocation holds. Each case rewrites, breaks or mends a credential file under a running gateway and
// checks what callers get on both transports.
func TestCredentialFilesFailClosed(t *testing.T) {
	t.Run("empty keys file lets no key in", func(t *testing.T) {
		c := newFileCase(t, secureOpts{})
		c.wantList("before", "alice-key", codes.OK, http.StatusOK)
		authtest.WriteFile(t, c.dir, "keys.yaml", []byte("keys: []\n"))
		c.edited()
		c.wantList("keys: []", "alice-key", codes.Unauthenticated, http.StatusUnauthorized)
		if code, body := c.rest(c.httpClient(), http.MethodGet, "/readyz", "", ""); code != http.StatusOK {
			t.Errorf("readyz with keys: []: %d %s", code, body)
		}
	})
	t.Run("empty policy denies all", func(t *testing.T) {
		c := newFileCase(t, secureOpts{})
		authtest.WriteFile(t, c.dir, "policy.yaml", []byte("statements: []\n"))
		c.edited()
		c.wantList("statements: []", "alice-key", codes.PermissionDenied, http.StatusForbidden)
	})
	t.Run("deleted keys file refuses every call until restored", func(t *testing.T) {
		c := newFileCase(t, secureOpts{})
		good, err := os.ReadFile(c.path("keys.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(c.path("keys.yaml")); err != nil {
			t.Fatal(err)
		}
		c.edited()
		c.wantList("keys file deleted", "alice-key", codes.Unavailable, http.StatusServiceUnavailable)
		if code, body := c.rest(c.httpClient(), http.MethodGet, "/readyz", "", ""); code != http.StatusServiceUnavailable ||
			!strings.Contains(body, "API keys file unusable") || strings.Contains(body, c.dir) {
			t.Errorf("readyz: %d %q", code, body)
		}
		if st := c.health(); st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health %v, want NOT_SERVING", st)
		}
		if m := c.metric(`koophone_auth_file_ok{file="keys"}`); m != `koophone_auth_file_ok{file="keys"} 0` {
			t.Errorf("metric: %q", m)
		}
		if n := strings.Count(c.log.String(), "refusing every call until the file is fixed"); n != 1 {
			t.Errorf("%d ERROR lines about the keys file, want 1", n)
		}
		authtest.WriteFile(t, c.dir, "keys.yaml", good)
		c.edited()
		c.wantList("keys file restored", "alice-key", codes.OK, http.StatusOK)
		if st := c.health(); st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %v after the fix, want SERVING", st)
		}
	})
	t.Run("deleted policy turns readiness off with no call", func(t *testing.T) {
		c := newFileCase(t, secureOpts{})
		if err := os.Remove(c.path("policy.yaml")); err != nil {
			t.Fatal(err)
		}
		// No call and no /readyz: the periodic look at the files must see it.
		deadline := time.Now().Add(3 * auth.HashCheckEvery)
		for c.health() != healthpb.HealthCheckResponse_NOT_SERVING {
			if time.Now().After(deadline) {
				t.Fatalf("still %v %v after the policy was deleted", c.health(), 3*auth.HashCheckEvery)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.wantList("policy deleted", "alice-key", codes.Unavailable, http.StatusServiceUnavailable)
	})
	t.Run("world-writable keys file is refused", func(t *testing.T) {
		c := newFileCase(t, secureOpts{})
		if err := os.Chmod(c.path("keys.yaml"), 0o666); err != nil {
			t.Fatal(err)
		}
		c.edited()
		c.wantList("keys file mode 0666", "alice-key", codes.Unavailable, http.StatusServiceUnavailable)
		if !strings.Contains(c.log.String(), "writable by group or others") {
			t.Error("no log line says why")
		}
	})
	t.Run("half-written keys file accepts no revoked key", func(t *testing.T) {
		c := newFileCase(t, secureOpts{keys: map[string]string{"alice-key": "alice", "old-key": "alice"}})
		c.wantList("before", "old-key", codes.OK, http.StatusOK)
		next := keysDoc(map[string]string{"alice-key": "alice"})
		if err := os.WriteFile(c.path("keys.yaml"), []byte(next[:len(next)-20]), 0o600); err != nil { // in place, cut short
			t.Fatal(err)
		}
		c.edited()
		if g, h := c.list("old-key"); g == codes.OK || h == http.StatusOK {
			t.Errorf("the revoked key worked while the file was half written: %v %d", g, h)
		}
	})
	t.Run("edit keeping size and mtime is reloaded", func(t *testing.T) {
		c := newFileCase(t, secureOpts{keys: map[string]string{"key-one": "alice"}})
		fi, err := os.Stat(c.path("keys.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// What cp -p or rsync -t does: new content of the same size, the old modification time.
		if err := os.WriteFile(c.path("keys.yaml"), []byte(keysDoc(map[string]string{"key-two": "alice"})), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(c.path("keys.yaml"), fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		c.edited()
		c.wantList("the replaced key", "key-one", codes.Unauthenticated, http.StatusUnauthorized)
		c.wantList("the new key", "key-two", codes.OK, http.StatusOK)
	})
	t.Run("unknown and expired keys look alike to the caller", func(t *testing.T) {
		c := newFileCase(t, secureOpts{})
		authtest.WriteFile(t, c.dir, "keys.yaml", []byte(keysDoc(map[string]string{"alice-key": "alice"})+
			"  - {principal: ci-bot, sha256: "+auth.HashKey("ci-key")+", expires: 2020-01-01T00:00:00Z}\n"))
		c.edited()
		msg := func(key string) (string, string) {
			_, err := pb.NewInstanceServiceClient(c.dial()).ListInstances(c.bearer(key), &pb.ListInstancesRequest{PageNo: 1, PageSize: 10})
			_, body := c.rest(c.httpClient(), http.MethodGet, listPath, "", key)
			return status.Convert(err).Message(), body
		}
		eg, er := msg("ci-key")
		ug, ur := msg("no-such-key")
		if eg != ug || er != ur || !strings.Contains(eg, "unknown or expired") {
			t.Errorf("expired key: %q %q; unknown key: %q %q", eg, er, ug, ur)
		}
		logs := c.log.String()
		if !strings.Contains(logs, "auth.refused=expired_key auth.key_owner=key:ci-bot") || !strings.Contains(logs, "auth.refused=unknown_key") {
			t.Errorf("the call log does not tell them apart:\n%s", logs)
		}
	})
	t.Run("certificate alice is not key alice", func(t *testing.T) {
		c := newFileCase(t, secureOpts{mtls: true})
		c.wantList("key alice", "alice-key", codes.OK, http.StatusOK)
		cert := c.ca.Client(t, "alice").TLS(t)
		_, err := pb.NewInstanceServiceClient(c.dial(cert)).ListInstances(c.bearer(""), &pb.ListInstancesRequest{PageNo: 1, PageSize: 10})
		if info := denial(err); info == nil || info.GetMetadata()["principal"] != "cert:alice" {
			t.Errorf("gRPC with certificate alice: %v, want ACTION_DENIED for cert:alice", err)
		}
		code, res := c.rest(c.httpClient(cert), http.MethodGet, listPath, "", "")
		if _, meta := restErrorInfo(t, res); code != http.StatusForbidden || meta["principal"] != "cert:alice" {
			t.Errorf("REST with certificate alice: %d %s", code, res)
		}
	})
}

// While the client CA file is deleted no certificate is accepted, API keys still are, and readiness is off.
func TestDeletedClientCAFailsClosed(t *testing.T) {
	c := newFileCase(t, secureOpts{mtls: true, policy: `statements:
  - {effect: allow, principals: ["key:alice", "cert:svc"], actions: ["koophone:cloudphoneResource:query*"]}
`})
	cert := c.ca.Client(t, "svc").TLS(t)
	if _, err := pb.NewInstanceServiceClient(c.dial(cert)).ListInstances(c.bearer(""), &pb.ListInstancesRequest{PageNo: 1, PageSize: 10}); err != nil {
		t.Fatalf("certificate before: %v", err)
	}
	if err := os.Remove(c.path("ca.crt")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := pb.NewInstanceServiceClient(c.dial(cert)).ListInstances(ctx, &pb.ListInstancesRequest{PageNo: 1, PageSize: 10}); err == nil {
		t.Error("a certificate was accepted with the client CA file deleted")
	}
	c.wantList("API key with the client CA deleted", "alice-key", codes.OK, http.StatusOK)
	if code, body := c.rest(c.httpClient(), http.MethodGet, "/readyz", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "client CA") {
		t.Errorf("readyz: %d %q", code, body)
	}
}
