package clocktest

import (
	"testing"
	"time"
)

func TestStart(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Setenv(ShiftVariable, "")
	if got := Start(base); !got.Equal(base) {
		t.Fatalf("unset: %v", got)
	}
	t.Setenv(ShiftVariable, "-8760h")
	if got := NewFake(base).Now(); !got.Equal(base.Add(-8760 * time.Hour)) {
		t.Fatalf("a year back: %v", got)
	}
	t.Setenv(ShiftVariable, "a year")
	defer func() {
		if recover() == nil {
			t.Fatal("a malformed shift was ignored")
		}
	}()
	Start(base)
}
