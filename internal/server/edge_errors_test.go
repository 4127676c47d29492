package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Every answer the HTTP edge gives itself, before or instead of a gRPC call, has the mirror's one error shape
// ({"error": google.rpc.Status}), a reason a program can branch on (ErrorInfo's koophone.v1.ErrorReason, or the
// BadRequest rule of an unreadable body), no empty ErrorInfo metadata value, and an X-Request-Id: the caller's when
// valid, else a new one.
func TestEdgeAnswersCarryErrorShapeAndRequestID(t *testing.T) {
	e := newSecureEnv(t, secureOpts{args: []string{"--http-allowed-hosts=127.0.0.1", "--http-max-body-bytes=1000",
		"--http-body-timeout=300ms"}})
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	type answer struct {
		status int
		id     string
		body   string
	}
	do := func(method, path, body string, header ...string) answer {
		req, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
			if header[i] == "Host" {
				req.Host = header[i+1]
			}
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		b, _ := io.ReadAll(res.Body)
		return answer{res.StatusCode, res.Header.Get("X-Request-Id"), string(b)}
	}
	slowBody := func(id string) answer {
		c, err := net.Dial("tcp", e.srv.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		if _, err := fmt.Fprintf(c, "POST /v1/instances/sync-command HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"+
			"X-Request-Id: %s\r\nContent-Length: 100\r\n\r\n{\"comm", id); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second)) // only keeps a broken server from hanging the test
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		b, _ := io.ReadAll(res.Body)
		return answer{res.StatusCode, res.Header.Get("X-Request-Id"), string(b)}
	}
	jsonCT := []string{"Content-Type", "application/json"}
	cases := []struct {
		name       string
		call       func(id string) answer
		wantStatus int
		wantReason string // ErrorInfo reason, or BadRequest rule
	}{
		{"form body (curl -d)", func(id string) answer {
			return do("POST", "/v1/instances/sync-command", `{"command":"id"}`, "X-Request-Id", id, "Content-Type", "application/x-www-form-urlencoded")
		}, 415, "HTTP_UNSUPPORTED_MEDIA_TYPE"},
		{"too large", func(id string) answer {
			return do("POST", "/v1/instances/sync-command", `{"command":"`+strings.Repeat("a", 2000)+`"}`, append(jsonCT, "X-Request-Id", id)...)
		}, 413, "HTTP_BODY_TOO_LARGE"},
		{"cross origin", func(id string) answer {
			return do("POST", "/v1/instances/sync-command", `{"command":"id"}`, append(jsonCT, "X-Request-Id", id, "Origin", "http://evil.example")...)
		}, 403, "CROSS_ORIGIN_REFUSED"},
		{"wrong host", func(id string) answer {
			return do("GET", listPath, "", "X-Request-Id", id, "Host", "evil.example")
		}, 421, "HTTP_HOST_NOT_SERVED"},
		{"wrong verb", func(id string) answer { return do("DELETE", "/v1/instances/sync-command", "", "X-Request-Id", id) },
			405, "HTTP_METHOD_NOT_ALLOWED"},
		{"unknown path", func(id string) answer { return do("GET", "/v1/nowhere", "", "X-Request-Id", id) },
			404, "HTTP_PATH_NOT_FOUND"},
		{"slow body", slowBody, 400, "body.timeout"},
	}
	for _, c := range cases {
		for _, id := range []string{"edge-caller-1", "not a valid id"} {
			a := c.call(id)
			var body struct {
				Error struct {
					Code    int
					Message string
					Details []struct {
						Type            string `json:"@type"`
						Reason          string
						Domain          string
						Metadata        map[string]string
						FieldViolations []struct{ Reason string } `json:"field_violations"`
					}
				}
			}
			if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Error.Code == 0 || body.Error.Message == "" || len(body.Error.Details) != 1 {
				t.Errorf("%s: not the one error shape with one detail: %d %s", c.name, a.status, a.body)
				continue
			}
			d := body.Error.Details[0]
			reason := d.Reason
			if len(d.FieldViolations) == 1 {
				reason = d.FieldViolations[0].Reason
			} else if d.Domain != "koophone-gateway" {
				t.Errorf("%s: ErrorInfo domain %q", c.name, d.Domain)
			}
			for k, v := range d.Metadata { // see checkErrorInfos: "" would read as an answer KooPhone never gave
				if v == "" {
					t.Errorf("%s: ErrorInfo %s has an empty %q: %v", c.name, d.Reason, k, d.Metadata)
				}
			}
			if a.status != c.wantStatus || reason != c.wantReason {
				t.Errorf("%s: %d %s, want %d %s: %s", c.name, a.status, reason, c.wantStatus, c.wantReason, a.body)
			}
			if id == "edge-caller-1" && a.id != id || id != "edge-caller-1" && !uuid.MatchString(a.id) {
				t.Errorf("%s: sent X-Request-Id %q, answered %q", c.name, id, a.id)
			}
		}
	}
	if n := e.sim.Calls("SyncCommand"); n != 0 {
		t.Errorf("%d refused calls reached KooPhone", n)
	}
}
