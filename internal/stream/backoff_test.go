package stream

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// The waits the default policy arms while nothing changes: ×1.6 from 500ms up to the 10s ceiling.
var unchangedWaits = []time.Duration{
	500 * time.Millisecond, 800 * time.Millisecond, 1280 * time.Millisecond, 2048 * time.Millisecond,
	3276800 * time.Microsecond, 5242880 * time.Microsecond, 8388608 * time.Microsecond, 10 * time.Second,
	10 * time.Second,
}

func TestBackoffGrowsToCeilingAndResetsOnChange(t *testing.T) {
	h, clk := newHub(t, Config{})
	src := newSource(val{N: 1})
	sub := watch(t, h, src)
	next(t, sub)
	for i, want := range unchangedWaits {
		if got := clk.step(t); got != want {
			t.Fatalf("wait %d = %v, want %v", i, got, want)
		}
	}
	if d := clk.nextWait(t); d != 10*time.Second {
		t.Fatalf("wait at the ceiling = %v", d)
	}
	if pending(sub) {
		t.Fatal("unchanged polls sent a message")
	}
	src.set(val{N: 2}, nil)
	clk.Advance(10 * time.Second)
	if d := clk.nextWait(t); d != 500*time.Millisecond {
		t.Fatalf("wait after a change = %v, want the first interval again", d)
	}
	if got := next(t, sub); got.Value.N != 2 || got.Seq != 2 {
		t.Fatalf("got %+v", got)
	}
	if n := src.polls.Load(); n != int64(len(unchangedWaits))+2 {
		t.Fatalf("polls = %d", n)
	}
}

func TestJitterIsSeededAndBounded(t *testing.T) {
	run := func() []time.Duration {
		h, clk := newHub(t, Config{Jitter: 0.2, Rand: rand.New(rand.NewPCG(1, 2)).Float64})
		defer h.Close()
		sub := watch(t, h, newSource(val{N: 1}))
		next(t, sub)
		var waits []time.Duration
		for range unchangedWaits {
			waits = append(waits, clk.step(t))
		}
		return waits
	}
	a, b := run(), run()
	jittered := false
	for i, base := range unchangedWaits {
		if a[i] != b[i] {
			t.Fatalf("wait %d differs between runs with one seed: %v, %v", i, a[i], b[i])
		}
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		if a[i] < lo || a[i] > hi {
			t.Fatalf("wait %d = %v, outside %v±20%%", i, a[i], base)
		}
		jittered = jittered || a[i] != base
	}
	if !jittered {
		t.Fatal("no wait was jittered")
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if _, ok := c.Clock.(clock.Real); !ok || c.FirstInterval != 500*time.Millisecond || c.MaxInterval != 10*time.Second ||
		c.Multiplier != 1.6 || c.Jitter != 0.2 || c.PollTimeout != 10*time.Second || c.MaxConsecutiveErrors != 10 ||
		c.MaxOutage != time.Minute || c.TerminalTTL != time.Minute || c.ErrorTTL != 5*time.Second || c.Rand == nil {
		t.Fatalf("defaults = %+v", c)
	}
}
