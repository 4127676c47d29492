package idempotency

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
)

// The memory store holds at most max keys, whether they arrive by Claim or by Put (an outcome recorded for a key
// evicted meanwhile).
func TestMemoryStaysWithinItsBound(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(clocktest.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), 3)
	for i := range 5 {
		if _, _, err := m.Claim(ctx, fmt.Sprint("claimed-", i), Record{}, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := m.Put(ctx, fmt.Sprint("put-", i), Record{}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.order.Len(); n != 3 || len(m.items) != 3 {
		t.Fatalf("store holds %d keys (%d in the index), want 3", n, len(m.items))
	}
	if _, ok, _ := m.Get(ctx, "put-4"); !ok {
		t.Error("the newest key was evicted")
	}
}
