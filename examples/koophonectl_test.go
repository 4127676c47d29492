package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/server/servertest"
)

// cli runs the built koophonectl and returns what it printed and its exit code.
type cli struct {
	bin, home string
	env       []string
}

type result struct {
	stdout, stderr string
	code           int
}

func (c cli) run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	// A clean environment: no KOOPHONE_* of the developer's, no config file of theirs.
	cmd.Env = append([]string{"HOME=" + c.home, "PATH=" + os.Getenv("PATH")}, c.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("koophonectl %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("koophonectl %s -> exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return result{stdout.String(), stderr.String(), code}
}

func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "koophonectl")
	runGo(t, "../client/go", "build", "-o", bin, "./cmd/koophonectl")
	return bin
}

// koophonectl against the gateway on the simulator: tables and JSON, a fleet reboot with a progress bar and a line
// per phone, a task watched to its end, a session, and errors with their exit codes and reasons.
func TestKoophonectl(t *testing.T) {
	srv := servertest.Start(t, servertest.Fast...)
	c := cli{bin: buildCLI(t), home: t.TempDir(), env: []string{"KOOPHONE_ADDR=" + srv.GRPCAddr()}}

	// A table by default.
	r := c.run(t, "instance", "list-instances", "--page-no", "1", "--page-size", "5")
	if r.code != 0 || !strings.Contains(r.stdout, "total_count: 20") ||
		!regexp.MustCompile(`(?m)^INSTANCE_ID\s+INSTANCE_NAME\s+.*RUNNING_STATUS`).MatchString(r.stdout) {
		t.Fatalf("list as a table: %+v", r)
	}
	rows := regexp.MustCompile(`(?m)^(\w{8})\s+\S+.*\bRUNNING\b`).FindAllStringSubmatch(r.stdout, -1)
	if len(rows) != 5 {
		t.Fatalf("want 5 phones in the table, got %d", len(rows))
	}

	// JSON with -o json; the address from a flag this time, and the RPC's own name as the command.
	c2 := cli{bin: c.bin, home: c.home}
	r = c2.run(t, "-o", "json", "--addr", srv.GRPCAddr(), "InstanceService", "ListInstances", "-d", `{"page_no":1,"page_size":5}`)
	var page struct {
		Result []struct {
			InstanceID string `json:"instance_id"`
		} `json:"result"`
		TotalCount int `json:"total_count"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || r.code != 0 || len(page.Result) != 5 || page.TotalCount != 20 {
		t.Fatalf("list as JSON: %v %+v", err, r)
	}
	ids := []string{page.Result[0].InstanceID, page.Result[1].InstanceID, page.Result[2].InstanceID}

	// A command started, then its task watched to its end.
	r = c.run(t, "-o", "json", "instance", "async-command", "--command", "getprop ro.serialno", "--ids", ids[2])
	var started struct {
		TaskID string `json:"task_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &started); err != nil || started.TaskID == "" ||
		!regexp.MustCompile(`(?m)^request_id: [0-9a-f-]{36}$`).MatchString(r.stderr) {
		t.Fatalf("async-command: %v %+v", err, r)
	}
	r = c.run(t, "instance", "watch-task", "--task-id", started.TaskID)
	if r.code != 0 || !regexp.MustCompile(`(?m)^\S+\s+SUCCEEDED\s+`+ids[2]+`$`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "task "+started.TaskID+": 1 succeeded, 0 failed") {
		t.Fatalf("watch-task: %+v", r)
	}

	// A session: one line per step; the device token is never printed in a table.
	r = c.run(t, "instance", "open-session", "--user-id", "cli-user", "--instance-id", page.Result[3].InstanceID, "--assign")
	if r.code != 0 || !strings.Contains(r.stdout, "prepared: ") || !regexp.MustCompile(`(?m)^session: .*device_token=\(\d+ characters, not shown\)`).MatchString(r.stdout) {
		t.Fatalf("open-session: %+v", r)
	}

	// KooPhone's refusal: PERMISSION_DENIED is exit 17, with the reason on stderr.
	r = c.run(t, "instance", "sync-command", "--command", "ls", "--ids", "nosuch01")
	if r.code != 17 || !strings.Contains(r.stderr, "PERMISSION_DENIED") || !strings.Contains(r.stderr, "reason: KOOPHONE.API.1001 (koophone.myhuaweicloud.com)") ||
		!strings.Contains(r.stderr, "operation: SyncCommand") {
		t.Fatalf("sync-command on an unknown phone: %+v", r)
	}
	// A broken rule: INVALID_ARGUMENT is exit 13, the field named; with -o json the status is JSON on stderr.
	r = c.run(t, "-o", "json", "instance", "sync-command", "--command", "reboot; rm -rf /", "--ids", ids[0])
	var failed struct {
		Error struct {
			Code    int `json:"code"`
			Details []struct {
				FieldViolations []struct{ Field string } `json:"fieldViolations"`
			} `json:"details"`
		} `json:"error"`
	}
	at := strings.Index(r.stderr, "{\"error\"")
	if r.code != 13 || at < 0 || json.Unmarshal([]byte(r.stderr[at:]), &failed) != nil || failed.Error.Code != 3 ||
		len(failed.Error.Details) == 0 || failed.Error.Details[0].FieldViolations[0].Field != "command" {
		t.Fatalf("bad command: %+v", r)
	}

	// A fleet reboot of every phone: a progress bar on stderr, a line per phone and the summary on stdout.
	r = c.run(t, "fleet", "reboot-fleet", "--all", "--progress", "always")
	if r.code != 0 {
		t.Fatalf("reboot-fleet: %+v", r)
	}
	if n := len(regexp.MustCompile(`(?m)^\w{8}\s+SUCCEEDED\b`).FindAllString(r.stdout, -1)); n != 20 {
		t.Fatalf("want 20 per-phone lines, got %d", n)
	}
	if !strings.Contains(r.stdout, "done: 20 phones, 20 succeeded, 0 failed, 0 batches refused") {
		t.Fatal("no summary line")
	}
	if !strings.Contains(r.stderr, "phones") || !strings.Contains(r.stderr, "(20/20)") {
		t.Fatal("no progress bar reaching 20/20 on stderr")
	}
	// Rebooting phones that are still rebooting: KooPhone refuses the batch, each phone says so, and the exit code
	// is 3 (the call ended OK, some phones failed). Without a terminal and without --progress=always, no bar.
	r = c.run(t, "fleet", "reboot-fleet", "--ids", ids[0]+","+ids[1])
	if r.code != 3 || strings.Contains(r.stderr, "(2/2)") || !strings.Contains(r.stdout, "done: 2 phones, 0 succeeded, 2 failed, 1 batches refused") ||
		len(regexp.MustCompile(`(?m)^\w{8}\s+BATCH_FAILED\s+KOOPHONE\.API\.\d+`).FindAllString(r.stdout, -1)) != 2 {
		t.Fatalf("reboot-fleet of rebooting phones: %+v", r)
	}

	// Bad command lines exit 2 and send nothing; so does an unknown enum name.
	for _, args := range [][]string{
		{"instance", "list-instances", "--no-such-flag"},
		{"fleet", "run-fleet-command", "--command", "ls", "--all", "--mode", "SIDEWAYS"},
		{"-o", "yaml", "instance", "list-instances"},
	} {
		if r := c.run(t, args...); r.code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, r.code)
		}
	}
}

// The address and an API key from the config file; the key is refused in plaintext to a non-loopback address.
func TestKoophonectlConfigFile(t *testing.T) {
	srv := servertest.Start(t, servertest.Fast...)
	c := cli{bin: buildCLI(t), home: t.TempDir()}
	cfgDir := filepath.Join(c.home, ".config", "koophonectl")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(body string) {
		if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"addr": "` + srv.GRPCAddr() + `", "api_key": "any-key"}`)
	if r := c.run(t, "order", "batch-show-sku"); r.code != 0 {
		t.Fatalf("with the config file: %+v", r)
	}
	write(`{"addr": "gateway.example:9090", "api_key": "any-key"}`)
	r := c.run(t, "order", "batch-show-sku")
	if r.code != 2 || !strings.Contains(r.stderr, "plaintext") || strings.Contains(r.stderr, "any-key") {
		t.Fatalf("a key in plaintext to a remote host: %+v", r)
	}
	write(`{"adress": "typo"}`)
	if r := c.run(t, "order", "batch-show-sku"); r.code != 2 || !strings.Contains(r.stderr, "adress") {
		t.Fatalf("an unknown key in the config file: %+v", r)
	}
	// The environment wins over the file.
	c.env = []string{"KOOPHONE_ADDR=" + srv.GRPCAddr()}
	write(`{"addr": "127.0.0.1:1"}`)
	if r := c.run(t, "order", "batch-show-sku"); r.code != 0 {
		t.Fatalf("KOOPHONE_ADDR over the file: %+v", r)
	}
	// Help comes from the contract's comments.
	if r := c.run(t, "fleet", "reboot-fleet", "--help"); !strings.Contains(r.stdout, "Reboots every selected phone") ||
		!strings.Contains(r.stdout, "--selector.filter.pool-name") {
		t.Fatalf("help: %+v", r)
	}
	// Shell completion comes with it.
	if r := c.run(t, "completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "koophonectl") {
		t.Fatalf("completion: %+v", r)
	}
	if r := c.run(t, "__complete", "fleet", "run-fleet-command", "--mode", ""); !strings.Contains(r.stdout, "SYNC") {
		t.Fatalf("enum completion: %+v", r)
	}
}

// With --progress left at auto, on a real terminal (a pseudo-terminal as stderr) a task watch, a session and a fleet
// reboot draw their bars to the end while the per-phone lines go to stdout; with stderr a pipe, the same fleet
// reboot draws no bar.
func TestKoophonectlProgressOnATerminal(t *testing.T) {
	srv := servertest.Start(t, servertest.Fast...)
	c := cli{bin: buildCLI(t), home: t.TempDir(), env: []string{"KOOPHONE_ADDR=" + srv.GRPCAddr()}}
	r := c.run(t, "-o", "json", "instance", "list-instances", "--page-no", "1", "--page-size", "20")
	var page struct {
		Result []struct {
			InstanceID string `json:"instance_id"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Result) != 20 {
		t.Fatalf("list: %v %+v", err, r)
	}
	var ids []string
	for _, p := range page.Result {
		ids = append(ids, p.InstanceID)
	}
	// A task watched and a session opened on the terminal: their bars reach the end too.
	r = c.run(t, "-o", "json", "instance", "async-command", "--command", "ls", "--ids", ids[0])
	var started struct {
		TaskID string `json:"task_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &started); err != nil || started.TaskID == "" {
		t.Fatalf("async-command: %v %+v", err, r)
	}
	stdout, shown, code := c.runOnTerminal(t, "instance", "watch-task", "--task-id", started.TaskID)
	// One line for the phone (the command's output folded onto it), then the counts.
	if code != 0 || !strings.Contains(stdout, "task "+started.TaskID+": 1 succeeded, 0 failed") || strings.Count(strings.TrimSpace(stdout), "\n") != 1 ||
		!strings.Contains(shown, "(1/1)") {
		t.Fatalf("watch-task on a terminal: exit %d\nstdout:\n%s\nterminal: %q", code, stdout, shown)
	}
	stdout, shown, code = c.runOnTerminal(t, "instance", "open-session", "--user-id", "tty-user", "--instance-id", ids[1], "--assign")
	if code != 0 || !regexp.MustCompile(`(?m)^session: `).MatchString(stdout) || !regexp.MustCompile(`session\s+100% .*\((\d+)/\d+\)`).MatchString(shown) {
		t.Fatalf("open-session on a terminal: exit %d\nstdout:\n%s\nterminal: %q", code, stdout, shown)
	}

	// Each half of the other phones is rebooted once (a phone still rebooting would refuse a second reboot).
	onTTY, onPipe := strings.Join(ids[2:11], ","), strings.Join(ids[11:], ",")

	stdout, stderr, code := c.runOnTerminal(t, "fleet", "reboot-fleet", "--ids", onTTY)
	if code != 0 {
		t.Fatalf("reboot-fleet on a terminal: exit %d\nstdout:\n%s\nterminal:\n%q", code, stdout, stderr)
	}
	if n := len(regexp.MustCompile(`(?m)^\w{8}\s+SUCCEEDED\b`).FindAllString(stdout, -1)); n != 9 ||
		!strings.Contains(stdout, "done: 9 phones, 9 succeeded, 0 failed, 0 batches refused") {
		t.Fatalf("want 9 per-phone lines and the summary on stdout, got:\n%s", stdout)
	}
	if !strings.Contains(stderr, "phones") || !strings.Contains(stderr, "100%") || !strings.Contains(stderr, "(9/9)") {
		t.Fatalf("no progress bar reaching 9/9 on the terminal: %q", stderr)
	}

	r = c.run(t, "fleet", "reboot-fleet", "--ids", onPipe)
	if r.code != 0 || len(regexp.MustCompile(`(?m)^\w{8}\s+SUCCEEDED\b`).FindAllString(r.stdout, -1)) != 9 {
		t.Fatalf("reboot-fleet into pipes: %+v", r)
	}
	if strings.Contains(r.stderr, "phones") || strings.Contains(r.stderr, "(9/9)") || strings.Contains(r.stderr, "\r") {
		t.Fatalf("a progress bar drawn into a pipe: %q", r.stderr)
	}
}

// runOnTerminal runs koophonectl with stderr on a pseudo-terminal (stdout a pipe, as when its lines are redirected
// to a file) and returns stdout, what the terminal showed and the exit code.
func (c cli) runOnTerminal(t *testing.T, args ...string) (stdout, terminal string, code int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal on this machine: %v", err)
	}
	defer func() { _ = ptmx.Close() }()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append([]string{"HOME=" + c.home, "PATH=" + os.Getenv("PATH"), "TERM=xterm"}, c.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = tty.Close() // the child holds its own copy; the master reads EOF (EIO) once the child's is closed
	// The terminal is read while the command runs, so its buffer never fills and blocks the command.
	var shown bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(&shown, ptmx)
	}()
	err = cmd.Wait()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		_ = ptmx.Close()
		<-read
		t.Errorf("the terminal was still open 10 s after koophonectl exited")
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("koophonectl %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("koophonectl %s (stderr on a terminal) -> exit %d\nstdout:\n%s\nterminal:\n%q", strings.Join(args, " "), code, out.String(), shown.String())
	return out.String(), shown.String(), code
}

// Against a gateway that authenticates callers by API key: the key from the environment, a file named by a flag
// or the config file is accepted; a wrong key and no key exit 26 (UNAUTHENTICATED) with the gateway's reason, and
// the key never shows in what koophonectl prints.
func TestKoophonectlCredentials(t *testing.T) {
	const key, wrong = "kpk_cli_0123456789abcdef", "kpk_nope_0123456789abcdef"
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.yaml")
	keyFile := filepath.Join(dir, "key")
	for name, body := range map[string]string{
		keys:    "keys:\n  - principal: cli\n    sha256: " + auth.HashKey(key) + "\n",
		keyFile: key + "\n",
	} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := servertest.Start(t, "--auth-keys-file="+keys)
	c := cli{bin: buildCLI(t), home: t.TempDir()}
	ok := func(r result, how string) {
		t.Helper()
		if r.code != 0 || strings.Contains(r.stdout+r.stderr, key) {
			t.Fatalf("the key from %s: %+v", how, r)
		}
	}
	c.env = []string{"KOOPHONE_ADDR=" + srv.GRPCAddr(), "KOOPHONE_API_KEY=" + key}
	ok(c.run(t, "order", "batch-show-sku"), "KOOPHONE_API_KEY")
	c.env = []string{"KOOPHONE_ADDR=" + srv.GRPCAddr()}
	ok(c.run(t, "--api-key-file", keyFile, "order", "batch-show-sku"), "--api-key-file")
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"addr": "`+srv.GRPCAddr()+`", "api_key_file": "`+keyFile+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.env = []string{"KOOPHONE_CONFIG=" + cfg}
	ok(c.run(t, "order", "batch-show-sku"), "the config file")

	c.env = []string{"KOOPHONE_ADDR=" + srv.GRPCAddr(), "KOOPHONE_API_KEY=" + wrong}
	if r := c.run(t, "order", "batch-show-sku"); r.code != 26 || !strings.Contains(r.stderr, "UNAUTHENTICATED") ||
		!strings.Contains(r.stderr, "reason: INVALID_CREDENTIALS (koophone-gateway)") || strings.Contains(r.stdout+r.stderr, wrong) {
		t.Fatalf("a wrong key: %+v", r)
	}
	c.env = []string{"KOOPHONE_ADDR=" + srv.GRPCAddr()}
	if r := c.run(t, "order", "batch-show-sku"); r.code != 26 || !strings.Contains(r.stderr, "reason: MISSING_CREDENTIALS (koophone-gateway)") {
		t.Fatalf("no key: %+v", r)
	}
}
