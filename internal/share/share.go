// Package share gives each caller (principal) its own share of the gateway, so one caller's flood cannot take it
// from the others: requests per second, unary calls in flight, streams open and fleet runs in flight, each
// configurable for everyone (the config table's defaults), per group and per principal (a small YAML file).
//
// The interceptors go right after auth.Guard, which names the principal: a refusal is
// RESOURCE_EXHAUSTED with RetryInfo and an ErrorInfo reason naming the limit (PRINCIPAL_RATE_LIMITED,
// PRINCIPAL_CONCURRENCY_LIMITED, PRINCIPAL_STREAM_LIMITED). They also mark every call with its principal as the
// fairness key of the upstream quota's fair queue (internal/upstream), which shares what KooPhone allows among the
// callers that want it.
package share

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"

	"go.yaml.in/yaml/v3"
)

// Limits is a share. A zero value of a field means unlimited.
type Limits struct {
	RequestsPerSecond   float64 // calls started per second (unary calls and stream opens); bursts of Burst
	Burst               int     // default: RequestsPerSecond rounded up, at least 1 (also where a rate is set without one)
	ConcurrentCalls     int     // unary calls in flight
	OpenStreams         int     // streams open (watches, sessions, RunAsyncCommand, ListAllInstances)
	ConcurrentFleetRuns int     // fleet runs in flight (RunFleetCommand, ResetFleet…)
}

// limited reports whether l limits anything.
func (l Limits) limited() bool { return l != Limits{} }

// Config says what the shares are.
type Config struct {
	Defaults Limits // everyone's, from the config table
	File     string // optional overrides per group and per principal (see parseFile); read once at start
	// Limiter keeps the requests_per_second buckets, keyed by principal. Default: Local, this replica's own;
	// internal/server plugs in the Redis one when the replicas share Redis.
	Limiter RateLimiter
}

// override is one entry of the shares file: nil fields inherit.
type override struct {
	RequestsPerSecond   *float64 `yaml:"requests_per_second"`
	Burst               *int     `yaml:"burst"`
	ConcurrentCalls     *int     `yaml:"concurrent_calls"`
	OpenStreams         *int     `yaml:"open_streams"`
	ConcurrentFleetRuns *int     `yaml:"concurrent_fleet_runs"`
}

// file is the shares file (YAML, or JSON, which YAML reads too):
//
//	defaults:            # replaces the config table's defaults, field by field
//	  open_streams: 1000
//	groups:              # a caller in several groups gets the most generous value of each field
//	  operators: {requests_per_second: 200, concurrent_fleet_runs: 4}
//	principals:          # beats its groups and the defaults, field by field; 0 is unlimited
//	  ci-bot: {requests_per_second: 10, concurrent_calls: 8, open_streams: 50}
type file struct {
	Defaults   override            `yaml:"defaults"`
	Groups     map[string]override `yaml:"groups"`
	Principals map[string]override `yaml:"principals"`
}

// table is the parsed configuration: who gets what.
type table struct {
	defaults   Limits
	groups     map[string]override
	principals map[string]override
}

func load(cfg Config) (*table, error) {
	if err := check("defaults", cfg.Defaults); err != nil {
		return nil, err
	}
	t := &table{defaults: cfg.Defaults}
	if cfg.File == "" {
		return t, nil
	}
	b, err := os.ReadFile(cfg.File)
	if err != nil {
		return nil, fmt.Errorf("shares file: %w", err)
	}
	f, err := parseFile(b)
	if err != nil {
		return nil, fmt.Errorf("shares file %s: %w", cfg.File, err)
	}
	t.defaults = f.Defaults.apply(t.defaults)
	t.groups, t.principals = f.Groups, f.Principals
	return t, nil
}

func parseFile(b []byte) (*file, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, errEOF) {
		return nil, fmt.Errorf("not a shares file (YAML or JSON with defaults, groups, principals): %w", err)
	}
	if err := f.Defaults.check("defaults"); err != nil {
		return nil, err
	}
	for _, section := range []struct {
		name string
		m    map[string]override
	}{{"groups", f.Groups}, {"principals", f.Principals}} {
		names := make([]string, 0, len(section.m))
		for n := range section.m {
			names = append(names, n)
		}
		sort.Strings(names) // the first error is the same on every run
		for _, n := range names {
			if n == "" || len(n) > 128 {
				return nil, fmt.Errorf("%s: %q is not a name (1-128 characters)", section.name, n)
			}
			o := section.m[n]
			if err := o.check(section.name + "." + n); err != nil {
				return nil, err
			}
		}
	}
	return &f, nil
}

// errEOF is what an empty document decodes to: no overrides.
var errEOF = func() error {
	var v any
	return yaml.NewDecoder(bytes.NewReader(nil)).Decode(&v)
}()

func (o override) check(where string) error {
	neg := func(field string, bad bool) error {
		if bad {
			return fmt.Errorf("%s.%s: must not be negative", where, field)
		}
		return nil
	}
	return errors.Join(
		neg("requests_per_second", o.RequestsPerSecond != nil && (*o.RequestsPerSecond < 0 || math.IsNaN(*o.RequestsPerSecond) || math.IsInf(*o.RequestsPerSecond, 0))),
		neg("burst", o.Burst != nil && *o.Burst < 0),
		neg("concurrent_calls", o.ConcurrentCalls != nil && *o.ConcurrentCalls < 0),
		neg("open_streams", o.OpenStreams != nil && *o.OpenStreams < 0),
		neg("concurrent_fleet_runs", o.ConcurrentFleetRuns != nil && *o.ConcurrentFleetRuns < 0),
	)
}

func check(where string, l Limits) error {
	return override{&l.RequestsPerSecond, &l.Burst, &l.ConcurrentCalls, &l.OpenStreams, &l.ConcurrentFleetRuns}.check(where)
}

// apply returns l with o's set fields.
func (o override) apply(l Limits) Limits {
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	if o.RequestsPerSecond != nil {
		l.RequestsPerSecond = *o.RequestsPerSecond
		l.Burst = 0 // a burst belongs with its rate: one set without it gets its own rounded up
	}
	set(&l.Burst, o.Burst)
	set(&l.ConcurrentCalls, o.ConcurrentCalls)
	set(&l.OpenStreams, o.OpenStreams)
	set(&l.ConcurrentFleetRuns, o.ConcurrentFleetRuns)
	return l
}

// moreGenerous is the more generous of two settings: nil is unset, and 0 (unlimited) beats any number.
func moreGenerous[T int | float64](x, y *T) *T {
	switch {
	case x == nil:
		return y
	case y == nil:
		return x
	case *x == 0 || *y == 0:
		var z T
		return &z
	case *y > *x:
		return y
	}
	return x
}

// generous merges the group overrides a caller has: for each field, the most generous value set (0 is
// unlimited, so it wins).
func generous(a, b override) override {
	return override{
		RequestsPerSecond:   moreGenerous(a.RequestsPerSecond, b.RequestsPerSecond),
		Burst:               moreGenerous(a.Burst, b.Burst),
		ConcurrentCalls:     moreGenerous(a.ConcurrentCalls, b.ConcurrentCalls),
		OpenStreams:         moreGenerous(a.OpenStreams, b.OpenStreams),
		ConcurrentFleetRuns: moreGenerous(a.ConcurrentFleetRuns, b.ConcurrentFleetRuns),
	}
}

// limitsFor resolves a caller's share: defaults, then its groups' (most generous), then its own entry.
func (t *table) limitsFor(principal string, groups []string) Limits {
	l := t.defaults
	var g override
	for _, name := range groups {
		if o, ok := t.groups[name]; ok {
			g = generous(g, o)
		}
	}
	l = g.apply(l)
	if o, ok := t.principals[principal]; ok {
		l = o.apply(l)
	}
	if l.RequestsPerSecond > 0 && l.Burst <= 0 {
		l.Burst = max(1, int(math.Ceil(l.RequestsPerSecond)))
	}
	return l
}

// anyLimits reports whether anyone has a share at all; without, the interceptors only mark the fairness key.
func (t *table) anyLimits() bool {
	if t.defaults.limited() {
		return true
	}
	for _, m := range []map[string]override{t.groups, t.principals} {
		for _, o := range m {
			if o.apply(Limits{}).limited() {
				return true
			}
		}
	}
	return false
}
