package stream

import (
	"context"
	"errors"
	"testing"
)

// A replica polls at most MaxPollers keys: a new key beyond that is refused, a key already polled still joins,
// and a slot freed by the last watcher leaving is usable again.
func TestMaxPollersCapsNewKeysOnly(t *testing.T) {
	h, _ := newHub(t, Config{MaxPollers: 2})
	src := newSource(val{N: 1})
	ctx := context.Background()
	a, err := h.Watch(ctx, Key{"id", "task", "a"}, src.source())
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Watch(ctx, Key{"id", "task", "b"}, src.source())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := h.Watch(ctx, Key{"id", "task", "c"}, src.source()); !errors.Is(err, ErrTooManyPollers) {
		t.Fatalf("third key: err = %v, want ErrTooManyPollers", err)
	}
	again, err := h.Watch(ctx, Key{"id", "task", "a"}, src.source())
	if err != nil {
		t.Fatalf("joining a polled key at the cap: %v", err)
	}
	again.Close()
	a.Close()
	c, err := h.Watch(ctx, Key{"id", "task", "c"}, src.source())
	if err != nil {
		t.Fatalf("after a slot freed: %v", err)
	}
	c.Close()
}
