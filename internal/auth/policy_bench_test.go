package auth

import (
	"fmt"
	"path"
	"strings"
	"testing"
)

// benchPolicy is shaped like a shared gateway's (loadbench's production dress): 40 statements, most naming
// others, the caller named by its groups and its principal in a few, with exact names and patterns.
func benchPolicy(tb testing.TB) *Policy {
	tb.Helper()
	const res = "koophone:cloudphoneResource:"
	var b strings.Builder
	b.WriteString("statements:\n")
	stmt := func(effect, who string, actions ...string) {
		fmt.Fprintf(&b, "  - effect: %s\n    %s\n    actions: [%q", effect, who, actions[0])
		for _, a := range actions[1:] {
			fmt.Fprintf(&b, ", %q", a)
		}
		b.WriteString("]\n")
	}
	stmt("allow", "groups: [operators]", "koophone:*")
	stmt("deny", "groups: [operators]", res+"instanceCreate", res+"instanceDelete", res+"*InvokeInstance")
	for i := range 30 {
		stmt("allow", fmt.Sprintf("principals: [\"key:svc-%02d\"]", i), res+"instanceAssign", res+"query*")
	}
	stmt("deny", "groups: [readers]", res+"instanceCreate", res+"instanceDelete", res+"*Reset*")
	stmt("allow", "groups: [readers]", res+"query*", res+"getInstancePrepareProgress")
	stmt("deny", "groups: [bench]", res+"*InvokeInstance", res+"instanceReboot")
	stmt("allow", "principals: [\"key:loadbench\", \"cert:loadbench.bench.internal\"]", res+"queryBatchShowInstance", res+"queryExecuteJob")
	p, err := ParsePolicy([]byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// The policy's cost on a call: BatchQueryStatus's action for a key holder in two groups.
func BenchmarkPolicyAllows(b *testing.B) {
	p := benchPolicy(b)
	groups := []string{"readers", "bench"}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Allows("key:loadbench", groups, ActionQueryStatus) {
			b.Fatal("denied")
		}
	}
}

// actionMatch answers as path.Match does, for every pattern a policy may hold and any action.
func FuzzActionMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"koophone:*", ActionQueryStatus}, {"koophone:cloudphoneResource:query*", ActionQueryStatus},
		{"koophone:cloudphoneResource:*InvokeInstance", ActionAsyncCommand}, {"*Reset*", ActionReset},
		{"a*b*c", "abc"}, {"a*b*c", "ab"}, {"*a*a*", "aa"}, {"a*a", "a"}, {"**", ""}, {"x", "x/y"}, {"x*", "x/y"},
		{"*", "a/b"}, {"a*", "a:b:c"}, {"abc", "abcd"}, {"*bc*bc", "bcbc"}, {"*bc*bc", "bcb"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, action string) {
		if !validActionPattern.MatchString(pattern) {
			return // ParsePolicy refuses it
		}
		want, err := path.Match(pattern, action)
		if err != nil {
			want = false
		}
		if got := actionMatch(pattern, action); got != want {
			t.Errorf("actionMatch(%q, %q) = %v, path.Match says %v", pattern, action, got, want)
		}
	})
}
