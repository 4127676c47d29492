package config

import (
	"strings"
	"testing"
	"time"
)

// A gateway on a non-loopback address without authentication does not start, and the error names the settings.
func TestRefusesOpenNetworkListener(t *testing.T) {
	for _, args := range [][]string{
		{"--grpc-addr=0.0.0.0:9090"},
		{"--http-addr=:8080"},
		{"--grpc-addr=[::]:9090"},
		{"--http-addr=gateway.example:8080"},
	} {
		_, err := Load(args, env(nil), &strings.Builder{})
		if err == nil {
			t.Errorf("%v: started without authentication", args)
			continue
		}
		for _, want := range []string{"KOOPHONE_AUTH_KEYS_FILE", "--insecure-no-auth", "KOOPHONE_INSECURE_NO_AUTH=true"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error %q does not name %s", args, err, want)
			}
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:9090", "[::1]:9090", "127.3.4.5:1"} {
		if _, err := Load([]string{"--grpc-addr=" + addr}, env(nil), &strings.Builder{}); err != nil {
			t.Errorf("loopback %s refused: %v", addr, err)
		}
	}
}

// The override works as a bare flag and as a variable; authentication also lifts the refusal.
func TestOpenListenerOverrides(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
	}{
		{args: []string{"--grpc-addr=0.0.0.0:9090", "--insecure-no-auth"}},
		{args: []string{"--grpc-addr=0.0.0.0:9090"}, env: map[string]string{"KOOPHONE_INSECURE_NO_AUTH": "true"}},
		{args: []string{"--grpc-addr=0.0.0.0:9090", "--auth-keys-file=/etc/keys.yaml"}},
		{args: []string{"--grpc-addr=0.0.0.0:9090", "--tls-cert-file=c", "--tls-key-file=k", "--tls-client-ca=ca"}},
	}
	for _, c := range cases {
		if _, err := Load(c.args, env(c.env), &strings.Builder{}); err != nil {
			t.Errorf("%v %v: %v", c.args, c.env, err)
		}
	}
}

func TestCallerSettingsChecked(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert-file=c"}, "--tls-key-file"},
		{[]string{"--tls-client-ca=ca"}, "--tls-cert-file"},
		{[]string{"--auth-policy-file=p"}, "--auth-keys-file"},
		{[]string{"--reflection=maybe"}, "auto"},
		{[]string{"--max-connections=0"}, "between 1"},
		{[]string{"--grpc-max-header-bytes=100"}, "between 1024"},
		{[]string{"--grpc-max-header-bytes=99999999"}, "between 1024"},
		{[]string{"--http-body-timeout=0s"}, "positive"},
		{[]string{"--insecure-no-auth=perhaps"}, "invalid syntax"},
	} {
		_, err := Load(c.args, env(nil), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

func TestCallerDefaults(t *testing.T) {
	c, err := Load([]string{"--cors-origins= https://a.example, https://b.example ,"}, env(nil), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Reflection != "auto" || c.AuditLog != "stderr" || c.InsecureNoAuth || c.MaxConnections != 4096 ||
		c.GRPCMaxHeaderBytes != 64<<10 || c.HTTPBodyTimeout != 30*time.Second || c.HTTPReadHeaderTimeout != 10*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	if strings.Join(c.CORSOrigins, "|") != "https://a.example|https://b.example" {
		t.Fatalf("CORS origins %q", c.CORSOrigins)
	}
}
