package requestid

import (
	"context"
	"strings"
	"testing"
)

func TestCarriedInContext(t *testing.T) {
	ctx := context.Background()
	if From(ctx) != "" {
		t.Fatal("an empty context carries an id")
	}
	if id := FromOrNew(ctx); len(id) != 36 {
		t.Fatalf("new id %q is not a UUID", id)
	}
	ctx = With(ctx, "abc-1")
	if From(ctx) != "abc-1" || FromOrNew(ctx) != "abc-1" {
		t.Fatalf("From = %q, FromOrNew = %q", From(ctx), FromOrNew(ctx))
	}
}

// A caller's id KooPhone would refuse is replaced, never forwarded.
func TestCallerIDsKooPhoneRefusesAreReplaced(t *testing.T) {
	for _, id := range []string{"caller-id.1:x_y", strings.Repeat("a", 128)} {
		if got := Caller(id); got != id {
			t.Errorf("Caller(%q) = %q, want it kept", id, got)
		}
	}
	for _, id := range []string{"", "not valid", "-leading", strings.Repeat("a", 129), "a\nb"} {
		if got := Caller(id); got == id || len(got) != 36 {
			t.Errorf("Caller(%q) = %q, want a new UUID", id, got)
		}
	}
}

func FuzzCaller(f *testing.F) {
	f.Add("caller-1")
	f.Add("")
	f.Fuzz(func(t *testing.T, id string) {
		if got := Caller(id); !valid.MatchString(got) {
			t.Fatalf("Caller(%q) = %q, which KooPhone refuses", id, got)
		}
	})
}
