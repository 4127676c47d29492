package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a clock that only moves when a test calls Advance. Timers fire, in deadline order, as Advance passes
// their deadlines. WaitForTimers lets a test wait until the code under test has armed its timers, so the test
// never races the goroutine it drives.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced whenever the set of pending timers changes
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer arms a fake timer.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armLocked(t, d)
	return t
}

// Advance moves the clock forward by d, firing every timer whose deadline is reached, earliest first.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		sort.Slice(f.timers, func(i, j int) bool { return f.timers[i].when.Before(f.timers[j].when) })
		if len(f.timers) == 0 || f.timers[0].when.After(end) {
			break
		}
		t := f.timers[0]
		f.timers = f.timers[1:]
		if t.when.After(f.now) {
			f.now = t.when
		}
		t.pending = false
		select {
		case t.c <- f.now:
		default:
		}
		f.notifyLocked()
	}
	f.now = end
}

// Set moves the clock to t (only forward), firing timers on the way.
func (f *Fake) Set(t time.Time) {
	f.Advance(t.Sub(f.Now()))
}

// Pending returns how many timers are armed.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// WaitForTimers blocks until at least n timers are armed or done is closed; it reports whether n were reached.
func (f *Fake) WaitForTimers(n int, done <-chan struct{}) bool {
	for {
		f.mu.Lock()
		if len(f.timers) >= n {
			f.mu.Unlock()
			return true
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-done:
			return false
		}
	}
}

func (f *Fake) armLocked(t *fakeTimer, d time.Duration) {
	t.when = f.now.Add(d)
	if !t.pending {
		t.pending = true
		f.timers = append(f.timers, t)
	}
	if d <= 0 {
		// Fire at once, as a real timer with a non-positive duration does.
		f.removeLocked(t)
		t.pending = false
		select {
		case t.c <- f.now:
		default:
		}
	}
	f.notifyLocked()
}

func (f *Fake) removeLocked(t *fakeTimer) {
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return
		}
	}
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeTimer struct {
	f       *Fake
	c       chan time.Time
	when    time.Time
	pending bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.pending
	if was {
		t.f.removeLocked(t)
		t.pending = false
		t.f.notifyLocked()
	}
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.pending
	t.f.armLocked(t, d)
	return was
}
