package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInOrder(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	a := f.NewTimer(2 * time.Second)
	b := f.NewTimer(1 * time.Second)
	f.Advance(1500 * time.Millisecond)
	select {
	case got := <-b.C():
		if !got.Equal(start.Add(time.Second)) {
			t.Fatalf("b fired at %v", got)
		}
	default:
		t.Fatal("b did not fire")
	}
	select {
	case <-a.C():
		t.Fatal("a fired early")
	default:
	}
	if f.Pending() != 1 {
		t.Fatalf("pending = %d", f.Pending())
	}
	f.Advance(time.Second)
	select {
	case <-a.C():
	default:
		t.Fatal("a did not fire")
	}
	if !f.Now().Equal(start.Add(2500 * time.Millisecond)) {
		t.Fatalf("now = %v", f.Now())
	}
}

func TestFakeStopReset(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("stop of pending timer reported false")
	}
	if tm.Stop() {
		t.Fatal("second stop reported true")
	}
	f.Advance(2 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	tm.Reset(time.Second)
	done := make(chan struct{})
	if !f.WaitForTimers(1, done) {
		t.Fatal("timer not armed")
	}
	f.Advance(time.Second)
	<-tm.C()
}

func TestSleepInterrupted(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	done := make(chan struct{})
	res := make(chan bool)
	go func() { res <- Sleep(f, time.Minute, done) }()
	f.WaitForTimers(1, nil)
	close(done)
	if <-res {
		t.Fatal("Sleep reported full duration after done")
	}
	if f.Pending() != 0 {
		t.Fatal("timer left armed")
	}
}
