package auth

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// policyFile grants KooPhone actions to principals and groups, in the shape of an IAM policy:
//
//	statements:
//	  - effect: allow
//	    groups: [operators]
//	    actions: ["koophone:cloudphoneResource:query*", "koophone:cloudphoneResource:getInstancePrepareProgress"]
//	  - effect: deny
//	    principals: ["key:ci-bot", "cert:spiffe://example.org/ci"]
//	    actions: ["koophone:cloudphoneResource:instanceCreate"]
//
// A deny beats any allow; what nothing allows is denied, so "statements: []" denies every call. A document
// without a "statements" list does not load.
//
// Principals name where the identity comes from: "key:<principal>" for an API key's principal in the keys file,
// "cert:<identity>" for a verified client certificate's (its SAN or CN). A certificate issued for "alice" is not
// the key holder "alice": whoever can get a certificate signed with some name must not inherit a key's grants.
// Groups come from the keys file only.
type policyFile struct {
	Statements *[]statement `yaml:"statements"`
}

// Principal name prefixes: the namespace of each way to authenticate.
const (
	KeyPrefix  = "key:"
	CertPrefix = "cert:"
)

type statement struct {
	Effect     string   `yaml:"effect"`
	Principals []string `yaml:"principals"` // "key:<name>", "cert:<identity>", or "*": every authenticated caller
	Groups     []string `yaml:"groups"`
	Actions    []string `yaml:"actions"` // exact names, or patterns with * (koophone:*, koophone:cloudphoneResource:query*)
}

// Policy is a parsed policy file.
type Policy struct{ statements []statement }

var validActionPattern = regexp.MustCompile(`^[A-Za-z0-9:*]{1,128}$`)

// ParsePolicy reads a policy file (YAML or JSON). Every action pattern must match at least one KooPhone action, so
// a typo fails at load instead of silently granting nothing.
func ParsePolicy(b []byte) (*Policy, error) {
	var f policyFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a policy file (YAML or JSON with a \"statements\" list): %w", err)
	}
	if f.Statements == nil {
		return nil, errors.New(`no "statements" list (write "statements: []" to deny every call)`)
	}
	known := knownActions()
	for i, s := range *f.Statements {
		if s.Effect != "allow" && s.Effect != "deny" {
			return nil, fmt.Errorf("statements[%d].effect %q: must be allow or deny", i, s.Effect)
		}
		if len(s.Principals)+len(s.Groups) == 0 {
			return nil, fmt.Errorf("statements[%d]: names no principals and no groups", i)
		}
		for _, p := range s.Principals {
			if err := checkPrincipal(p); err != nil {
				return nil, fmt.Errorf("statements[%d].principals: %w", i, err)
			}
		}
		for _, g := range s.Groups {
			if g != "*" && !validName.MatchString(g) {
				return nil, fmt.Errorf("statements[%d].groups: %q is not a valid group name", i, g)
			}
		}
		if len(s.Actions) == 0 {
			return nil, fmt.Errorf("statements[%d].actions: empty", i)
		}
		for _, a := range s.Actions {
			if !validActionPattern.MatchString(a) {
				return nil, fmt.Errorf("statements[%d].actions: %q may hold only letters, digits, : and *", i, a)
			}
			if !slices.ContainsFunc(known, func(k string) bool { return actionMatch(a, k) }) {
				return nil, fmt.Errorf("statements[%d].actions: %q matches no KooPhone action (e.g. %s)", i, a, ActionList)
			}
		}
	}
	return &Policy{statements: *f.Statements}, nil
}

// checkPrincipal accepts "*" and namespaced names: key:<keys file principal> or cert:<certificate identity>.
func checkPrincipal(p string) error {
	if p == "*" {
		return nil
	}
	name, ok := strings.CutPrefix(p, KeyPrefix)
	if !ok {
		name, ok = strings.CutPrefix(p, CertPrefix)
	}
	if !ok {
		return fmt.Errorf("%q must say where the identity comes from: %s%s for an API key's principal, %s%s for a client certificate's", p, KeyPrefix, p, CertPrefix, p)
	}
	if !validName.MatchString(name) {
		return fmt.Errorf("%q is not a valid principal name", p)
	}
	return nil
}

// Allows reports whether the policy lets principal (member of groups) perform action.
func (p *Policy) Allows(principal string, groups []string, action string) bool {
	allowed := false
	for _, s := range p.statements {
		if !s.names(principal, groups) || !slices.ContainsFunc(s.Actions, func(a string) bool { return actionMatch(a, action) }) {
			continue
		}
		if s.Effect == "deny" {
			return false
		}
		allowed = true
	}
	return allowed
}

func (s statement) names(principal string, groups []string) bool {
	if slices.Contains(s.Principals, "*") || slices.Contains(s.Principals, principal) {
		return true
	}
	return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(s.Groups, g) })
}

// actionMatch matches an action against a pattern where * stands for any run of characters. Action names hold no
// '/', so path.Match's * (any run of non-'/') is exactly that; the pattern's charset rules out its other syntax.
// It runs for every statement naming the caller on every call, so it does path.Match's work without its general
// machinery (~10x faster: exact names are one comparison, a pattern is a prefix, a suffix and the pieces between
// in order); anything outside that charset goes to path.Match. FuzzActionMatch holds the two to the same answers.
func actionMatch(pattern, action string) bool {
	i := strings.IndexByte(pattern, '*')
	if i < 0 {
		return pattern == action
	}
	if strings.ContainsAny(pattern, `?[\/`) || strings.IndexByte(action, '/') >= 0 {
		ok, err := path.Match(pattern, action)
		return err == nil && ok
	}
	j := strings.LastIndexByte(pattern, '*')
	prefix, suffix := pattern[:i], pattern[j+1:]
	if len(action) < len(prefix)+len(suffix) || !strings.HasPrefix(action, prefix) || !strings.HasSuffix(action, suffix) {
		return false
	}
	// Between the first and the last *, each piece in order, leftmost first (a * before it can absorb anything).
	rest := action[len(prefix) : len(action)-len(suffix)]
	for mid := pattern[i+1 : j+1]; mid != ""; {
		k := strings.IndexByte(mid, '*')
		piece := mid[:k]
		mid = mid[k+1:]
		n := strings.Index(rest, piece)
		if n < 0 {
			return false
		}
		rest = rest[n+len(piece):]
	}
	return true
}

// knownActions lists every action of the RPC table.
func knownActions() []string {
	var out []string
	for _, r := range Rules {
		out = append(out, r.Actions...)
	}
	return append(out, ActionAssign) // OpenSession's extra, in case no RPC listed it
}
