package upstream

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A deadline passing says KooPhone hangs only when the attempt had real time in flight: an attempt sent with a
// few milliseconds left (it waited out its deadline in the fair queue) must not count toward opening the breaker
// for every caller, while a hang of a real call still does.
func TestBreakerVerdictOnDeadlines(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	timeout := &Error{Kind: KindTransport, Err: context.DeadlineExceeded}
	for _, c := range []struct {
		name string
		ctx  context.Context
		r    attemptResult
		want error
	}{
		{"starved attempt: 2ms in flight", expired, attemptResult{err: timeout, inFlight: 2 * time.Millisecond}, errBreakerExcluded},
		{"KooPhone hung: 10s in flight", expired, attemptResult{err: timeout, inFlight: 10 * time.Second}, errBreakerFailure},
		{"caller cancelled", cancelled, attemptResult{err: timeout, inFlight: 10 * time.Second}, errBreakerExcluded},
		{"connection reset, no deadline", context.Background(), attemptResult{err: &Error{Kind: KindTransport, Err: errors.New("reset")}, inFlight: time.Millisecond}, errBreakerFailure},
		{"an answer", context.Background(), attemptResult{}, nil},
	} {
		if got := breakerVerdict(c.ctx, &c.r); !errors.Is(got, c.want) && got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
