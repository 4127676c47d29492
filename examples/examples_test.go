// Package examples runs the Node, Python, TypeScript and curl examples against a gateway started on the embedded
// simulator and checks what they print. `make test` installs what they need (test-deps, npm-deps), generates
// clients/, builds the Python wheel (test-client-python) and compiles the TypeScript examples against the installed
// npm package (test-client-ts) first. The Go and TypeScript packages are also used from projects outside the
// repository (goclient_test.go, tsproject_test.go).
package examples

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/koophone-gateway/koophone-gateway/internal/server/servertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// common are the lines every example prints, in this order (other lines may come between them). Only the end of
// a watch is asserted: whether a "running" message comes first depends on how soon the watch starts.
var common = []string{
	`^list: 20 phones; this page: \w+, \w+, \w+, \w+, \w+$`,
	`^sync: \w+ JOB_STATUS_SUCCEEDED "KooPhone"$`,
	`^async: task [0-9a-f]+$`,
	`^watch: running=0 succeeded=1 failed=0 terminal=true$`,
	`^error: (PERMISSION_DENIED|HTTP 403) reason=KOOPHONE\.API\.1001 domain=koophone\.myhuaweicloud\.com operation=SyncCommand$`,
	`^bad request: (INVALID_ARGUMENT|HTTP 400) command \(command\.charset\): may hold only letters`,
	`^session: prepared \w+ PREPARE_STATUS_\w+ assigned=true$`,
	`^session: progress PROGRESS_STATUS_READY waiting=0$`,
	`^session: ready signalling=\S+ ice_servers=\d+ device_token=\(\d+ characters, not shown\)$`,
}

func TestExamples(t *testing.T) {
	if _, err := os.Stat("../clients/koophone.binpb"); err != nil {
		t.Fatalf("clients/ not generated (%v): run `make clients` (make test does)", err)
	}
	// The Python package's wheel (make python-wheel) and the TypeScript examples compiled against the installed npm
	// package (make test-client-ts).
	wheels, _ := filepath.Glob("../clients/python/dist/koophone_gateway-*-py3-none-any.whl")
	if len(wheels) != 1 {
		t.Fatalf("want one wheel in clients/python/dist, found %q: run `make python-wheel` (make test does)", wheels)
	}
	for _, f := range []string{"typescript/dist/node.js", "typescript/dist/browser-run.js"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v: run `make test-client-ts` (make test does)", err)
		}
	}
	srv := servertest.Start(t, servertest.Fast...)
	// What the packages' examples print beyond the common lines: a gateway's own reason read as a
	// koophone.v1.ErrorReason (a request_id sent again with another request).
	packaged := []string{
		`^gateway error: ALREADY_EXISTS reason=IDEMPOTENCY_KEY_REUSED domain=koophone-gateway outcome_unknown=false$`,
		`^session: end OK$`,
	}
	// Each package says its version first: the repository's VERSION.
	v := regexp.QuoteMeta(repoVersion(t))
	cases := []struct {
		name  string
		cmd   []string
		first string   // the line with its package's version, when the example prints one
		extra []string // lines only this example prints, checked in order after the common ones' positions
		only  []string // when set, the lines checked instead of common and extra (an example that does less)
	}{
		{name: "node", cmd: []string{"node", "node/example.js", srv.GRPCAddr()}, extra: []string{`^session: end OK$`}},
		// The wheel installed into a fresh virtual environment, example.py copied into a scratch project beside it
		// and run there (run.sh).
		{name: "python", cmd: []string{"bash", "python/run.sh", wheels[0], srv.GRPCAddr()}, extra: packaged,
			first: `^package: koophone-gateway ` + v + `$`},
		// The ESM TypeScript package over gRPC with a Connect transport.
		{name: "typescript-node", cmd: []string{"node", "typescript/dist/node.js", srv.GRPCAddr()}, extra: packaged,
			first: `^package: koophone-gateway-client ` + v + `$`},
		// The browser example's code (@connectrpc/connect-web on the REST port's Connect and gRPC-web endpoints,
		// the package's errorOf), under Node; connectweb_test.go runs it in Chromium.
		{name: "typescript-browser", cmd: []string{"node", "typescript/dist/browser-run.js", "http://" + srv.HTTPAddr()},
			only: browserLines("connect")},
		{name: "typescript-browser-grpc-web", cmd: []string{"node", "typescript/dist/browser-run.js", "http://" + srv.HTTPAddr(), "grpc-web"},
			only: browserLines("grpc-web")},
		{name: "curl", cmd: []string{"bash", "curl.sh", "http://" + srv.HTTPAddr()}, extra: []string{
			`^watch: content-type application/x-ndjson$`,
			`^bad body: HTTP 400 instance_idz \(body\.unknown_field\): no such field in this request request_id=\S+$`,
			`^bad query: HTTP 400 query\.page_sise \(query\.unknown_parameter\): `,
			`^wrong verb: HTTP 405 Allow: POST$`,
			`^session: end \(content-type text/event-stream\)$`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each example opens its session on a phone of its own
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, c.cmd[0], c.cmd[1:]...).CombinedOutput()
			t.Logf("%s output:\n%s", c.name, out)
			if err != nil {
				t.Fatalf("%s: %v", strings.Join(c.cmd, " "), err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if c.first != "" {
				expectInOrder(t, lines, []string{c.first})
			}
			if c.only != nil {
				expectInOrder(t, lines, c.only)
				return
			}
			expectInOrder(t, lines, common)
			expectInOrder(t, lines, c.extra)
		})
	}
}

// browserLines are what the browser example prints over protocol: the common lines up to the errors, no session.
func browserLines(protocol string) []string {
	return append(append([]string{`^transport: ` + protocol + `$`}, common[:6]...), `^browser: end OK$`)
}

// expectInOrder fails unless each pattern matches a line, after the line the previous pattern matched.
func expectInOrder(t *testing.T, lines, patterns []string) {
	t.Helper()
	at := 0
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		found := false
		for at < len(lines) {
			at++
			if re.MatchString(lines[at-1]) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no line matching %q (in order)", p)
			return
		}
	}
}
