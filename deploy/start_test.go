// The checks in deploy_test.go read the manifests; these run them. Each shipped way to run the gateway (the single
// and production overlays, compose.yaml's gateway, the image on its own) is started as the real gateway binary,
// with the container's environment, arguments and mounted files exactly as rendered (ConfigMaps and Secrets are
// written to a temporary directory and their mount paths rewritten to it), beside a real redis-server and the
// standalone simulator where the manifest points at Redis or KooPhone. The only changes are those a cluster makes
// (listen ports: each container port is mapped to a free loopback port, as a Service maps it; service names: the
// loopback address of the process standing in for them) and those an operator makes (the files the production
// overlay asks them to fill, in a copy). Then the probes as rendered must pass and an authenticated gRPC call and
// REST call must succeed through the Service's ports, while the same call without a key is refused.
// Before each start, `koophone-gateway --check-config` runs on the environment as rendered (listen addresses and
// all), so a setting the server refuses fails here with the server's own words.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"go.uber.org/goleak"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
	"github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
	"github.com/koophone-gateway/koophone-gateway/deploy/image"
)

// demoKey is docs/auth/keys.example.yaml's operator key, published in the README: the demos' key.
const demoKey = "demo-operator-key-0001"

// binaries builds the gateway and the standalone simulator from the repository once per test binary.
var binaries = sync.OnceValues(func() (map[string]string, error) {
	dir, err := os.MkdirTemp("", "koophone-deploy-bin-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/server", "./cmd/koophone-sim")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/server ./cmd/koophone-sim: %v\n%s", err, out)
	}
	return map[string]string{"gateway": filepath.Join(dir, "server"), "sim": filepath.Join(dir, "koophone-sim"), "dir": dir}, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if b, err := binaries(); err == nil {
		os.RemoveAll(b["dir"])
	}
	// Every process the tests started has been waited for, every client closed.
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		code = 1
	}
	os.Exit(code)
}

func bin(t *testing.T, name string) string {
	t.Helper()
	b, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	return b[name]
}

// container is one gateway container as the test runs it.
type container struct {
	env    map[string]string // the image's ENV, then the manifest's
	args   []string
	mounts map[string]string // path in the container -> directory or file on this machine
	ports  map[string]int32  // container port name -> number
	probes map[string]*corev1.Probe
}

// path maps a path in the container to this machine: the longest mount that holds it, else the image's own files.
func (c *container) path(p string) string {
	best := ""
	for m := range c.mounts {
		if (p == m || strings.HasPrefix(p, strings.TrimSuffix(m, "/")+"/")) && len(m) > len(best) {
			best = m
		}
	}
	if best == "" {
		return p
	}
	return c.mounts[best] + strings.TrimPrefix(p, best)
}

// mount puts a volume at a path; like a container runtime's, it hides the image's files beneath it.
func (c *container) mount(at, local string) {
	for m := range c.mounts {
		if m == at || strings.HasPrefix(m, strings.TrimSuffix(at, "/")+"/") {
			delete(c.mounts, m)
		}
	}
	c.mounts[at] = local
}

// localEnv is the environment with every absolute path rewritten to this machine (files only; addresses stay).
func (c *container) localEnv() []string {
	var out []string
	for k, v := range c.env {
		if strings.HasPrefix(v, "/") {
			v = c.path(v)
		}
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func (c *container) localArgs() []string {
	var out []string
	for _, a := range c.args {
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(v, "/") {
			a = k + "=" + c.path(v)
		} else if strings.HasPrefix(a, "/") {
			a = c.path(a)
		}
		out = append(out, a)
	}
	return out
}

// imageStage is a final stage of deploy/Dockerfile: its ENV, ENTRYPOINT and the repository files it copies in.
type imageStage struct {
	env        map[string]string
	entrypoint []string
	files      map[string]string // path in the image -> path in the repository
}

func dockerStage(t *testing.T, name string) imageStage {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), " AS "+name+"\n")
	if i < 0 {
		t.Fatalf("Dockerfile has no stage %s", name)
	}
	st := imageStage{env: map[string]string{}, files: map[string]string{}}
	for _, line := range strings.Split(string(b)[i:], "\n")[1:] {
		if strings.HasPrefix(line, "FROM ") {
			break
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "ENV":
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				st.env[k] = v
			}
		case f[0] == "ENTRYPOINT":
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "ENTRYPOINT ")), &st.entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT: %v", err)
			}
		case f[0] == "COPY" && !strings.HasPrefix(f[1], "--from"):
			st.files[f[2]] = filepath.Join("..", f[1])
		}
	}
	return st
}

// imageContainer is the gateway image run as it is: its environment and its own files.
func imageContainer(t *testing.T) *container {
	st := dockerStage(t, "gateway")
	c := &container{env: st.env, mounts: map[string]string{}, ports: map[string]int32{}, probes: map[string]*corev1.Probe{}}
	for in, repo := range st.files {
		abs, err := filepath.Abs(repo)
		if err != nil {
			t.Fatal(err)
		}
		c.mounts[in] = abs
	}
	// Outside Kubernetes: the image's HEALTHCHECK, then gRPC health "" (KooPhone answers), as a load balancer waits.
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`HEALTHCHECK [^\n]*\\\n\s*CMD \["/grpc-health-probe", "-addr=127\.0\.0\.1:(\d+)", "-service=([^"]+)"\]`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no HEALTHCHECK running /grpc-health-probe -addr=127.0.0.1:PORT -service=NAME in the Dockerfile")
	}
	port, _ := strconv.Atoi(string(m[1]))
	c.probes["healthcheck"] = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port), Service: ptr(string(m[2]))}}}
	c.probes["ready"] = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port)}}}
	return c
}

// podContainer is the gateway container of a rendered overlay, its volumes written under dir.
func podContainer(t *testing.T, o objects, d *appsv1.Deployment, dir string) *container {
	t.Helper()
	c := imageContainer(t)
	spec := d.Spec.Template.Spec
	k := spec.Containers[0]
	for name, v := range o.env(t, k) {
		c.env[name] = v
	}
	c.args = append(slices.Clone(k.Command[min(len(k.Command), 1):]), k.Args...)
	for _, p := range k.Ports {
		c.ports[p.Name] = p.ContainerPort
	}
	c.probes = map[string]*corev1.Probe{"startup": k.StartupProbe, "liveness": k.LivenessProbe, "readiness": k.ReadinessProbe}
	for _, m := range k.VolumeMounts {
		var vol *corev1.Volume
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == m.Name {
				vol = &spec.Volumes[i]
			}
		}
		if vol == nil {
			t.Fatalf("volumeMount %s: no volume of that name", m.Name)
		}
		files := map[string][]byte{}
		var items []corev1.KeyToPath
		switch {
		case vol.Secret != nil:
			s, ok := o.secrets[vol.Secret.SecretName]
			if !ok {
				t.Fatalf("volume %s: Secret %s is not in the overlay", vol.Name, vol.Secret.SecretName)
			}
			for k, v := range s.Data {
				files[k] = v
			}
			for k, v := range s.StringData {
				files[k] = []byte(v)
			}
			items = vol.Secret.Items
		case vol.ConfigMap != nil:
			cm, ok := o.configMaps[vol.ConfigMap.Name]
			if !ok {
				t.Fatalf("volume %s: ConfigMap %s is not in the overlay", vol.Name, vol.ConfigMap.Name)
			}
			for k, v := range cm.Data {
				files[k] = []byte(v)
			}
			items = vol.ConfigMap.Items
		default:
			t.Fatalf("volume %s: only Secret and ConfigMap volumes are expected", vol.Name)
		}
		if len(items) > 0 {
			picked := map[string][]byte{}
			for _, it := range items {
				picked[it.Path] = files[it.Key]
			}
			files = picked
		}
		local := filepath.Join(dir, "volumes", vol.Name)
		for name, b := range files {
			writeFile(t, filepath.Join(local, name), b)
		}
		if m.SubPath != "" {
			local = filepath.Join(local, m.SubPath)
		}
		c.mount(m.MountPath, local)
	}
	return c
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkConfig runs `koophone-gateway --check-config` on the container as rendered.
func checkConfig(t *testing.T, c *container) (int, string) {
	t.Helper()
	cmd := exec.Command(bin(t, "gateway"), append(c.localArgs(), "--check-config")...)
	cmd.Env = c.localEnv()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("--check-config: %v", err)
	return 0, ""
}

func mustCheck(t *testing.T, c *container) {
	t.Helper()
	if code, out := checkConfig(t, c); code != 0 {
		t.Fatalf("koophone-gateway --check-config refuses the configuration as rendered (exit %d):\n%s\nenvironment:\n%s",
			code, out, strings.Join(c.localEnv(), "\n"))
	}
}

// freeAddr returns a loopback address nobody listens on (the port is released for the process to take).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is a started program whose output the test keeps, stopped (SIGTERM) when the test ends.
type process struct {
	name string
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, name string, env []string, prog string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Env = env
	p := &process{name: name, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			var exit *exec.ExitError
			if err != nil && !(errors.As(err, &exit) && !exit.Exited()) { // killed by our signal: fine
				t.Errorf("%s exited with %v after SIGTERM; output:\n%s", name, err, p.out)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s did not stop within 20s of SIGTERM; output:\n%s", name, p.out)
		}
	})
	return p
}

// await retries f for up to 30s, failing with f's last error and the processes' output.
func await(t *testing.T, what string, f func() error, procs ...*process) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
		for _, p := range procs {
			select {
			case e := <-p.done:
				p.done <- e // for the cleanup that waits for it
				t.Fatalf("%s exited (%v) while waiting for %s; output:\n%s", p.name, e, what, p.out)
			default:
			}
		}
	}
	var logs strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&logs, "--- %s:\n%s\n", p.name, p.out)
	}
	t.Fatalf("%s: still failing after 30s: %v\n%s", what, err, logs.String())
}

// startRedis runs redis-server with a manifest's arguments on a free loopback port, and waits until it answers.
func startRedis(t *testing.T, args []string) string {
	t.Helper()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	p := start(t, "redis-server", nil, "redis-server", append(slices.Clone(args), "--port", port, "--bind", "127.0.0.1", "--dir", t.TempDir())...)
	await(t, "redis PING", func() error { return redisPing(addr) }, p)
	return addr
}

func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "+PONG\r\n" {
		return fmt.Errorf("PING: %q %v", line, err)
	}
	return nil
}

// simulator is a running standalone simulator and what its banner says.
type simulator struct {
	url, ak, sk string
}

func startSim(t *testing.T, args ...string) simulator {
	t.Helper()
	p := start(t, "koophone-sim", nil, bin(t, "sim"), args...)
	var s simulator
	await(t, "the simulator's banner", func() error {
		out := p.out.String()
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, "KOOPHONE_ENDPOINT="); ok {
				s.url = v
			} else if v, ok := strings.CutPrefix(l, "KOOPHONE_AK="); ok {
				s.ak = v
			} else if v, ok := strings.CutPrefix(l, "KOOPHONE_SK="); ok {
				s.sk = v
			}
		}
		if s.url == "" || s.ak == "" || s.sk == "" {
			return errors.New("no KOOPHONE_ENDPOINT, KOOPHONE_AK and KOOPHONE_SK lines yet")
		}
		return nil
	}, p)
	return s
}

// run starts the gateway with the container's environment, each listen address moved to a free loopback port (as
// a Service maps its port to the pod's), and waits until the container's probes pass. It returns the loopback
// address of each container port.
func run(t *testing.T, c *container, rewrite map[string]string) map[int32]string {
	t.Helper()
	env := c.localEnv()
	mapped := map[int32]string{}
	for i, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(k, "_ADDR") && k != "KOOPHONE_PPROF_ADDR" {
			_, p, err := net.SplitHostPort(v)
			if err != nil {
				t.Fatalf("%s=%s: %v", k, v, err)
			}
			n, _ := strconv.Atoi(p)
			mapped[int32(n)] = freeAddr(t)
			env[i] = k + "=" + mapped[int32(n)]
		} else if r, ok := rewrite[k]; ok {
			env[i] = k + "=" + r
		}
	}
	p := start(t, "gateway", env, bin(t, "gateway"), c.localArgs()...)
	order := []string{"startup", "liveness", "readiness", "healthcheck", "ready"}
	for _, name := range order {
		if pr := c.probes[name]; pr != nil {
			await(t, name+" probe", func() error { return runProbe(pr, c, mapped) }, p)
		}
	}
	return mapped
}

// runProbe does what the kubelet does: gRPC health in clear text, HTTP(S) GET without verifying the certificate.
func runProbe(p *corev1.Probe, c *container, mapped map[int32]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	port := func(v intstr.IntOrString) string {
		if v.Type == intstr.String {
			return mapped[c.ports[v.StrVal]]
		}
		return mapped[v.IntVal]
	}
	switch {
	case p.GRPC != nil:
		conn, err := grpc.NewClient(mapped[p.GRPC.Port], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		svc := ""
		if p.GRPC.Service != nil {
			svc = *p.GRPC.Service
		}
		res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			return fmt.Errorf("gRPC probe %q: %w", svc, err)
		}
		if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("gRPC probe %q: %s", svc, res.GetStatus())
		}
		return nil
	case p.HTTPGet != nil:
		scheme := strings.ToLower(string(p.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // as the kubelet
		defer hc.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+port(p.HTTPGet.Port)+p.HTTPGet.Path, nil)
		res, err := hc.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode < 200 || res.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s %s", p.HTTPGet.Path, res.Status, body)
		}
		return nil
	case p.TCPSocket != nil:
		conn, err := net.DialTimeout("tcp", port(p.TCPSocket.Port), time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	}
	return errors.New("a probe of a kind the test does not run")
}

// callGRPC calls ListInstances for the first page through the Go client module (client/go: stubs, TLS and the
// API key as call credentials), as a team calling the gateway would; it returns how many phones came back.
func callGRPC(t *testing.T, addr string, tlsConf *tls.Config, key string) (int, error) {
	t.Helper()
	c, err := koophone.New(addr, koophone.Config{TLSConfig: tlsConf, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Instances.ListInstances(ctx, &koophonev1.ListInstancesRequest{PageNo: 1, PageSize: 5})
	if err != nil {
		return 0, err
	}
	return len(res.GetResult()), nil
}

// callREST asks the REST mirror for the same page; it returns the status and how many phones came back.
func callREST(t *testing.T, base string, tlsConf *tls.Config, key string) (int, int) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/instances/batch-query?page_no=1&page_size=5", nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("REST: %v", err)
	}
	defer res.Body.Close()
	var body struct {
		Result []json.RawMessage `json:"result"`
	}
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, len(body.Result)
}

// callThrough makes the authenticated calls, and the same calls without a key, on both transports.
func callThrough(t *testing.T, grpcAddr, httpAddr string, tlsConf *tls.Config, key string) {
	t.Helper()
	scheme := "http://"
	if tlsConf != nil {
		scheme = "https://"
	}
	if n, err := callGRPC(t, grpcAddr, tlsConf, key); err != nil || n == 0 {
		t.Errorf("gRPC ListInstances with the key: %d phones, %v", n, err)
	}
	if _, err := callGRPC(t, grpcAddr, tlsConf, ""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC ListInstances without a key: %v, want Unauthenticated", err)
	}
	if code, n := callREST(t, scheme+httpAddr, tlsConf, key); code != http.StatusOK || n == 0 {
		t.Errorf("REST batch-query with the key: %d, %d phones", code, n)
	}
	if code, _ := callREST(t, scheme+httpAddr, tlsConf, ""); code != http.StatusUnauthorized {
		t.Errorf("REST batch-query without a key: %d, want 401", code)
	}
}

// servicePort is the loopback address standing for a Service's port: its targetPort's container port, mapped.
func servicePort(t *testing.T, o objects, c *container, mapped map[int32]string, service string) string {
	t.Helper()
	for _, s := range o.services {
		if s.Name != service {
			continue
		}
		tp := s.Spec.Ports[0].TargetPort
		p := tp.IntVal
		if tp.Type == intstr.String {
			p = c.ports[tp.StrVal]
		}
		if mapped[p] == "" {
			t.Fatalf("Service %s targets container port %d, on which the gateway does not listen", service, p)
		}
		return mapped[p]
	}
	t.Fatalf("no Service %s", service)
	return ""
}

// copyTree copies deploy/kustomize, so a test can fill in what the operator fills in.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		writeFile(t, filepath.Join(dst, rel), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testPKI makes a CA and a server certificate for the names in-cluster callers use, and loopback.
func testPKI(t *testing.T) (certPEM, keyPEM []byte, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "deploy-test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "koophone-gateway"},
		DNSNames:    []string{"koophone-gateway-grpc", "koophone-gateway-http", "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(caCert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), roots
}

// newKey makes a caller's API key and the keys file entry an operator would write for it.
func newKey(t *testing.T, principal string) (key string, keysFile []byte) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	key = hex.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	return key, fmt.Appendf(nil, "keys:\n  - principal: %s\n    sha256: %x\n    groups: [operators]\n", principal, sum)
}

// redisOf finds the Redis Deployment behind a Service name of the overlay, and its container's arguments.
func redisOf(t *testing.T, o objects, hostPort string) []string {
	t.Helper()
	host, port, _ := net.SplitHostPort(hostPort)
	for _, s := range o.services {
		if s.Name != host || strconv.Itoa(int(s.Spec.Ports[0].Port)) != port {
			continue
		}
		for _, d := range o.deployments {
			if selects(s.Spec.Selector, d.Spec.Template.Labels) {
				return d.Spec.Template.Spec.Containers[0].Args
			}
		}
	}
	t.Fatalf("Redis %s: no Service of that name and port in the overlay selects a Deployment", hostPort)
	return nil
}

func selects(sel, lbls map[string]string) bool {
	for k, v := range sel {
		if lbls[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func TestSingleOverlayStartsAndServes(t *testing.T) {
	o := render(t, "kustomize/overlays/single")
	c := podContainer(t, o, o.gateway(t), t.TempDir())
	mustCheck(t, c)
	if c.env["KOOPHONE_ENDPOINT"] != "" || c.env["KOOPHONE_REDIS_URL_FILE"] != "" {
		t.Fatal("single: the embedded simulator, no Redis")
	}
	mapped := run(t, c, nil)
	callThrough(t, servicePort(t, o, c, mapped, "koophone-gateway-grpc"), servicePort(t, o, c, mapped, "koophone-gateway-http"), nil, demoKey)
}

func TestProductionOverlayStartsAndServes(t *testing.T) {
	// As shipped, production refuses to start until the operator fills in its files, and says what is missing.
	shipped := render(t, "kustomize/overlays/production")
	if code, out := checkConfig(t, podContainer(t, shipped, shipped.gateway(t), t.TempDir())); code != 2 ||
		!strings.Contains(out, "credential") {
		t.Errorf("production as shipped (empty secret.env, keys and TLS files): --check-config exit %d, want 2 naming the missing credential:\n%s", code, out)
	}
	// Its Redis URL points at its Redis Service.
	secretEnv, err := os.ReadFile("kustomize/overlays/production/secret.env")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^redis-url=redis://([^/]+)/`).FindSubmatch(secretEnv)
	if m == nil {
		t.Fatal("secret.env has no redis-url=redis://host:port/db")
	}
	redisArgs := redisOf(t, shipped, string(m[1]))
	if !strings.Contains(strings.Join(redisArgs, " "), "--maxmemory-policy noeviction") {
		t.Errorf("Redis args %q: idempotency keys must never be evicted (--maxmemory-policy noeviction)", redisArgs)
	}

	// The operator's part, in a copy: KooPhone credentials (the simulator's), Redis, TLS, callers' keys.
	sim := startSim(t, "--addr", "127.0.0.1:0")
	redis := startRedis(t, redisArgs)
	tree := t.TempDir()
	copyTree(t, "kustomize", tree)
	prod := filepath.Join(tree, "overlays", "production")
	writeFile(t, filepath.Join(prod, "secret.env"), fmt.Appendf(nil, "ak=%s\nsk=%s\nredis-url=redis://%s/0\n", sim.ak, sim.sk, redis))
	certPEM, keyPEM, roots := testPKI(t)
	writeFile(t, filepath.Join(prod, "tls", "tls.crt"), certPEM)
	writeFile(t, filepath.Join(prod, "tls", "tls.key"), keyPEM)
	key, keys := newKey(t, "billing-svc")
	writeFile(t, filepath.Join(prod, "auth", "keys.yaml"), keys)

	o := render(t, prod)
	c := podContainer(t, o, o.gateway(t), t.TempDir())
	mustCheck(t, c)
	if c.env["KOOPHONE_TLS_CERT_FILE"] == "" || c.env["KOOPHONE_TLS_KEY_FILE"] == "" {
		t.Fatal("production: TLS on both listeners")
	}
	// The one setting outside the operator's files that differs here: KooPhone is the simulator.
	mapped := run(t, c, map[string]string{"KOOPHONE_ENDPOINT": sim.url})
	tlsConf := &tls.Config{RootCAs: roots, ServerName: "koophone-gateway-grpc"}
	callThrough(t, servicePort(t, o, c, mapped, "koophone-gateway-grpc"), servicePort(t, o, c, mapped, "koophone-gateway-http"), tlsConf, key)
}

// composeFile is what the tests read of compose.yaml (anchors and merge keys resolved by the YAML decoder).
type composeFile struct {
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Image       string                   `json:"image"`
	Build       *struct{ Target string } `json:"build"`
	Command     []string                 `json:"command"`
	Environment map[string]string        `json:"environment"`
	Volumes     []string                 `json:"volumes"`
	Ports       []string                 `json:"ports"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// composeContainer is a compose service built from the Dockerfile's gateway stage, as compose runs it.
func composeContainer(t *testing.T, s composeService) *container {
	t.Helper()
	if s.Build == nil || s.Build.Target != "gateway" {
		t.Fatalf("the gateway services build the Dockerfile's gateway stage")
	}
	c := imageContainer(t)
	for k, v := range s.Environment {
		c.env[k] = v
	}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			t.Fatalf("volume %q: the test knows only bind mounts of repository files", v)
		}
		abs, err := filepath.Abs(filepath.Join("compose", parts[0]))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("volume %q: %v", v, err)
		}
		c.mount(parts[1], abs)
	}
	return c
}

func TestComposeGatewayStartsAndServes(t *testing.T) {
	f := readCompose(t)
	var gateways []string
	for name := range f.Services {
		if strings.HasPrefix(name, "gateway-") {
			gateways = append(gateways, name)
		}
	}
	slices.Sort(gateways)
	if len(gateways) == 0 {
		t.Fatal("no gateway service")
	}
	for _, g := range gateways {
		if code, out := checkConfig(t, composeContainer(t, f.Services[g])); code != 0 {
			t.Errorf("%s: --check-config exit %d:\n%s", g, code, out)
		}
	}

	// Stand-ins for the services the gateway reaches by name, started as compose starts them.
	names := map[string]string{}
	simSvc, ok := f.Services["simulator"]
	if !ok || simSvc.Build == nil {
		t.Fatal("no simulator service built from the Dockerfile")
	}
	entry := dockerStage(t, simSvc.Build.Target).entrypoint
	args := append(slices.Clone(entry[1:]), simSvc.Command...)
	i := slices.Index(args, "--addr")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("simulator arguments %q: no --addr", args)
	}
	_, simPort, _ := net.SplitHostPort(args[i+1])
	args[i+1] = "127.0.0.1:0"
	sim := startSim(t, args...)
	names["simulator:"+simPort] = strings.TrimPrefix(sim.url, "http://")
	redisSvc := f.Services["redis"]
	if len(redisSvc.Command) == 0 || redisSvc.Command[0] != "redis-server" {
		t.Fatalf("redis command %q", redisSvc.Command)
	}
	if !strings.Contains(strings.Join(redisSvc.Command, " "), "--maxmemory-policy noeviction") {
		t.Errorf("redis command %q: idempotency keys must never be evicted (--maxmemory-policy noeviction)", redisSvc.Command)
	}
	names["redis:6379"] = startRedis(t, redisSvc.Command[1:])

	c := composeContainer(t, f.Services[gateways[0]])
	if c.env["KOOPHONE_AK"] != sim.ak || c.env["KOOPHONE_SK"] != sim.sk {
		t.Errorf("compose's KOOPHONE_AK/SK are not the simulator's (it prints KOOPHONE_AK=%s)", sim.ak)
	}
	rewrite := map[string]string{}
	for k, v := range c.env {
		for name, addr := range names {
			if strings.Contains(v, "//"+name) {
				rewrite[k] = strings.Replace(v, "//"+name, "//"+addr, 1)
			}
		}
	}
	if len(rewrite) != 2 {
		t.Fatalf("the gateway should reach simulator:%s and redis:6379 by name; rewrote %v", simPort, rewrite)
	}
	mapped := run(t, c, rewrite)
	// compose's ports map host ports to these container ports.
	var grpcAddr, httpAddr string
	for _, p := range f.Services[gateways[0]].Ports {
		_, inside, _ := strings.Cut(p, ":")
		n, _ := strconv.Atoi(inside)
		switch a := mapped[int32(n)]; {
		case a == "":
			t.Errorf("port %q: the gateway does not listen on %s", p, inside)
		case grpcAddr == "":
			grpcAddr = a
		default:
			httpAddr = a
		}
	}
	callThrough(t, grpcAddr, httpAddr, nil, demoKey)
}

// The image alone starts on every interface with authentication on and admits nobody; mounting a keys file over
// its own (as the overlays and compose do) lets that file's callers in.
func TestImageDefaultsStart(t *testing.T) {
	c := imageContainer(t)
	if c.mounts[image.KeysPath] == "" || c.env["KOOPHONE_AUTH_KEYS_FILE"] != image.KeysPath {
		t.Errorf("the gateway image must carry its keys file at %s and name it in KOOPHONE_AUTH_KEYS_FILE", image.KeysPath)
	}
	mustCheck(t, c)
	mapped := run(t, c, nil)
	if _, err := callGRPC(t, mapped[9090], nil, demoKey); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the image's own keys file let a demo key in: %v", err)
	}

	key, keys := newKey(t, "ops")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "keys.yaml"), keys)
	c = imageContainer(t)
	c.mount("/etc/koophone/auth", dir)
	mustCheck(t, c)
	mapped = run(t, c, nil)
	callThrough(t, mapped[9090], mapped[8080], nil, key)
}

func ptr[T any](v T) *T { return &v }
