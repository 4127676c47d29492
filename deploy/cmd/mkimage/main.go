// Command mkimage builds the gateway's or the simulator's container image without a Docker engine: one layer
// holding a static binary (built by the caller with CGO_ENABLED=0) and a passwd entry for the nonroot user, on an
// empty base (scratch), plus the build machine's CA bundle (for HTTPS to KooPhone and IAM), written as a
// `docker load`-able tarball. It holds what deploy/Dockerfile's distroless stages hold, without pulling a base image:
// for the gateway also grpc-health-probe and the same HEALTHCHECK, and the image's API keys file (deploy/image).
//
//	go run ./cmd/mkimage -binary ../bin/linux/koophone-gateway -name koophone-gateway -tag koophone-gateway:dev \
//	  -health-probe ../bin/linux/grpc-health-probe -out ../bin/koophone-gateway.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/koophone-gateway/koophone-gateway/deploy/image"
)

func main() {
	binary := flag.String("binary", "", "static linux binary to put at /<name>")
	nameFlag := flag.String("name", "koophone-gateway", "file name of the binary in the image, and its entrypoint")
	tag := flag.String("tag", "koophone-gateway:dev", "image reference written into the tarball")
	out := flag.String("out", "", "tarball to write")
	gateway := flag.Bool("gateway", true, "set the gateway's listen addresses and ports (false: the simulator's)")
	arch := flag.String("arch", runtime.GOARCH, "the binary's GOARCH")
	caCerts = flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to install (empty: none)")
	healthProbe = flag.String("health-probe", "", "gateway: static grpc-health-probe binary for the image's HEALTHCHECK (required)")
	flag.Parse()
	if err := run(*binary, *nameFlag, *tag, *out, *arch, *gateway); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

// caCerts is the CA bundle put at /etc/ssl/certs/ca-certificates.crt, where Go's crypto/x509 looks on Linux.
var caCerts *string

// healthProbe is the grpc-health-probe binary put at /grpc-health-probe for the gateway's health check.
var healthProbe *string

// gatewayEnv is the gateway image's environment, the same as deploy/Dockerfile's (a test holds them equal): every
// interface, with caller authentication on (the image's keys file admits nobody until the operator mounts theirs;
// see deploy/image/keys.yaml). GODEBUG: the GC does not shrink goroutine stacks (see deploy/Dockerfile and
// docs/benchmarks.md).
var gatewayEnv = []string{"KOOPHONE_GRPC_ADDR=0.0.0.0:9090", "KOOPHONE_HTTP_ADDR=0.0.0.0:8080", "KOOPHONE_LOG_FORMAT=json",
	"KOOPHONE_AUTH_KEYS_FILE=" + image.KeysPath, "GODEBUG=gcshrinkstackoff=1"}

// gatewayHealthcheck is deploy/Dockerfile's HEALTHCHECK (a test holds them equal): gRPC health's "liveness" on the
// loopback gRPC port, which stays outside caller authentication.
var gatewayHealthcheck = &v1.HealthConfig{
	Test:     []string{"CMD", "/grpc-health-probe", "-addr=127.0.0.1:9090", "-service=liveness"},
	Interval: 10 * time.Second, Timeout: 3 * time.Second, StartPeriod: 5 * time.Second, Retries: 3,
}

func run(binary, bin, tag, out, arch string, gateway bool) error {
	if binary == "" || out == "" {
		return fmt.Errorf("-binary and -out are required")
	}
	exe, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0) // reproducible layers
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{"etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")},
		{bin, 0o755, exe},
	}
	add := func(name string, mode int64, data []byte) {
		files = append(files, struct {
			name string
			mode int64
			data []byte
		}{name, mode, data})
	}
	if caCerts != nil && *caCerts != "" {
		ca, err := os.ReadFile(*caCerts)
		if err != nil {
			return fmt.Errorf("-ca-certs: %w", err)
		}
		add("etc/ssl/certs/ca-certificates.crt", 0o644, ca)
	}
	if gateway {
		if healthProbe == nil || *healthProbe == "" {
			return fmt.Errorf("-health-probe is required for the gateway image (its HEALTHCHECK runs it)")
		}
		probe, err := os.ReadFile(*healthProbe)
		if err != nil {
			return fmt.Errorf("-health-probe: %w", err)
		}
		add("grpc-health-probe", 0o755, probe)
		add(strings.TrimPrefix(image.KeysPath, "/"), 0o644, image.Keys)
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg := v1.Config{User: "65532:65532", Entrypoint: []string{"/" + bin}, WorkingDir: "/"}
	if gateway {
		cfg.Env = gatewayEnv
		cfg.Healthcheck = gatewayHealthcheck
		cfg.ExposedPorts = map[string]struct{}{"9090/tcp": {}, "8080/tcp": {}}
	} else {
		cfg.Cmd = []string{"--addr", "0.0.0.0:8081"}
		cfg.ExposedPorts = map[string]struct{}{"8081/tcp": {}}
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf.OS, cf.Architecture, cf.Created = "linux", arch, v1.Time{Time: epoch}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, ref, img)
}
