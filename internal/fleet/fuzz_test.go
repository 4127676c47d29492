package fleet

import (
	"testing"
)

// FuzzParseCursor: a cursor comes from the caller, so any string must either decode to a position inside the
// listing or be refused with ErrBadCursor; nothing panics.
//
//	go test -run '^$' -fuzz FuzzParseCursor -fuzztime 30s ./internal/fleet/
func FuzzParseCursor(f *testing.F) {
	sel := Selector{Filter: &Filter{All: true}}
	good := Cursor{Page: 3, Index: 17, PageSize: 100, selector: sel.key()}.String()
	for _, s := range []string{"", good, "YzEuYWJjLjEwMC4xLjA", "not base64!", good + "A", "YzEuLi4uLg"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s, sel, 100)
		if err != nil {
			if err != ErrBadCursor {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if c.Page < 1 || c.Index < 0 || c.PageSize != 100 {
			t.Fatalf("%q decoded to %+v", s, c)
		}
		if again, err := parseCursor(c.String(), sel, 100); err != nil || again != c {
			t.Fatalf("%q: %+v does not round-trip: %+v %v", s, c, again, err)
		}
	})
}
