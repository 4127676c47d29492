package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/service"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != "127.0.0.1:9090" || c.HTTPAddr != "127.0.0.1:8080" || !c.Simulated() ||
		c.ShutdownGrace != 10*time.Second || c.SimFleet != 20 || c.WatchFirstInterval != 500*time.Millisecond {
		t.Fatalf("defaults: %+v", c)
	}
}

// The one default the table cannot take from its package: internal/service carries the contract, which config must
// not link (cmd/loadbench links config beside the public client's own copy of koophone/v1; two copies panic at
// start). This test keeps the two from drifting.
func TestDefaultsTheTableCannotImport(t *testing.T) {
	c, err := Load(nil, env(nil), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.WatchStepTimeout != service.DefaultStepTimeout {
		t.Errorf("--watch-step-timeout defaults to %v, internal/service to %v", c.WatchStepTimeout, service.DefaultStepTimeout)
	}
}

func TestFlagBeatsEnvBeatsDefault(t *testing.T) {
	c, err := Load([]string{"--grpc-addr=:7000"}, env(map[string]string{
		"KOOPHONE_GRPC_ADDR": ":6000", "KOOPHONE_HTTP_ADDR": ":6001", "KOOPHONE_INSECURE_NO_AUTH": "true",
	}), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != ":7000" || c.HTTPAddr != ":6001" {
		t.Fatalf("grpc %s http %s", c.GRPCAddr, c.HTTPAddr)
	}
}

func TestCredentialsFromEnvAndFiles(t *testing.T) {
	dir := t.TempDir()
	skFile := filepath.Join(dir, "sk")
	if err := os.WriteFile(skFile, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(nil, env(map[string]string{
		"KOOPHONE_ENDPOINT": "https://koophone.example.com", "KOOPHONE_AK": "AK1", "KOOPHONE_SK_FILE": skFile,
	}), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.AK != "AK1" || c.SK != "file-secret" || c.Simulated() {
		t.Fatalf("%+v", c)
	}
}

func TestSecretsAreNotFlags(t *testing.T) {
	for _, f := range []string{"--auth-token=x", "--sk=x", "--iam-password=x", "--ak=x"} {
		if _, err := Load([]string{f}, env(nil), &strings.Builder{}); err == nil {
			t.Errorf("%s accepted as a flag", f)
		}
	}
}

func TestInvalidSettings(t *testing.T) {
	cases := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"bad duration", []string{"--shutdown-grace=soon"}, nil, "--shutdown-grace"},
		{"negative duration", nil, map[string]string{"KOOPHONE_SHUTDOWN_GRACE": "-1s"}, "KOOPHONE_SHUTDOWN_GRACE"},
		{"bad log level", []string{"--log-level=loud"}, nil, "--log-level"},
		{"bad log format", []string{"--log-format=xml"}, nil, "--log-format"},
		{"endpoint without credentials", []string{"--endpoint=https://k.example.com"}, nil, "no credential"},
		{"credentials without endpoint", nil, map[string]string{"KOOPHONE_AUTH_TOKEN": "t"}, "KOOPHONE_ENDPOINT is not"},
		{"two credentials", nil, map[string]string{"KOOPHONE_ENDPOINT": "https://k", "KOOPHONE_AUTH_TOKEN": "t", "KOOPHONE_AK": "a", "KOOPHONE_SK": "s"}, "choose one"},
		{"half IAM", nil, map[string]string{"KOOPHONE_ENDPOINT": "https://k", "KOOPHONE_IAM_USER": "u"}, "KOOPHONE_IAM_DOMAIN, KOOPHONE_IAM_ENDPOINT, KOOPHONE_IAM_PASSWORD, KOOPHONE_PROJECT"},
		{"AK without SK", nil, map[string]string{"KOOPHONE_ENDPOINT": "https://k", "KOOPHONE_AK": "a"}, "both KOOPHONE_AK and KOOPHONE_SK"},
		{"missing secret file", nil, map[string]string{"KOOPHONE_ENDPOINT": "https://k", "KOOPHONE_AUTH_TOKEN_FILE": "/nonexistent/token"}, "KOOPHONE_AUTH_TOKEN_FILE"},
		{"intervals reversed", []string{"--watch-first-interval=5s", "--watch-max-interval=1s"}, nil, "--watch-max-interval"},
		{"stray argument", []string{"serve"}, nil, "unexpected arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.args, env(tc.vars), &strings.Builder{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestSecretValuesNeverInErrors(t *testing.T) {
	_, err := Load(nil, env(map[string]string{
		"KOOPHONE_ENDPOINT": "https://k", "KOOPHONE_IAM_PASSWORD": "hunter2-secret", "KOOPHONE_IAM_USER": "u",
	}), &strings.Builder{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v", err)
	}
}

func TestHelpDocumentsEverySetting(t *testing.T) {
	var out strings.Builder
	_, err := Load([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err %v", err)
	}
	for _, s := range (&Config{}).settings() {
		if !strings.Contains(out.String(), s.env) {
			t.Errorf("--help does not mention %s", s.env)
		}
		if s.flag != "" && !strings.Contains(out.String(), "--"+s.flag) {
			t.Errorf("--help does not mention --%s", s.flag)
		}
	}
}

func TestPprofOffByDefault(t *testing.T) {
	c, err := Load(nil, env(nil), &strings.Builder{})
	if err != nil || c.PprofAddr != "" {
		t.Fatalf("default pprof addr %q, err %v", c.PprofAddr, err)
	}
	c, err = Load(nil, env(map[string]string{"KOOPHONE_PPROF_ADDR": "127.0.0.1:6060"}), &strings.Builder{})
	if err != nil || c.PprofAddr != "127.0.0.1:6060" {
		t.Fatalf("pprof addr %q, err %v", c.PprofAddr, err)
	}
}

// --check-config is a flag only: no variable may turn a serving container into one that exits at once.
func TestCheckConfigIsAFlagOnly(t *testing.T) {
	c, err := Load([]string{"--check-config"}, env(nil), &strings.Builder{})
	if err != nil || !c.CheckOnly {
		t.Fatalf("--check-config: CheckOnly %v, err %v", c != nil && c.CheckOnly, err)
	}
	c, err = Load(nil, env(map[string]string{"KOOPHONE_CHECK_CONFIG": "true"}), &strings.Builder{})
	if err != nil || c.CheckOnly {
		t.Fatalf("KOOPHONE_CHECK_CONFIG was read: CheckOnly %v, err %v", c != nil && c.CheckOnly, err)
	}
	var out strings.Builder
	if _, err := Load([]string{"--help"}, env(nil), &out); !errors.Is(err, ErrHelp) || !strings.Contains(out.String(), "--check-config") {
		t.Fatalf("--help does not mention --check-config: %v", err)
	}
}
