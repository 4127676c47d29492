package examples

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/server/servertest"
)

// goEnv is the environment for `go` commands run by the tests: the local toolchain only, and a module outside
// this repository sees no go.work of ours.
func goEnv(extra ...string) []string {
	return append(os.Environ(), append([]string{"GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-mod=mod"}, extra...)...)
}

func runGo(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, goEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// A Go program outside the repository, in a module of its own with a go 1.23 line, uses the client module alone:
// `go mod tidy` keeps its go line and pulls nothing of the server's (protovalidate, grpc-gateway, the server module);
// the program lists phones, follows a command to its end, reads an error's reason and opens a session.
func TestGoClientFromAModuleOfItsOwn(t *testing.T) {
	clientDir, err := filepath.Abs("../client/go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, err := os.ReadFile("go/main.go")
	if err != nil {
		t.Fatal(err)
	}
	gomod := "module example.com/consumer\n\ngo 1.23\n\n" +
		"require github.com/koophone-gateway/koophone-gateway/client/go v0.0.0\n\n" +
		"replace github.com/koophone-gateway/koophone-gateway/client/go => " + clientDir + "\n"
	for name, body := range map[string][]byte{"go.mod": []byte(gomod), "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runGo(t, dir, "mod", "tidy")
	tidied, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	t.Logf("go.mod after tidy:\n%s", tidied)
	if !regexp.MustCompile(`(?m)^go 1\.23$`).Match(tidied) || bytes.Contains(tidied, []byte("toolchain")) {
		t.Fatalf("go mod tidy changed the consumer's go line:\n%s", tidied)
	}
	all := runGo(t, dir, "list", "-m", "all")
	for _, banned := range []string{"protovalidate", "grpc-gateway", "github.com/koophone-gateway/koophone-gateway "} {
		if strings.Contains(all+"\n", banned) {
			t.Fatalf("the consumer's module graph holds %q:\n%s", banned, all)
		}
	}
	runGo(t, dir, "build", "-o", "consumer", ".")

	srv := servertest.Start(t, servertest.Fast...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "consumer"), srv.GRPCAddr()).CombinedOutput()
	t.Logf("output:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	expectInOrder(t, lines, common)
	expectInOrder(t, lines, []string{`^session: end OK$`})
}

// The fleet-command examples (on the client module too) print one line per phone and the same summary.
func TestFleetCommandExamples(t *testing.T) {
	srv := servertest.Start(t, servertest.Fast...)
	bin := t.TempDir()
	runGo(t, ".", "build", "-o", bin+"/", "./fleet-command/with-fleet-rpc", "./fleet-command/without-fleet-rpc")
	for _, name := range []string{"with-fleet-rpc", "without-fleet-rpc"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, filepath.Join(bin, name), "-addr", srv.GRPCAddr()).CombinedOutput()
		cancel()
		t.Logf("%s:\n%s", name, out)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := len(regexp.MustCompile(`(?m)^\w{8}\t\S*SUCCEEDED\t`).FindAll(out, -1)); n != 20 || !bytes.Contains(out, []byte("done: 20 succeeded, 0 failed")) {
			t.Fatalf("%s: %d phones succeeded, want 20 and the summary", name, n)
		}
	}
}
