// No cluster runs in CI, so these tests render every kustomize overlay with the kustomize API, decode each
// object strictly with the Kubernetes API types, and check what would otherwise only fail in a cluster: probe ports
// are the server's ports, every setting the manifests give is one the server reads (its config table in
// internal/config), secrets come from Secret keys that exist, the grace period outlasts the server's, nothing
// runs as root, callers must authenticate, images are pinned, an autoscaled Deployment has no replicas field, and
// Redis is set up as the gateway needs (manifest_test.go). start_test.go then runs what these read.
package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// setting is one row of the server's config table.
type setting struct {
	secret bool
	def    string
}

// serverSettings parses internal/config/config.go: every `{env: "KOOPHONE_...", ...}` row.
func serverSettings(t *testing.T) map[string]setting {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../internal/config/config.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]setting{}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		var env string
		var s setting
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			k, _ := kv.Key.(*ast.Ident)
			if k == nil {
				continue
			}
			switch v := kv.Value.(type) {
			case *ast.BasicLit:
				str, _ := strconv.Unquote(v.Value)
				switch k.Name {
				case "env":
					env = str
				case "def":
					s.def = str
				}
			case *ast.Ident:
				if k.Name == "secret" && v.Name == "true" {
					s.secret = true
				}
			}
		}
		if strings.HasPrefix(env, "KOOPHONE_") {
			out[env] = s
		}
		return true
	})
	if len(out) < 20 {
		t.Fatalf("found only %d settings in internal/config/config.go: has its table changed shape?", len(out))
	}
	return out
}

// livenessService is the health name the server keeps SERVING (internal/server.LivenessService).
func livenessService(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../internal/server/health.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`const LivenessService = "([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("internal/server/health.go declares no LivenessService")
	}
	return string(m[1])
}

// objects is one rendered overlay, decoded.
type objects struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	netpols     []*networkingv1.NetworkPolicy
}

func render(t *testing.T, dir string) objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, autoscalingv2.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	// Strict: a misspelt or misplaced field fails here instead of being dropped by the API server.
	dec := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	o := objects{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := dec.Decode(y, nil, nil)
		if err != nil {
			t.Fatalf("%s: %s %s does not decode: %v", dir, r.GetKind(), r.GetName(), err)
		}
		switch v := obj.(type) {
		case *appsv1.Deployment:
			o.deployments = append(o.deployments, v)
		case *corev1.Service:
			o.services = append(o.services, v)
		case *corev1.ConfigMap:
			o.configMaps[v.Name] = v
		case *corev1.Secret:
			o.secrets[v.Name] = v
		case *autoscalingv2.HorizontalPodAutoscaler:
			o.hpas = append(o.hpas, v)
		case *policyv1.PodDisruptionBudget:
			o.pdbs = append(o.pdbs, v)
		case *networkingv1.NetworkPolicy:
			o.netpols = append(o.netpols, v)
		default:
			t.Fatalf("%s: unexpected kind %T", dir, obj)
		}
	}
	return o
}

func (o objects) gateway(t *testing.T) *appsv1.Deployment {
	t.Helper()
	for _, d := range o.deployments {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == "gateway" {
			return d
		}
	}
	t.Fatal("no gateway Deployment")
	return nil
}

// env is what the gateway container's environment holds: envFrom ConfigMaps, then explicit env.
func (o objects) env(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.SecretRef != nil {
			t.Errorf("envFrom a Secret puts credentials in the environment; mount it and use NAME_FILE")
		}
		if from.ConfigMapRef == nil {
			continue
		}
		cm, ok := o.configMaps[from.ConfigMapRef.Name]
		if !ok {
			t.Fatalf("envFrom ConfigMap %q is not in the overlay", from.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			t.Errorf("env %s from a Secret: mount it and use %s_FILE", e.Name, e.Name)
		}
		env[e.Name] = e.Value
	}
	return env
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return int32(n)
}

func TestOverlays(t *testing.T) {
	settings := serverSettings(t)
	liveness := livenessService(t)
	for _, overlay := range []string{"single", "production"} {
		t.Run(overlay, func(t *testing.T) {
			o := render(t, "kustomize/overlays/"+overlay)
			d := o.gateway(t)
			pod := d.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers", len(pod.Containers))
			}
			c := pod.Containers[0]
			env := o.env(t, c)

			// Every setting is one the server reads; NAME_FILE only for secrets.
			for name := range env {
				if s, ok := settings[name]; ok {
					if s.secret {
						t.Errorf("%s is a secret: give it as %s_FILE from a mounted Secret", name, name)
					}
					continue
				}
				base, isFile := strings.CutSuffix(name, "_FILE")
				if s, ok := settings[base]; isFile && ok && s.secret {
					continue
				}
				t.Errorf("the server reads no setting %s (see `koophone-gateway --help`)", name)
			}
			// Listen on every interface, on the ports the probes and Services use.
			grpcPort, httpPort := port(t, env["KOOPHONE_GRPC_ADDR"]), port(t, env["KOOPHONE_HTTP_ADDR"])
			for _, a := range []string{"KOOPHONE_GRPC_ADDR", "KOOPHONE_HTTP_ADDR"} {
				if h, _, _ := net.SplitHostPort(env[a]); h != "0.0.0.0" && h != "" {
					t.Errorf("%s=%s: other pods cannot reach a loopback address", a, env[a])
				}
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if ports["grpc"] != grpcPort || ports["http"] != httpPort {
				t.Errorf("container ports %v, server listens on gRPC %d and HTTP %d", ports, grpcPort, httpPort)
			}
			// Probes: native gRPC health in clear text; with TLS on (the kubelet's gRPC probes cannot speak TLS) HTTPS
			// GETs on the REST port: /healthz for startup and liveness, /readyz for readiness.
			tlsOn := env["KOOPHONE_TLS_CERT_FILE"] != ""
			for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if tlsOn {
					want := map[bool]string{true: "/readyz", false: "/healthz"}[name == "readiness"]
					if p == nil || p.GRPC != nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS ||
						p.HTTPGet.Path != want || p.HTTPGet.Port.StrVal != "http" {
						t.Errorf("%s probe: with TLS on, want an HTTPS GET of %s on port http", name, want)
					}
					continue
				}
				if p == nil || p.GRPC == nil {
					t.Errorf("%s probe: want a native gRPC probe", name)
					continue
				}
				if p.GRPC.Port != grpcPort {
					t.Errorf("%s probe on port %d, gRPC listens on %d", name, p.GRPC.Port, grpcPort)
				}
				svc := ""
				if p.GRPC.Service != nil {
					svc = *p.GRPC.Service
				}
				if want := map[string]string{"readiness": ""}[name]; name == "readiness" && svc != want ||
					name != "readiness" && svc != liveness {
					t.Errorf("%s probe asks health for %q", name, svc)
				}
			}
			for _, s := range o.services {
				if s.Spec.Selector["app.kubernetes.io/component"] != "gateway" {
					continue // the overlay's Redis
				}
				for _, sp := range s.Spec.Ports {
					if _, ok := ports[sp.TargetPort.StrVal]; !ok {
						t.Errorf("Service %s targets port %q, not a container port", s.Name, sp.TargetPort.String())
					}
					if tlsOn && sp.AppProtocol != nil && *sp.AppProtocol == "kubernetes.io/h2c" {
						t.Errorf("Service %s says cleartext HTTP/2 (h2c), but the gateway speaks TLS", s.Name)
					}
				}
				if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("Service %s selects no gateway pod", s.Name)
				}
			}

			// Files: in mounted Secrets (secrets always) or ConfigMaps, under keys that exist.
			type source struct{ kind, name string }
			mounts := map[string]source{} // mount path -> the Secret or ConfigMap mounted there
			for _, m := range c.VolumeMounts {
				for _, v := range pod.Volumes {
					switch {
					case v.Name != m.Name:
					case v.Secret != nil:
						mounts[m.MountPath] = source{"Secret", v.Secret.SecretName}
					case v.ConfigMap != nil:
						mounts[m.MountPath] = source{"ConfigMap", v.ConfigMap.Name}
					}
				}
			}
			for name, val := range env {
				if !strings.HasSuffix(name, "_FILE") {
					continue
				}
				src, ok := mounts[path.Dir(val)]
				if !ok {
					t.Errorf("%s=%s is not in a mounted Secret or ConfigMap", name, val)
					continue
				}
				if base, _ := strings.CutSuffix(name, "_FILE"); settings[base].secret && src.kind != "Secret" {
					t.Errorf("%s=%s: a secret belongs in a Secret, not %s %s", name, val, src.kind, src.name)
				}
				keys := map[string]bool{}
				if s, ok := o.secrets[src.name]; ok && src.kind == "Secret" {
					for k := range s.Data {
						keys[k] = true
					}
					for k := range s.StringData {
						keys[k] = true
					}
				} else if cm, ok := o.configMaps[src.name]; ok && src.kind == "ConfigMap" {
					for k := range cm.Data {
						keys[k] = true
					}
				} else {
					t.Errorf("%s: %s %s is not in the overlay", name, src.kind, src.name)
					continue
				}
				if !keys[path.Base(val)] {
					t.Errorf("%s: %s %s has no key %q", name, src.kind, src.name, path.Base(val))
				}
			}
			for _, s := range o.secrets {
				for k := range s.Data {
					used := false
					for name, val := range env {
						used = used || strings.HasSuffix(name, "_FILE") && path.Base(val) == k && mounts[path.Dir(val)].name == s.Name
					}
					if !used {
						t.Errorf("Secret %s key %q is read by no setting", s.Name, k)
					}
				}
			}
			if env["KOOPHONE_AUTH_KEYS_FILE"] == "" && env["KOOPHONE_TLS_CLIENT_CA_FILE"] == "" {
				t.Error("no caller authentication: the server refuses a non-loopback address without it")
			}
			_, endpoint := env["KOOPHONE_ENDPOINT"]
			hasCred := env["KOOPHONE_AK_FILE"] != "" && env["KOOPHONE_SK_FILE"] != "" ||
				env["KOOPHONE_AUTH_TOKEN_FILE"] != "" || env["KOOPHONE_IAM_PASSWORD_FILE"] != ""
			if endpoint != hasCred {
				t.Errorf("KOOPHONE_ENDPOINT set: %v, credentials set: %v; the server needs both or neither", endpoint, hasCred)
			}

			// Shutdown: the kubelet's grace outlasts the preStop sleep plus the server's own grace.
			grace := env["KOOPHONE_SHUTDOWN_GRACE"]
			if grace == "" {
				grace = settings["KOOPHONE_SHUTDOWN_GRACE"].def
			}
			g, err := time.ParseDuration(grace)
			if err != nil {
				t.Fatal(err)
			}
			var preStop time.Duration
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= preStop+g {
				t.Errorf("terminationGracePeriodSeconds %v must exceed preStop %v + KOOPHONE_SHUTDOWN_GRACE %v",
					pod.TerminationGracePeriodSeconds, preStop, g)
			}

			// Non-root, read-only, no privilege, no capabilities.
			psc, csc := pod.SecurityContext, c.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
				t.Error("pod must run as a non-root user")
			}
			if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
				csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
				csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
				t.Error("container must drop ALL capabilities, forbid privilege escalation and keep its root filesystem read-only")
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Error("container needs CPU requests and a memory limit")
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("the gateway needs no Kubernetes API token")
			}
			if d.Spec.Template.Annotations["prometheus.io/scrape"] != "true" ||
				d.Spec.Template.Annotations["prometheus.io/port"] != strconv.Itoa(int(httpPort)) {
				t.Error("Prometheus scrape annotations must point at the HTTP port")
			}

			// Every policy object selects the gateway's pods or, in production, Redis's.
			podLabels := labels.Set(d.Spec.Template.Labels)
			owned := func(sel *metav1.LabelSelector) *appsv1.Deployment {
				for _, dep := range o.deployments {
					if s, err := metaSelector(sel); err == nil && s.Matches(labels.Set(dep.Spec.Template.Labels)) {
						return dep
					}
				}
				return nil
			}
			for _, p := range o.pdbs {
				if owned(p.Spec.Selector) == nil {
					t.Errorf("PodDisruptionBudget %s selects no pod", p.Name)
				}
			}
			gatewayPolicy := false
			for _, np := range o.netpols {
				if sel, err := metaSelector(&np.Spec.PodSelector); err == nil && sel.Matches(podLabels) {
					gatewayPolicy = true
				}
			}
			if !gatewayPolicy {
				t.Error("no NetworkPolicy selects the gateway pods")
			}
			for _, h := range o.hpas {
				if h.Spec.ScaleTargetRef.Name != d.Name {
					t.Errorf("HPA %s scales %s", h.Name, h.Spec.ScaleTargetRef.Name)
				}
				// An autoscaled Deployment has no replicas field: every apply would reset the count the HPA chose.
				if d.Spec.Replicas != nil {
					t.Errorf("Deployment %s sets replicas: %d beside HPA %s, which owns the count", d.Name, *d.Spec.Replicas, h.Name)
				}
			}
			checkSpread(t, d)
			for _, dep := range o.deployments {
				for _, k := range dep.Spec.Template.Spec.Containers {
					if err := pinned(k.Image); err != nil {
						t.Errorf("Deployment %s container %s: %v", dep.Name, k.Name, err)
					}
				}
			}
			checkDemoKeys(t, overlay, o)

			switch overlay {
			case "single":
				if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || len(o.hpas) != 0 || endpoint {
					t.Error("single: one replica on the embedded simulator, no autoscaler")
				}
			case "production":
				if env["KOOPHONE_REDIS_URL_FILE"] == "" || !endpoint {
					t.Error("production: KooPhone and Redis")
				}
				if len(o.hpas) != 1 {
					t.Fatal("production: one HPA")
				}
				if owned(o.pdbs[0].Spec.Selector) != d && (len(o.pdbs) < 2 || owned(o.pdbs[1].Spec.Selector) != d) {
					t.Error("production: a PodDisruptionBudget for the gateway")
				}
				if !tlsOn || env["KOOPHONE_TLS_KEY_FILE"] == "" {
					t.Error("production: TLS on both listeners (callers' keys must not travel in clear)")
				}
				if d.Spec.Template.Annotations["prometheus.io/scheme"] != "https" {
					t.Error("production: the metrics are on the TLS port: prometheus.io/scheme: https")
				}
				if strings.HasSuffix(d.Spec.Template.Spec.Containers[0].Image, ":dev") || !strings.Contains(d.Spec.Template.Spec.Containers[0].Image, "/") {
					t.Errorf("production: image %s: a registry's image at a released version", d.Spec.Template.Spec.Containers[0].Image)
				}
				checkRedis(t, o, d)
				// While Redis is down each replica spends 1/KOOPHONE_QUOTA_REPLICAS: never more replicas than that.
				n, _ := strconv.Atoi(env["KOOPHONE_QUOTA_REPLICAS"])
				if n < int(o.hpas[0].Spec.MaxReplicas) {
					t.Errorf("KOOPHONE_QUOTA_REPLICAS=%d < maxReplicas %d: degraded replicas would overspend the quota", n, o.hpas[0].Spec.MaxReplicas)
				}
			}
		})
	}
}

func TestDockerfileRunsAsNonRoot(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := strings.Split(string(b), "\nFROM ")[1:]
	final := map[string]bool{}
	for _, st := range stages {
		name := strings.Fields(strings.SplitN(st, "\n", 2)[0])
		target := name[len(name)-1]
		if target == "build" {
			continue
		}
		final[target] = true
		if !strings.Contains(st, "\nUSER 65532:65532") {
			t.Errorf("stage %s: want USER 65532:65532 (non-root)", target)
		}
		if !strings.Contains(name[0], "distroless/static") && name[0] != "scratch" {
			t.Errorf("stage %s: base %s is neither distroless/static nor scratch", target, name[0])
		}
	}
	if !final["gateway"] || !final["simulator"] {
		t.Errorf("stages %v: want gateway and simulator", final)
	}
	if !strings.Contains(string(b), "-service="+livenessService(t)) {
		t.Error("the HEALTHCHECK must ask gRPC health for the liveness service")
	}
}

// The build stage downloads the modules from the go.mod files alone, before it copies the sources: every module the
// root go.mod replaces with a directory of the repository needs its go.mod there too, or `go mod download` fails.
func TestDockerfileCopiesReplacedModules(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	download := strings.Index(string(df), "RUN go mod download")
	if download < 0 {
		t.Fatal("no `RUN go mod download` in the Dockerfile")
	}
	before := string(df[:download])
	dirs := regexp.MustCompile(`(?m)^replace \S+ => \./(\S+)$`).FindAllStringSubmatch(string(gomod), -1)
	for _, m := range dirs {
		if !regexp.MustCompile(`(?m)^COPY .*\b` + regexp.QuoteMeta(m[1]+"/go.mod") + `\b.* \./` + regexp.QuoteMeta(m[1]) + `/?\n`).MatchString(before) {
			t.Errorf("go.mod replaces a module with ./%s: the Dockerfile must COPY %s/go.mod (and go.sum) into ./%s/ before `go mod download`",
				m[1], m[1], m[1])
		}
	}
	if len(dirs) == 0 {
		t.Log("go.mod replaces no module with a directory")
	}
}

func TestComposeSettings(t *testing.T) {
	settings := serverSettings(t)
	b, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Environment map[string]string `json:"environment"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	gateways := 0
	for name, s := range doc.Services {
		if !strings.HasPrefix(name, "gateway-") {
			continue
		}
		gateways++
		for k := range s.Environment {
			if _, ok := settings[k]; !ok {
				t.Errorf("%s: the server reads no setting %s", name, k)
			}
		}
		if s.Environment["KOOPHONE_REDIS_URL"] == "" || s.Environment["KOOPHONE_QUOTA_REPLICAS"] != "3" {
			t.Errorf("%s: three gateways share Redis and the quota", name)
		}
	}
	if gateways != 3 {
		t.Errorf("%d gateways, want 3", gateways)
	}
	if _, ok := doc.Services["redis"]; !ok {
		t.Error("no redis service")
	}
}

func metaSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(s)
}
