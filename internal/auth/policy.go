package auth

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"

	"go.yaml.in/yaml/v3"
)

// policyFile grants KooPhone actions to principals and groups, in the shape of an IAM policy:
//
//	statements:
//	  - effect: allow
//	    groups: [operators]
//	    actions: ["koophone:cloudphoneResource:query*", "koophone:cloudphoneResource:getInstancePrepareProgress"]
//	  - effect: deny
//	    principals: [ci-bot]
//	    actions: ["koophone:cloudphoneResource:instanceCreate"]
//
// A deny beats any allow; what nothing allows is denied.
type policyFile struct {
	Statements []statement `yaml:"statements"`
}

type statement struct {
	Effect     string   `yaml:"effect"`
	Principals []string `yaml:"principals"` // "*" is every authenticated caller
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
	if len(f.Statements) == 0 {
		return nil, errors.New(`"statements" is empty: every call would be denied`)
	}
	known := knownActions()
	for i, s := range f.Statements {
		if s.Effect != "allow" && s.Effect != "deny" {
			return nil, fmt.Errorf("statements[%d].effect %q: must be allow or deny", i, s.Effect)
		}
		if len(s.Principals)+len(s.Groups) == 0 {
			return nil, fmt.Errorf("statements[%d]: names no principals and no groups", i)
		}
		for _, p := range append(slices.Clone(s.Principals), s.Groups...) {
			if p != "*" && !validName.MatchString(p) {
				return nil, fmt.Errorf("statements[%d]: %q is not a valid principal or group name", i, p)
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
	return &Policy{statements: f.Statements}, nil
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
func actionMatch(pattern, action string) bool {
	ok, err := path.Match(pattern, action)
	return err == nil && ok
}

// knownActions lists every action of the RPC table.
func knownActions() []string {
	var out []string
	for _, r := range Rules {
		out = append(out, r.Actions...)
	}
	return append(out, ActionAssign) // OpenSession's extra, in case no RPC listed it
}
