package upstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// The limiter paces on the injected clock: the burst passes at once, the next attempt waits for the rate, and a
// wait that would outlast the caller's deadline is refused at once with the wait it would have taken.
func TestLocalLimiterPacesOnTheClock(t *testing.T) {
	clk := clock.NewFake(epoch)
	l := NewLocalLimiter(Rates{ReadPerSec: 2, ReadBurst: 2}, clk)
	ctx := context.Background()
	for i := range 2 {
		if err := l.Wait(ctx, false); err != nil {
			t.Fatalf("burst attempt %d: %v", i, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := l.Wait(short, false)
	var rl *RateLimitedError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) || rl.Wait != 500*time.Millisecond {
		t.Fatalf("over the rate with a short deadline: %v", err)
	}
	// Writes have their own budget (unlimited here).
	if err := l.Wait(short, true); err != nil {
		t.Fatalf("write: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, false) }()
	clk.WaitForTimers(1, nil)
	clk.Advance(500 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatalf("after the wait: %v", err)
	}
}

// HoldUntil (a 429's Retry-After) holds back every class until then.
func TestLocalLimiterHoldsEveryoneUntil(t *testing.T) {
	clk := clock.NewFake(epoch)
	l := NewLocalLimiter(Rates{}, clk)
	l.HoldUntil(epoch.Add(30 * time.Second))
	l.HoldUntil(epoch.Add(time.Second)) // an earlier hold never shortens a later one
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, write := range []bool{false, true} {
		var rl *RateLimitedError
		if err := l.Wait(ctx, write); !errors.As(err, &rl) || rl.Wait != 30*time.Second {
			t.Fatalf("write=%v during the hold: %v", write, err)
		}
	}
	clk.Advance(30 * time.Second)
	if err := l.Wait(ctx, false); err != nil {
		t.Fatalf("after the hold: %v", err)
	}
}

// The retry budget allows Ratio retries per call plus a minimum per second, and saves up only a few.
func TestRetryBudget(t *testing.T) {
	clk := clock.NewFake(epoch)
	b := newRetryBudget(RetryBudget{Ratio: 0.2, MinPerSec: 1}, clk)
	for range 100 {
		b.call()
	}
	allowed := 0
	for range 100 {
		if b.allow() {
			allowed++
		}
	}
	// 100 calls earn 20 retries, capped at budgetCap saved, plus 1 from the per-second minimum.
	if allowed != budgetCap+1 {
		t.Fatalf("%d retries allowed", allowed)
	}
	clk.Advance(time.Second)
	if !b.allow() || b.allow() {
		t.Fatal("the per-second minimum is not one a second")
	}
}
