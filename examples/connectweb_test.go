package examples

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/server/servertest"
)

// pageReport is what tools/npm/page-check.js prints: the page's window.report (page.ts: the lines browser.ts
// printed, and the error it ended with, if any) and the console's errors.
type pageReport struct {
	Report struct {
		Lines []string
		Error string
	}
	ConsoleErrors []string
}

// openPage loads page.html?gateway=…&protocol=…[&key=…] from pageURL in headless Chromium and returns its report.
func openPage(t *testing.T, pageURL, gateway, protocol, key string) pageReport {
	t.Helper()
	node, env := nodeEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	q := url.Values{"gateway": {gateway}, "protocol": {protocol}}
	if key != "" {
		q.Set("key", key)
	}
	u := pageURL + "/page.html?" + q.Encode()
	cmd := exec.CommandContext(ctx, node, "../tools/npm/page-check.js", u)
	cmd.Env, cmd.Stderr = env, os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("page-check %s: %v (run `make npm-deps test-deps`)\n%s", u, err, out)
	}
	var r pageReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	t.Logf("%s: %+v", protocol, r)
	return r
}

// servePage serves examples/typescript's page.html and its esbuild bundle on a loopback origin of its own.
func servePage(t *testing.T) *httptest.Server {
	t.Helper()
	if _, err := os.Stat("typescript/dist/page.bundle.js"); err != nil {
		t.Fatalf("%v: run `make test-client-ts` (make test does)", err)
	}
	files := http.FileServer(http.Dir("typescript"))
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page.html", "/dist/page.bundle.js":
			files.ServeHTTP(w, r)
		case "/favicon.ico":
			w.WriteHeader(http.StatusNoContent) // asked for by Chromium; a 404 would be a console error
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(page.Close)
	return page
}

// The browser example, bundled with esbuild, runs in Debian's headless Chromium from a page on another origin than
// the gateway's (listed in --cors-origins, so CORS is real): over the Connect protocol and over gRPC-web it lists
// phones, follows a command's WatchTask to its terminal message and reads errors' reasons and field violations. A
// page from an origin not listed gets nothing.
func TestBrowserExampleInChromium(t *testing.T) {
	page, stranger := servePage(t), servePage(t)
	srv := servertest.Start(t, append(servertest.Fast, "--cors-origins="+page.URL)...)
	gateway := "http://" + srv.HTTPAddr()

	// Chromium logs each 4xx answer as "Failed to load resource"; the example provokes two on purpose.
	expected := regexp.MustCompile(`^Failed to load resource: the server responded with a status of 40[03] `)
	for _, protocol := range []string{"connect", "grpc-web"} {
		r := openPage(t, page.URL, gateway, protocol, "")
		if r.Report.Error != "" {
			t.Errorf("%s: the page failed: %s", protocol, r.Report.Error)
		}
		expectInOrder(t, r.Report.Lines, browserLines(protocol)[:len(browserLines(protocol))-1])
		for _, e := range r.ConsoleErrors {
			if !expected.MatchString(e) {
				t.Errorf("%s: console error %q", protocol, e)
			}
		}
	}

	r := openPage(t, stranger.URL, gateway, "connect", "")
	if r.Report.Error == "" || len(r.Report.Lines) != 1 {
		t.Errorf("a page from an origin not in --cors-origins: lines %q, error %q; want only the transport line and an error", r.Report.Lines, r.Report.Error)
	}
}

// With API keys on, the page's key travels as Authorization across origins (the CORS preflight allows it) and
// the calls are the key's principal's; without it the first call is refused with the reason.
func TestBrowserExampleWithAnAPIKeyInChromium(t *testing.T) {
	page := servePage(t)
	keys := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(keys, []byte("keys:\n  - principal: page\n    sha256: "+auth.HashKey("page-key")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, append(servertest.Fast, "--cors-origins="+page.URL, "--auth-keys-file="+keys)...)
	gateway := "http://" + srv.HTTPAddr()

	r := openPage(t, page.URL, gateway, "connect", "page-key")
	if r.Report.Error != "" {
		t.Errorf("with the key: the page failed: %s", r.Report.Error)
	}
	expectInOrder(t, r.Report.Lines, browserLines("connect")[:len(browserLines("connect"))-1])

	r = openPage(t, page.URL, gateway, "grpc-web", "")
	if !strings.Contains(r.Report.Error, "[unauthenticated]") || len(r.Report.Lines) != 1 {
		t.Errorf("without a key: lines %q, error %q; want the transport line and UNAUTHENTICATED", r.Report.Lines, r.Report.Error)
	}
}
