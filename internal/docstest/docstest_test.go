package docstest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

// How the pages' shell blocks are marked, and what this test does with each:
//
//   - ```console: "$ " lines are commands (a trailing backslash continues them), the lines after each are its
//     output. Every command runs, in one shell per block (so a variable set by one is seen by the next), and its
//     output must have the shape shown (see Compare): status line and headers, JSON keys and values such as
//     statuses, codes and error reasons. A command shown without output must succeed.
//   - ```sh (or bash, shell): the block runs as one script that must succeed.
//   - A sh block that only sets KOOPHONE_* variables and starts the server (`[export] VAR=value… go run
//     ./cmd/server`) configures the gateway for the blocks after it in the same section; the test starts that
//     gateway, which must become ready.
//   - Every block runs against a gateway of its own, started as `make run` starts it (the same binary and
//     defaults) on free loopback ports: 127.0.0.1:9090 / localhost:9090 in a command become its gRPC address,
//     127.0.0.1:8080 / localhost:8080 its HTTP address.
//   - A block that cannot run here is listed in skipped below with the reason; a block neither run nor listed, or
//     a listed block that no longer exists, fails the test.
//
// README.md's shell blocks are all examined, and the blocks of docs/*.md that call the gateway with curl or grpcurl.

// skipped are the blocks that cannot run here, by a piece of their first line, with the reason.
var skipped = map[string]string{
	"README.md: make run     #": "`make run` is how this test starts its gateway for every block, and `make test` " +
		"is the suite this test is part of",
	"README.md: make clients && (cd examples/node && npm ci)": "the Node, Python and curl examples are run and " +
		"checked by examples/examples_test.go (TestExamples)",
	"README.md: export KOOPHONE_GRPC_ADDR=0.0.0.0:9090 KOOPHONE_HTTP_ADDR=0.0.0.0:8443": "needs TLS and client-CA " +
		"files under /etc/koophone and listens on every interface; its keys and policy files run in the next block",
	"README.md: # IAM password flow": "calls the real KooPhone and IAM endpoints, which a test may not reach",
	"README.md: OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318": "exports traces to a collector " +
		"(otel-collector) that is not here; tracing is tested by internal/server's trace_test.go",
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const root = "../.."

func TestDocExamples(t *testing.T) {
	grpcurl, err := filepath.Abs(filepath.Join(root, "bin", "grpcurl"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(grpcurl); err != nil {
		t.Fatalf("the examples need grpcurl in ./bin: run `make grpcurl` (make test does) (%v)", err)
	}
	gateway := filepath.Join(t.TempDir(), "koophone-gateway")
	if out, err := exec.Command("go", "build", "-o", gateway, "../../cmd/server").CombinedOutput(); err != nil {
		t.Fatalf("build the gateway: %v\n%s", err, out)
	}
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{filepath.Join(root, "README.md")}, pages...)
	used := map[string]bool{}
	examined := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, page)
		var env []string // the configuration a start block set for its section
		section := ""
		for _, blk := range Blocks(rel, string(b)) {
			if !isShell(blk, rel == "README.md") {
				continue
			}
			examined++
			if blk.Section != section {
				section, env = blk.Section, nil
			}
			if key, reason, ok := skipReason(blk); ok {
				used[key] = true
				t.Run(blk.Name(), func(t *testing.T) { t.Skip("skipped by design: " + reason) })
				continue
			}
			if startEnv, ok := gatewayStart(blk); ok {
				env = startEnv
				t.Run(blk.Name(), func(t *testing.T) { startGateway(t, gateway, env) })
				continue
			}
			blockEnv := env
			t.Run(blk.Name(), func(t *testing.T) {
				gw := startGateway(t, gateway, blockEnv)
				switch blk.Lang {
				case "console":
					runConsole(t, gw, blk)
				default:
					runScript(t, gw, blk)
				}
			})
		}
	}
	if examined == 0 {
		t.Fatal("no shell block found in README.md")
	}
	for key := range skipped {
		if !used[key] {
			t.Errorf("skipped lists %q, but no page has that block any more: remove it", key)
		}
	}
}

// isShell tells whether the test must examine a block: every shell block of the README, and the blocks of other
// pages that call the gateway.
func isShell(b Block, readme bool) bool {
	shell := slices.Contains([]string{"console", "sh", "bash", "shell"}, b.Lang)
	if readme {
		return shell
	}
	return (shell || b.Lang == "") && regexp.MustCompile(`(^|[\s/])(grpc)?curl\s`).MatchString(b.Text)
}

func skipReason(b Block) (key, reason string, ok bool) {
	first, _, _ := strings.Cut(b.Text, "\n")
	for key, reason := range skipped {
		file, piece, _ := strings.Cut(key, ": ")
		if file == b.File && strings.Contains(first, piece) {
			return key, reason, true
		}
	}
	return "", "", false
}

var (
	assignRe = regexp.MustCompile(`^[A-Z][A-Z0-9_]*=\S*$`)
	startRe  = regexp.MustCompile(`^go run \./cmd/server\s*&?$`)
)

// gatewayStart reads a block that only configures and starts the server: its variables, and true.
func gatewayStart(b Block) ([]string, bool) {
	var env []string
	started := false
	for _, line := range strings.Split(b.Text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		for len(fields) > 0 && assignRe.MatchString(fields[0]) {
			env = append(env, fields[0])
			fields = fields[1:]
		}
		switch rest := strings.Join(fields, " "); {
		case rest == "":
		case startRe.MatchString(rest):
			started = true
		default:
			return nil, false
		}
	}
	return env, started
}

// gatewayProc is a gateway this test started.
type gatewayProc struct {
	grpc, http string
}

var servingRe = regexp.MustCompile(`msg=serving grpc=(\S+) http=(\S+)`)

// startGateway runs the gateway binary as `make run` does (its defaults, the embedded simulator) with env added,
// on free loopback ports, waits until it is ready and stops it when the test ends.
func startGateway(t *testing.T, bin string, env []string) gatewayProc {
	t.Helper()
	cmd := exec.Command(bin, "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0")
	cmd.Dir = root // relative paths in a page's variables (docs/auth/…) are the repository's
	cmd.Env = append(cleanEnv(), env...)
	var log testsupport.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Logf("the gateway exited: %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Logf("killed: %v", <-done)
			t.Errorf("the gateway did not stop on SIGTERM within 15s; its log:\n%s", log.String())
		}
	})
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the gateway exited (%v) with %v; its log:\n%s", err, env, log.String())
		default:
		}
		m := servingRe.FindStringSubmatch(log.String())
		if m == nil {
			last = "no \"serving\" log line yet"
			continue
		}
		res, err := http.Get("http://" + m[2] + "/readyz")
		if err != nil {
			last = err.Error()
			continue
		}
		_ = res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return gatewayProc{grpc: m[1], http: m[2]}
		}
		last = "/readyz " + res.Status
	}
	t.Fatalf("the gateway was not ready within 30s (last: %s); its log:\n%s", last, log.String())
	return gatewayProc{}
}

// cleanEnv is the test's environment without the gateway's settings (a developer's KOOPHONE_* or OTEL_* must not
// change what the pages' examples meet), with ./bin first on PATH as the Makefile has it.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KOOPHONE_") || strings.HasPrefix(kv, "OTEL_") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		env = append(env, kv)
	}
	bin, _ := filepath.Abs(filepath.Join(root, "bin"))
	return append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// rewrite points a page's command at the test's gateway.
func rewrite(cmd string, gw gatewayProc) string {
	return strings.NewReplacer(
		"127.0.0.1:9090", gw.grpc, "localhost:9090", gw.grpc,
		"127.0.0.1:8080", gw.http, "localhost:8080", gw.http,
	).Replace(cmd)
}

const marker = "@@docstest"

// runConsole runs a console block's commands in one shell and compares each output with the page's.
func runConsole(t *testing.T, gw gatewayProc, b Block) {
	cmds := ConsoleCommands(b.Text)
	if len(cmds) == 0 {
		t.Fatal("a console block without \"$ \" commands")
	}
	var script strings.Builder
	for i, c := range cmds {
		fmt.Fprintf(&script, "printf '\\n%s %d\\n'\n{\n%s\n} </dev/null 2>&1\nprintf '\\n%s-exit %d %%d\\n' $?\n",
			marker, i, rewrite(c.Cmd, gw), marker, i)
	}
	out := runShell(t, script.String())
	for i, c := range cmds {
		got, code, ok := section(out, i)
		if !ok {
			t.Fatalf("command %d did not finish: %s\nall output:\n%s", i+1, c.Cmd, out)
		}
		failedOK := strings.HasPrefix(c.Output, "ERROR:") // grpcurl exits non-zero on an error it prints
		if code != 0 && !failedOK {
			t.Errorf("$ %s\nexited %d:\n%s", c.Cmd, code, got)
			continue
		}
		if c.Output == "" {
			continue
		}
		if d := Compare(c.Output, got); d != "" {
			t.Errorf("$ %s\n%s\nthe page shows:\n%s\nthe command printed:\n%s", c.Cmd, d, c.Output, got)
		}
	}
}

// section is what command i printed, and its exit status.
func section(out string, i int) (string, int, bool) {
	begin := fmt.Sprintf("\n%s %d\n", marker, i)
	end := fmt.Sprintf("\n%s-exit %d ", marker, i)
	_, rest, ok := strings.Cut(out, begin)
	if !ok {
		return "", 0, false
	}
	body, tail, ok := strings.Cut(rest, end)
	if !ok {
		return "", 0, false
	}
	codeText, _, _ := strings.Cut(tail, "\n")
	code, err := strconv.Atoi(codeText)
	if err != nil {
		return "", 0, false
	}
	return strings.TrimRight(body, "\n"), code, true
}

// runScript runs a sh block as one script that must succeed.
func runScript(t *testing.T, gw gatewayProc, b Block) {
	if strings.Contains(b.Text, "go run ./cmd/server") {
		t.Fatal("a block that starts the server must hold only its variables and `go run ./cmd/server`: " +
			"the calls against it go in a block of their own after it")
	}
	out := runShell(t, "set -euo pipefail\n"+rewrite(b.Text, gw))
	t.Logf("output:\n%s", out)
}

// runShell runs script with bash from the repository root; it fails the test if bash fails.
func runShell(t *testing.T, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	// The block's commands are bash's children: on timeout, end them all (their group), not only bash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = root
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(script, marker) {
		t.Fatalf("the block failed: %v\n%s", err, out)
	}
	if ctx.Err() != nil {
		t.Fatalf("the block ran longer than 2 minutes; it printed:\n%s", out)
	}
	return "\n" + string(out)
}

// testsupport.SyncBuffer is a bytes.Buffer the gateway's output goroutine and the test may use at once.
