package upstream

import (
	"sync"

	"golang.org/x/time/rate"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// RetryBudget bounds the retries of all calls together, as Envoy's retry budget does: every call earns Ratio of a
// retry, a retry spends one, and MinPerSec retries a second are allowed whatever the budget, so a quiet gateway
// can still retry a lost packet. Without it, an upstream outage is multiplied by the attempts per call.
type RetryBudget struct {
	Ratio     float64 // retries per call; default DefaultRetryRatio; negative: no budget (every retry the policy allows)
	MinPerSec float64 // retries a second always allowed; default DefaultRetryMinPerSec
}

// budgetCap is how many retries a quiet period may save up: a few, so a burst of failures after calm is not
// retried wholesale.
const budgetCap = 10

// Defaults of the retry budget; the config table shows them (--upstream-retry-budget, --upstream-retry-min).
const (
	DefaultRetryRatio     = 0.2
	DefaultRetryMinPerSec = 3
)

func (b RetryBudget) withDefaults() RetryBudget {
	if b.Ratio == 0 {
		b.Ratio = DefaultRetryRatio
	}
	if b.MinPerSec <= 0 {
		b.MinPerSec = DefaultRetryMinPerSec
	}
	return b
}

type retryBudget struct {
	ratio float64
	min   *rate.Limiter
	clock clock.Clock

	mu     sync.Mutex
	tokens float64
}

func newRetryBudget(b RetryBudget, clk clock.Clock) *retryBudget {
	b = b.withDefaults()
	return &retryBudget{ratio: b.Ratio, min: rate.NewLimiter(rate.Limit(b.MinPerSec), max(1, int(b.MinPerSec))), clock: clk}
}

// call records one call (its first attempt).
func (b *retryBudget) call() {
	if b.ratio < 0 {
		return
	}
	b.mu.Lock()
	b.tokens = min(b.tokens+b.ratio, budgetCap)
	b.mu.Unlock()
}

// allow reports whether one more retry may be sent, and spends it.
func (b *retryBudget) allow() bool {
	if b.ratio < 0 {
		return true
	}
	b.mu.Lock()
	if b.tokens >= 1 {
		b.tokens--
		b.mu.Unlock()
		return true
	}
	b.mu.Unlock()
	return b.min.AllowN(b.clock.Now(), 1)
}
