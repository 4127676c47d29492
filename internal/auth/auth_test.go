package auth

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth/authtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Method-name prefixes for the tests' own calls.
const (
	instanceSvc = "/koophone.v1.InstanceService/"
	orderSvc    = "/koophone.v1.OrderService/"
	appSvc      = "/koophone.v1.AppService/"
	fleetSvc    = "/koophone.v1.FleetService/"
)

// Every RPC of the contract has a row in the action table, every row names a real RPC, and every action is one of
// KooPhone's (the seed's table of koophone:cloudphoneResource:* actions).
func TestRulesCoverTheContract(t *testing.T) {
	seen := map[string]bool{}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if fd.Package() != "koophone.v1" {
			return true
		}
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				name := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name())
				seen[name] = true
				r, ok := Rules[name]
				if !ok {
					t.Errorf("%s has no row in auth.Rules", name)
					continue
				}
				if len(r.Actions) == 0 {
					t.Errorf("%s needs no action", name)
				}
			}
		}
		return true
	})
	_ = pb.File_koophone_v1_instance_service_proto
	if len(seen) == 0 {
		t.Fatal("no koophone.v1 services registered")
	}
	for name, r := range Rules {
		if !seen[name] {
			t.Errorf("auth.Rules lists %s, which the contract lacks", name)
		}
		for _, a := range r.Actions {
			if !strings.HasPrefix(a, "koophone:cloudphoneResource:") {
				t.Errorf("%s: %q is not a KooPhone action", name, a)
			}
		}
	}
}

// OpenSession needs assign only when it asks to assign.
func TestOpenSessionExtraAction(t *testing.T) {
	r := Rules[instanceSvc+"OpenSession"]
	if got := r.Extra(&pb.OpenSessionRequest{Assign: true}); !slices.Equal(got, []string{ActionAssign}) {
		t.Errorf("with assign: %v", got)
	}
	if got := r.Extra(&pb.OpenSessionRequest{}); got != nil {
		t.Errorf("without assign: %v", got)
	}
}

const testPolicy = `
statements:
  - effect: allow
    groups: [operators]
    actions: ["koophone:*"]
  - effect: deny
    groups: [operators]
    actions: ["koophone:cloudphoneResource:instanceCreate", "koophone:cloudphoneResource:instanceDelete"]
  - effect: allow
    principals: ["key:reader"]
    actions: ["koophone:cloudphoneResource:query*", "koophone:cloudphoneResource:getInstancePrepareProgress"]
  - effect: allow
    principals: ["*"]
    actions: [koophone:cloudphoneResource:queryInstanceSku]
`

func TestPolicyEvaluation(t *testing.T) {
	p, err := ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who    string
		groups []string
		action string
		want   bool
	}{
		{"key:ops1", []string{"operators"}, ActionReset, true},
		{"key:ops1", []string{"operators"}, ActionCreate, false}, // explicit deny beats koophone:*
		{"key:ops1", []string{"operators"}, ActionDelete, false},
		{"key:reader", nil, ActionList, true}, // query* wildcard
		{"key:reader", nil, ActionQueryJob, true},
		{"key:reader", nil, ActionPrepareProgress, true},
		{"key:reader", nil, ActionReset, false}, // deny by default
		{"cert:reader", nil, ActionList, false}, // a certificate naming "reader" is not the key holder
		{"key:stranger", nil, ActionQuerySku, true},
		{"key:stranger", nil, ActionList, false},
		{"key:reader", []string{"nobody"}, ActionSyncCommand, false},
	} {
		if got := p.Allows(c.who, c.groups, c.action); got != c.want {
			t.Errorf("%s %v %s: %v, want %v", c.who, c.groups, c.action, got, c.want)
		}
	}
}

func TestPolicyRejectsMistakes(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{`statements: [{effect: permit, principals: ["key:a"], actions: ["koophone:*"]}]`, "allow or deny"},
		{`statements: [{effect: allow, actions: ["koophone:*"]}]`, "no principals"},
		{`statements: [{effect: allow, principals: ["key:a"], actions: ["koophone:cloudphoneResource:instanceCreat"]}]`, "matches no KooPhone action"},
		{`statements: [{effect: allow, principals: ["key:a"], actions: ["koophone:[a-z]"]}]`, "may hold only"},
		{`statements: [{effect: allow, principals: ["key:a b"], actions: ["koophone:*"]}]`, "not a valid"},
		{`statements: [{effect: allow, principals: [alice], actions: ["koophone:*"]}]`, "key:alice for an API key"},
		{`statements: [{effect: allow, groups: ["a b"], actions: ["koophone:*"]}]`, "not a valid group"},
		{`statments: []`, "not a policy file"},
		{`statements:`, "no \"statements\" list"},
		{``, "not a policy file"},
	} {
		_, err := ParsePolicy([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.doc, err, c.want)
		}
	}
}

func TestKeysParseAndExpire(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	doc := `{"keys": [
		{"principal": "ci-bot", "sha256": "` + HashKey("k1") + `", "groups": ["operators"]},
		{"principal": "old", "sha256": "` + HashKey("k2") + `", "expires": "2029-12-31T23:59:59Z"}]}`
	set, err := parseKeys([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := set.lookup("k1", now); err != nil || e.Principal != "ci-bot" || !slices.Equal(e.Groups, []string{"operators"}) {
		t.Errorf("k1: %+v %v", e, err)
	}
	if _, err := set.lookup("k2", now); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired key: %v", err)
	}
	if _, err := set.lookup("k3", now); err == nil {
		t.Error("unknown key accepted")
	}
	if set, err := parseKeys([]byte(`keys: []`)); err != nil || len(set) != 0 {
		t.Errorf("keys: [] is a keys file listing no key: %v %v", set, err)
	}
	for _, c := range []struct{ doc, want string }{
		{`keys: [{principal: a, sha256: "k1"}]`, "64 lower-case hex"},
		{`keys: [{principal: "", sha256: "` + HashKey("x") + `"}]`, "principal"},
		{`keys: [{principal: a, sha256: "` + HashKey("x") + `"}, {principal: b, sha256: "` + HashKey("x") + `"}]`, "twice"},
		{`keys: [{principal: a, key: "plain", sha256: "` + HashKey("x") + `"}]`, "not a keys file"},
		{`keys:`, "no \"keys\" list"},
		{`{}`, "no \"keys\" list"},
		{``, "not a keys file"},
	} {
		_, err := parseKeys([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.doc, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), HashKey("x")) {
			t.Errorf("error shows a key hash: %v", err)
		}
	}
}

func TestCertIdentity(t *testing.T) {
	ca := authtest.NewCA(t)
	if name, err := CertIdentity(ca.Client(t, "billing-svc").Cert); err != nil || name != "billing-svc" {
		t.Errorf("CN identity: %q %v", name, err)
	}
	if _, err := CertIdentity(ca.Client(t, "evil\x1b[2J").Cert); err == nil {
		t.Error("a CN with a terminal escape became a principal")
	}
	if name, err := CertIdentity(ca.Server(t).Cert); err != nil || name != "localhost" {
		t.Errorf("DNS SAN identity: %q %v", name, err)
	}
}

// Operators' files are input too: no panic on any of them.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(testPolicy))
	f.Add([]byte(`{"statements":[{"effect":"deny","principals":["*"],"actions":["koophone:*"]}]}`))
	f.Add([]byte(`statements: [{effect: allow, principals: ["cert:spiffe://x/y"], groups: [g], actions: ["koophone:*"]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err == nil {
			p.Allows("key:a", []string{"g"}, ActionList)
		}
	})
}

func FuzzParseKeys(f *testing.F) {
	f.Add([]byte(`keys: [{principal: a, sha256: "` + HashKey("one") + `", groups: [g], expires: 2030-01-01T00:00:00Z}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if set, err := parseKeys(b); err == nil {
			_, _ = set.lookup("one", time.Now())
		}
	})
}
