package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/koophone-gateway/koophone-gateway/deploy/image"
)

// The image runs the binary as the nonroot user and holds nothing else but its passwd entry.
func TestImageRunsTheBinaryAsNonRoot(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "gw")
	if err := os.WriteFile(bin, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img.tar")
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	caCerts = &ca
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, []byte("\x7fELF probe"), 0o755); err != nil {
		t.Fatal(err)
	}
	healthProbe = &probe
	if err := run(bin, "koophone-gateway", "koophone-gateway:test", out, "amd64", true); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/koophone-gateway" || cf.OS != "linux" {
		t.Fatalf("config: user %q entrypoint %v os %s", c.User, c.Entrypoint, cf.OS)
	}
	if _, ok := c.ExposedPorts["9090/tcp"]; !ok {
		t.Fatalf("ports %v", c.ExposedPorts)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h.Mode
	}
	if files["koophone-gateway"] != 0o755 || files["etc/ssl/certs/ca-certificates.crt"] != 0o644 ||
		files["grpc-health-probe"] != 0o755 || files["etc/koophone/auth/keys.yaml"] != 0o644 || len(files) != 6 {
		t.Fatalf("files %v", files)
	}
	if c.Healthcheck == nil || !slices.Equal(c.Healthcheck.Test, gatewayHealthcheck.Test) {
		t.Fatalf("healthcheck %+v", c.Healthcheck)
	}
	// Without the probe there would be no health check: refused.
	healthProbe = new(string)
	if err := run(bin, "koophone-gateway", "koophone-gateway:test", out, "amd64", true); err == nil {
		t.Fatal("a gateway image without -health-probe was built")
	}
}

// The gateway image built here and the one deploy/Dockerfile builds check their health alike, and carry the same
// keys file at the path their environment names.
func TestGatewayHealthcheckAndFilesMatchTheDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stage := string(b)[strings.Index(string(b), "AS gateway"):]
	m := regexp.MustCompile(`HEALTHCHECK --interval=(\S+) --timeout=(\S+) --start-period=(\S+) --retries=(\d+) \\\n\s+CMD (\[.*\])`).FindStringSubmatch(stage)
	if m == nil {
		t.Fatal("no HEALTHCHECK --interval= --timeout= --start-period= --retries= CMD [...] in the gateway stage")
	}
	var cmd []string
	if err := json.Unmarshal([]byte(m[5]), &cmd); err != nil {
		t.Fatal(err)
	}
	h := gatewayHealthcheck
	got := []string{h.Interval.String(), h.Timeout.String(), h.StartPeriod.String(), strconv.Itoa(h.Retries)}
	for i, want := range m[1:5] {
		if d, err := time.ParseDuration(want); err == nil {
			want = d.String()
		}
		if got[i] != want {
			t.Errorf("healthcheck option %d: mkimage %s, Dockerfile %s", i, got[i], want)
		}
	}
	if !slices.Equal(append([]string{"CMD"}, cmd...), h.Test) {
		t.Errorf("healthcheck: mkimage %v, Dockerfile CMD %v", h.Test, cmd)
	}
	if !strings.Contains(stage, "\nCOPY deploy/image/keys.yaml "+image.KeysPath+"\n") {
		t.Errorf("the Dockerfile's gateway stage does not copy deploy/image/keys.yaml to %s", image.KeysPath)
	}
}

// The gateway image built here and the one deploy/Dockerfile builds run with the same environment.
func TestGatewayEnvMatchesTheDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stage := string(b)[strings.Index(string(b), "AS gateway"):]
	var fromDockerfile []string
	for _, line := range strings.Split(stage, "\n") {
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			fromDockerfile = append(fromDockerfile, strings.Fields(rest)...)
		}
	}
	slices.Sort(fromDockerfile)
	ours := slices.Sorted(slices.Values(gatewayEnv))
	if !slices.Equal(ours, fromDockerfile) {
		t.Errorf("mkimage's gateway env %v, the Dockerfile's %v", ours, fromDockerfile)
	}
}
