package server

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth"
)

// The call log names each call's principal and, for REST calls, the real client address (not the mirror's
// loopback hop); every write gets one audit line (allowed or denied) with principal, actions, phones, request id
// and outcome; and no key, key hash or forwarded secret shows in any line, even at debug level.
func TestLogsNameTheCallerAndHoldNoSecret(t *testing.T) {
	const opsKey, readerKey, wrongKey = "ops-key-Zq8wX1", "reader-key-Pp3vN7", "wrong-key-Hh5tR2"
	e := newSecureEnv(t, secureOpts{
		keys: map[string]string{opsKey: "alice:operators", readerKey: "bob"},
		policy: `statements:
  - {effect: allow, groups: [operators], actions: ["koophone:*"]}
  - {effect: allow, principals: ["key:bob"], actions: ["koophone:cloudphoneResource:query*"]}
`,
	})
	phone := e.sim.InstanceIDs()[0]
	inst := pb.NewInstanceServiceClient(e.dial())
	if _, err := inst.BatchReset(e.bearer(opsKey), &pb.BatchResetRequest{InstanceIds: []string{phone}}); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.BatchReset(e.bearer(readerKey), &pb.BatchResetRequest{InstanceIds: []string{phone}}); denial(err) == nil {
		t.Fatalf("bob's reset: %v", err)
	}
	_, _ = inst.ListInstances(e.bearer(wrongKey), &pb.ListInstancesRequest{PageNo: 1, PageSize: 10})
	if code, res := e.rest(http.DefaultClient, http.MethodPost, "/v1/instances/batch-reset", `{"instance_ids":["`+phone+`"]}`, opsKey,
		"X-Request-Id", "audit-rest-1"); code != http.StatusOK {
		t.Fatalf("REST reset: %d %s", code, res)
	}
	if code, _ := e.rest(http.DefaultClient, http.MethodGet, listPath, "", wrongKey); code != http.StatusUnauthorized {
		t.Fatalf("REST with a wrong key: %d", code)
	}

	logs, audit := e.log.String(), e.audit()
	for _, secret := range []string{opsKey, readerKey, wrongKey, auth.HashKey(opsKey), auth.HashKey(readerKey), auth.HashKey(wrongKey)} {
		for name, text := range map[string]string{"call log": logs, "audit log": audit} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds a key or its hash (%.8s…)", name, secret)
			}
		}
	}
	// The mirror's secret is 64 hex digits; nothing of that shape may show.
	if m := regexp.MustCompile(`[0-9a-f]{64}`).FindString(logs + audit); m != "" {
		t.Errorf("a 64-hex secret shows in the logs: %.8s…", m)
	}

	var restLine string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "BatchReset") && strings.Contains(line, "audit-rest-1") && strings.Contains(line, "finished call") {
			restLine = line
		}
	}
	if !strings.Contains(restLine, "principal=key:alice") || !strings.Contains(restLine, "client.address=127.0.0.1:") {
		t.Errorf("REST call log line lacks the principal or the client address: %q", restLine)
	}

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(audit), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line is not JSON: %q", l)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 { // two allowed resets, one denied; reads and unauthenticated calls are not audited
		t.Fatalf("%d audit lines, want 3:\n%s", len(lines), audit)
	}
	want := []struct{ principal, outcome string }{{"key:alice", "OK"}, {"key:bob", "PermissionDenied"}, {"key:alice", "OK"}}
	for i, w := range want {
		l := lines[i]
		ids, _ := l["instance_ids"].([]any)
		if l["principal"] != w.principal || l["outcome"] != w.outcome || l["rpc"] != "BatchReset" || len(ids) != 1 || ids[0] != phone ||
			l["request_id"] == "" || !strings.Contains(strings.Join(toStrings(l["actions"]), ","), auth.ActionReset) {
			t.Errorf("audit line %d: %v, want principal %s outcome %s", i, l, w.principal, w.outcome)
		}
	}
	if lines[2]["request_id"] != "audit-rest-1" || !strings.HasPrefix(lines[2]["client.address"].(string), "127.0.0.1:") {
		t.Errorf("REST audit line: %v", lines[2])
	}
}

func toStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
