// Package clocktest picks the dates tests start their fake clocks on.
//
// Tests start on fixed dates so that their runs repeat exactly. A fixed date hides a class of bug, though: a part
// that reads the wall clock instead of the injected one works while the date is near today and fails once it is
// not (an IAM token issued "yesterday" by the fake clock is expired by the wall clock). KOOPHONE_TEST_CLOCK_SHIFT
// moves every start by a Go duration (e.g. 8760h or -8760h); `make test-dates` runs the suites a year ahead and a
// year back, so any such part fails on every run, not only from some day on.
package clocktest

import (
	"fmt"
	"os"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// ShiftVariable names the environment variable that moves every test's start date.
const ShiftVariable = "KOOPHONE_TEST_CLOCK_SHIFT"

// Start is base moved by KOOPHONE_TEST_CLOCK_SHIFT (unset: base itself). A malformed value panics: it is a test
// run's own setting, and silently ignoring it would make the shifted-dates run pass without testing anything.
func Start(base time.Time) time.Time {
	v := os.Getenv(ShiftVariable)
	if v == "" {
		return base
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		panic(fmt.Sprintf("%s=%q: %v", ShiftVariable, v, err))
	}
	return base.Add(d)
}

// NewFake is a fake clock starting at Start(base).
func NewFake(base time.Time) *clock.Fake { return clock.NewFake(Start(base)) }
