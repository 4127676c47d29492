package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	koophonegateway "github.com/koophone-gateway/koophone-gateway"
	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testsupport.SyncBuffer is a log sink the server writes while the test reads.

// TestRunOnTheEmbeddedSimulator starts the command as `make run` does (no KOOPHONE_ENDPOINT), checks that its first
// log line says it runs on the simulator, that it becomes SERVING, and that it exits 0 when told to stop.
func TestRunOnTheEmbeddedSimulator(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testsupport.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0"}, func(string) string { return "" }, &logs, func() {})
	}()
	addr := regexp.MustCompile(`grpc=(127\.0\.0\.1:\d+)`)
	var grpcAddr string
	for deadline := time.Now().Add(10 * time.Second); grpcAddr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := addr.FindStringSubmatch(logs.String()); m != nil {
			grpcAddr = m[1]
		}
	}
	if grpcAddr == "" {
		t.Fatalf("no serving line in:\n%s", logs.String())
	}
	first := strings.SplitN(logs.String(), "\n", 2)[0]
	if !strings.Contains(first, "simulator") {
		t.Fatalf("first log line does not say it runs on the simulator: %s", first)
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	hc := healthpb.NewHealthClient(conn)
	serving := false
	for deadline := time.Now().Add(10 * time.Second); !serving && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "koophone.v1.InstanceService"})
		serving = err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}
	if !serving {
		t.Fatal("never SERVING")
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d; logs:\n%s", c, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop")
	}
}

func TestBadConfigurationExitsTwo(t *testing.T) {
	var logs testsupport.SyncBuffer
	c := run(context.Background(), []string{"--log-format=xml"}, func(string) string { return "" }, &logs, func() {})
	if c != 2 || !strings.Contains(logs.String(), "--log-format") {
		t.Fatalf("exit %d, output %q", c, logs.String())
	}
}

// Listening on every interface without caller authentication is refused at start, with an error naming the
// settings that fix it.
func TestRefusesOpenGatewayOnTheNetwork(t *testing.T) {
	var logs testsupport.SyncBuffer
	c := run(context.Background(), []string{"--grpc-addr=0.0.0.0:0", "--http-addr=127.0.0.1:0"}, func(string) string { return "" }, &logs, func() {})
	if c != 2 || !strings.Contains(logs.String(), "KOOPHONE_AUTH_KEYS_FILE") || !strings.Contains(logs.String(), "--insecure-no-auth") {
		t.Fatalf("exit %d, output %q", c, logs.String())
	}
}

// KOOPHONE_INSECURE_NO_AUTH=true overrides the refusal and says loudly what it means.
func TestInsecureNoAuthWarns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testsupport.SyncBuffer
	code := make(chan int, 1)
	env := map[string]string{"KOOPHONE_INSECURE_NO_AUTH": "true", "KOOPHONE_AUDIT_LOG": "off"}
	go func() {
		code <- run(ctx, []string{"--grpc-addr=0.0.0.0:0", "--http-addr=127.0.0.1:0"}, func(k string) string { return env[k] }, &logs, func() {})
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "serving") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d: %s", c, logs.String())
	}
	if !regexp.MustCompile(`level=WARN msg="INSECURE: no caller authentication`).MatchString(logs.String()) {
		t.Fatalf("no loud warning in:\n%s", logs.String())
	}
}

// --check-config exits 0 on a configuration the server would start with, and 2 with the reason on one it would
// refuse (the settings' own rules, and the files they name), without ever listening.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	keys := dir + "/keys.yaml"
	if err := os.WriteFile(keys, []byte("keys:\n  - principal: ci\n    sha256: "+strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badKeys := dir + "/bad-keys.yaml"
	if err := os.WriteFile(badKeys, []byte("keys: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Port 1 on every interface: a check that listened would fail (or open it); a check that does not, passes.
	open := []string{"--check-config", "--grpc-addr=0.0.0.0:1", "--http-addr=0.0.0.0:2"}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"valid", open, map[string]string{"KOOPHONE_AUTH_KEYS_FILE": keys}, 0, "configuration OK"},
		{"open gateway", open, nil, 2, "no caller authentication"},
		{"missing keys file", open, map[string]string{"KOOPHONE_AUTH_KEYS_FILE": dir + "/nope.yaml"}, 2, "API keys file"},
		{"empty keys file", open, map[string]string{"KOOPHONE_AUTH_KEYS_FILE": badKeys}, 2, `"keys" is empty`},
		{"missing TLS files", open, map[string]string{"KOOPHONE_AUTH_KEYS_FILE": keys,
			"KOOPHONE_TLS_CERT_FILE": dir + "/tls.crt", "KOOPHONE_TLS_KEY_FILE": dir + "/tls.key"}, 2, "TLS"},
		{"unreadable secret file", open, map[string]string{"KOOPHONE_AUTH_KEYS_FILE": keys,
			"KOOPHONE_ENDPOINT": "https://k.example.com", "KOOPHONE_AK": "a", "KOOPHONE_SK_FILE": dir + "/sk"}, 2, "KOOPHONE_SK_FILE"},
		{"bad redis URL", open, map[string]string{"KOOPHONE_AUTH_KEYS_FILE": keys, "KOOPHONE_REDIS_URL": "mysql://x"}, 2, "KOOPHONE_REDIS_URL"},
		{"bad endpoint", open, map[string]string{"KOOPHONE_AUTH_KEYS_FILE": keys,
			"KOOPHONE_ENDPOINT": "koophone.example.com", "KOOPHONE_AUTH_TOKEN": "t"}, 2, "KOOPHONE_ENDPOINT"},
		{"missing audit directory", open, map[string]string{"KOOPHONE_AUTH_KEYS_FILE": keys, "KOOPHONE_AUDIT_LOG": dir + "/no/audit.log"}, 2, "--audit-log"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs testsupport.SyncBuffer
			c := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &logs, func() {})
			if c != tc.code || !strings.Contains(logs.String(), tc.want) {
				t.Fatalf("exit %d (want %d), output %q (want it to mention %q)", c, tc.code, logs.String(), tc.want)
			}
			if strings.Contains(logs.String(), "serving") {
				t.Fatalf("--check-config served: %q", logs.String())
			}
		})
	}
}

// --version is answered before the configuration is read, with VERSION's version.
func TestVersion(t *testing.T) {
	for args, want := range map[string]bool{
		"--version": true, "-version": true, "--log-format=xml --version": true, "-- --version": false, "--log-level=info": false,
	} {
		if got := wantsVersion(strings.Fields(args)); got != want {
			t.Errorf("wantsVersion(%q) = %v, want %v", args, got, want)
		}
	}
	line := versionLine()
	if !regexp.MustCompile(`^koophone-gateway \d+\.\d+\.\d+ \(go[^,]+, revision \S+\)$`).MatchString(line) ||
		!strings.Contains(line, " "+koophonegateway.Version+" ") {
		t.Errorf("versionLine() = %q", line)
	}
}
