package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// pinned refuses an image reference that may change under the same name: untagged, latest, or a floating tag such
// as 7-alpine. A registry's image needs a full version (1.2.3…) or a digest; the project's own images built on the
// machine that runs them (koophone-gateway:dev, by `make image`, docker build or compose) only a tag.
func pinned(ref string) error {
	name, digest, _ := strings.Cut(ref, "@")
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	local := name == "koophone-gateway" || name == "koophone-sim"
	switch {
	case tag == "" && digest == "":
		return fmt.Errorf("image %q has neither tag nor digest: pin a version", ref)
	case tag == "latest":
		return fmt.Errorf("image %q: latest moves; pin a version (and its digest)", ref)
	case !local && digest == "" && !regexp.MustCompile(`^v?\d+\.\d+\.\d+`).MatchString(tag):
		return fmt.Errorf("image %q: tag %q moves with every release; pin a full version (and its digest)", ref, tag)
	}
	return nil
}

func TestPinnedRefusesFloatingImages(t *testing.T) {
	for ref, ok := range map[string]bool{
		"koophone-gateway": false, "koophone-gateway:latest": false, "registry.example.com:5000/koophone-gateway": false,
		"redis:7-alpine": false, "redis:7": false, "registry.example.com/koophone-gateway:dev": false,
		"koophone-gateway:dev": true, "redis:7.4.2-alpine": true, "registry.example.com:5000/koophone-gateway:1.0.0": true,
		"redis@sha256:0123": true, "redis:7.4.2-alpine@sha256:0123": true,
	} {
		if err := pinned(ref); (err == nil) != ok {
			t.Errorf("pinned(%q) = %v", ref, err)
		}
	}
}

// checkSpread: the gateway's replicas spread over zones and nodes, counting only their own pods.
func checkSpread(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	keys := map[string]bool{}
	for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("topology spread over %s counts other pods than the gateway's", c.TopologyKey)
			continue
		}
		keys[c.TopologyKey] = true
	}
	if !keys["topology.kubernetes.io/zone"] || !keys["kubernetes.io/hostname"] {
		t.Errorf("the gateway's pods spread over %v; want zones and nodes (topology.kubernetes.io/zone, kubernetes.io/hostname)", keys)
	}
}

// demoHashes are the SHA-256 hashes of docs/auth/keys.example.yaml, whose keys the README publishes.
func demoHashes(t *testing.T) [][]byte {
	t.Helper()
	b, err := os.ReadFile("../docs/auth/keys.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range regexp.MustCompile(`sha256: ([0-9a-f]{64})`).FindAllSubmatch(b, -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatal("docs/auth/keys.example.yaml lists no sha256")
	}
	return out
}

// checkDemoKeys: the demo keys are in the single overlay only, as copies of the documented example files; no other
// overlay carries one of their hashes.
func checkDemoKeys(t *testing.T, overlay string, o objects) {
	t.Helper()
	var all [][]byte
	for _, s := range o.secrets {
		for _, v := range s.Data {
			all = append(all, v)
		}
	}
	for _, cm := range o.configMaps {
		for _, v := range cm.Data {
			all = append(all, []byte(v))
		}
	}
	demo := false
	for _, h := range demoHashes(t) {
		for _, v := range all {
			demo = demo || bytes.Contains(v, h)
		}
	}
	switch {
	case overlay == "single" && !demo:
		t.Error("single: the demo keys the README documents are not in the overlay")
	case overlay != "single" && demo:
		t.Errorf("%s: carries a demo key's hash (docs/auth/keys.example.yaml); demo keys belong in the single overlay only", overlay)
	}
	if overlay != "single" {
		return
	}
	for copyPath, doc := range map[string]string{
		"kustomize/overlays/single/auth/keys.yaml": "../docs/auth/keys.example.yaml", "kustomize/overlays/single/auth/policy.yaml": "../docs/auth/policy.example.yaml",
	} {
		a, err1 := os.ReadFile(copyPath)
		b, err2 := os.ReadFile(doc)
		if err := errors.Join(err1, err2); err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s must be a copy of %s (kustomize reads no file outside the overlay): %v", copyPath, doc, err)
		}
	}
}

// checkRedis: production's Redis never evicts, is watched, has a budget that says it is one pod, and admits the
// gateway's pods, and only them, on its port.
func checkRedis(t *testing.T, o objects, gw *appsv1.Deployment) {
	t.Helper()
	var redis *appsv1.Deployment
	for _, d := range o.deployments {
		if d != gw {
			redis = d
		}
	}
	if redis == nil {
		t.Fatal("production: no Redis Deployment")
	}
	rl := labels.Set(redis.Spec.Template.Labels)
	gl := labels.Set(gw.Spec.Template.Labels)
	c := redis.Spec.Template.Spec.Containers[0]
	if i := slices.Index(c.Args, "--maxmemory-policy"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != "noeviction" {
		t.Errorf("Redis args %q: --maxmemory-policy noeviction (an evicted idempotency key lets a write run twice)", c.Args)
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Error("Redis needs a liveness and a readiness probe")
	}
	pdb := false
	for _, p := range o.pdbs {
		if sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector); err == nil && sel.Matches(rl) {
			pdb = true
			// One pod: minAvailable 1 (or maxUnavailable 0) would block every node drain forever.
			if p.Spec.MinAvailable != nil || p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() < 1 {
				t.Errorf("PodDisruptionBudget %s would block node drains for a single Redis pod: want maxUnavailable: 1", p.Name)
			}
		}
	}
	if !pdb {
		t.Error("no PodDisruptionBudget for Redis (say what one pod may do: maxUnavailable: 1)")
	}
	// A pod of another app that happens to carry the same component label must not be selected or admitted.
	stranger := labels.Set{"app.kubernetes.io/component": gl["app.kubernetes.io/component"]}
	redisStranger := labels.Set{"app.kubernetes.io/component": rl["app.kubernetes.io/component"]}
	for _, s := range o.services {
		if sel := labels.SelectorFromSet(s.Spec.Selector); sel.Matches(rl) && sel.Matches(redisStranger) {
			t.Errorf("Service %s selects any pod labelled component=%s, not only this Redis", s.Name, rl["app.kubernetes.io/component"])
		}
	}
	admitted, gwEgress := false, false
	for _, np := range o.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Matches(rl) {
			for _, in := range np.Spec.Ingress {
				for _, from := range in.From {
					fs, err := metav1.LabelSelectorAsSelector(from.PodSelector)
					if err != nil {
						continue
					}
					admitted = admitted || fs.Matches(gl)
					if fs.Matches(stranger) {
						t.Errorf("NetworkPolicy %s admits any pod labelled component=%s to Redis", np.Name, stranger["app.kubernetes.io/component"])
					}
				}
			}
		}
		if sel.Matches(gl) {
			for _, eg := range np.Spec.Egress {
				for _, to := range eg.To {
					if ts, err := metav1.LabelSelectorAsSelector(to.PodSelector); err == nil && ts.Matches(rl) {
						gwEgress = true
					}
				}
			}
		}
	}
	if !admitted {
		t.Errorf("no NetworkPolicy admits the gateway's pods (%v) to Redis", gl)
	}
	if !gwEgress {
		t.Errorf("the gateway's NetworkPolicy lets its pods reach no Redis pod (%v)", rl)
	}
}

// Compose's images are pinned too (those it builds carry their own tag), and pull nothing floating.
func TestComposeImagesPinned(t *testing.T) {
	for name, s := range readCompose(t).Services {
		if s.Image == "" {
			t.Errorf("%s: no image", name)
			continue
		}
		if err := pinned(s.Image); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// make image and deploy/Dockerfile build the same grpc-health-probe.
func TestHealthProbeVersionsAgree(t *testing.T) {
	mk, err1 := os.ReadFile("../Makefile")
	df, err2 := os.ReadFile("Dockerfile")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^GRPC_HEALTH_PROBE_VERSION\s*:=\s*(\S+)`).FindSubmatch(mk)
	d := regexp.MustCompile(`grpc-health-probe@(\S+)`).FindSubmatch(df)
	if m == nil || d == nil || !bytes.Equal(m[1], d[1]) {
		t.Errorf("grpc-health-probe: Makefile %q, Dockerfile %q", m, d)
	}
}
