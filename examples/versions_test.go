package examples

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/server/servertest"
)

// repoVersion is the repository's VERSION: the version of the contract and of every package.
func repoVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// What the built programs and a running gateway show is VERSION: the gateway's and koophonectl's --version, the
// koophone_build_info metric and the Python wheel's name. (The files that state it, the Go client's constant among
// them, are held equal by TestVersionsAgree in the repository's root; the Python and TypeScript packages print
// theirs in TestExamples and TestTypeScriptFromAProjectOfItsOwn; service.version is checked on exported spans by
// internal/server's checkRESTTrace.)
func TestProgramsShowTheOneVersion(t *testing.T) {
	v := repoVersion(t)
	quoted := regexp.QuoteMeta(v)

	bin := t.TempDir()
	runGo(t, "..", "build", "-o", bin+"/", "./cmd/server")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "server"), "--version").CombinedOutput()
	if err != nil || !regexp.MustCompile(`^koophone-gateway `+quoted+` \(go\S+, revision \S+\)\n$`).Match(out) {
		t.Errorf("server --version: %v %q, want version %s", err, out, v)
	}

	c := cli{bin: buildCLI(t), home: t.TempDir()}
	if r := c.run(t, "--version"); r.code != 0 || !regexp.MustCompile(`^koophonectl `+quoted+` \(go\S+\)\n$`).MatchString(r.stdout) {
		t.Errorf("koophonectl --version: %+v, want version %s", r, v)
	}

	srv := servertest.Start(t)
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !regexp.MustCompile(`(?m)^koophone_build_info\{(?:[^}]*,)?version="` + quoted + `"[^}]*\} 1$`).Match(metrics) {
		line := regexp.MustCompile(`(?m)^koophone_build_info.*$`).Find(metrics)
		t.Errorf("/metrics: build_info %q, want version %s", line, v)
	}

	// The wheel's name carries the package's version (make python-wheel builds it; make test does).
	wheels, _ := filepath.Glob("../clients/python/dist/koophone_gateway-*-py3-none-any.whl")
	if len(wheels) != 1 {
		t.Fatalf("want one wheel in clients/python/dist, found %q: run `make python-wheel` (make test does)", wheels)
	}
	if name := filepath.Base(wheels[0]); name != "koophone_gateway-"+v+"-py3-none-any.whl" {
		t.Errorf("wheel %s, want version %s", name, v)
	}
}
