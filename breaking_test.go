package koophonegateway

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `make breaking` holds the contract to the last release of its series: this repository has no release tag yet, so
// in CI it only says it skipped. Here scripts/breaking.sh runs in a scratch repository holding the contract, tagged
// v0.1.0: it passes on the release itself, fails when a field is renumbered (with buf's words), and skips when
// VERSION starts a new series (0.2.0), where breaking changes may be released.
func TestBreakingScriptAgainstTheLastRelease(t *testing.T) {
	buf, err := filepath.Abs("bin/buf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(buf); err != nil {
		t.Skipf("no buf at %s: run `make tools` (make test does): %v", buf, err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skipf("no git: %v", err)
	}
	dir := t.TempDir()
	// The contract and what checks it: the files, then the directories.
	for _, p := range []string{"buf.yaml", "scripts/breaking.sh"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"proto", "third_party"} {
		if err := os.CopyFS(filepath.Join(dir, p), os.DirFS(p)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(wantOK bool, name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(buf)+string(os.PathListSeparator)+os.Getenv("PATH"),
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "BREAKING_AGAINST=")
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("%s %s: %v (want success %v)\n%s", name, strings.Join(args, " "), err, wantOK, out)
		}
		return string(out)
	}
	setVersion := func(v string) {
		if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) {
		run(true, "git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
	}

	setVersion("0.1.0")
	git("init", "-q")
	git("add", ".")
	git("commit", "-qm", "release")
	if out := run(true, "bash", "scripts/breaking.sh"); !strings.Contains(out, "skipped: no release tag") {
		t.Fatalf("without a tag: %s", out)
	}
	git("tag", "-a", "v0.1.0", "-m", "koophone-gateway 0.1.0")
	if out := run(true, "bash", "scripts/breaking.sh"); !strings.Contains(out, "against release v0.1.0") {
		t.Fatalf("on the release: %s", out)
	}

	// A patch that renumbers a field breaks the contract: refused.
	setVersion("0.1.1")
	file := filepath.Join(dir, "proto/koophone/v1/instance_service.proto")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	const field = "int32 page_no = 1"
	if !strings.Contains(string(src), field) {
		t.Fatalf("instance_service.proto no longer has %q: pick another field for this test", field)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(src), field, "int32 page_no = 99", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(false, "bash", "scripts/breaking.sh"); !strings.Contains(out, "against release v0.1.0") || !strings.Contains(out, "page_no") {
		t.Fatalf("a renumbered field in 0.1.1: %s", out)
	}
	// The same change in 0.2.0, which starts a new series: allowed, and said so.
	setVersion("0.2.0")
	if out := run(true, "bash", "scripts/breaking.sh"); !strings.Contains(out, "starts a new series") {
		t.Fatalf("0.2.0: %s", out)
	}
}
