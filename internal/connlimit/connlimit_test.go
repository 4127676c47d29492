package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server accepts on l until it closes, keeping every connection open until its client closes it (and sending one
// byte on each, so a client can tell an accepted connection from a refused one).
type server struct {
	l     *Listener
	conns chan net.Conn
	done  chan struct{}
	wg    sync.WaitGroup
}

func serve(t *testing.T, total, perSource int, refused func(net.Addr)) *server {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{l: Wrap(raw, total, perSource, refused), conns: make(chan net.Conn, 100), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			c, err := s.l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte{1})
			s.conns <- c
			s.wg.Go(func() {
				_, _ = io.Copy(io.Discard, c) // until the client closes
				_ = c.Close()
			})
		}
	}()
	t.Cleanup(func() {
		_ = s.l.Close()
		<-s.done
		close(s.conns)
		for c := range s.conns {
			_ = c.Close()
		}
		s.wg.Wait()
	})
	return s
}

// dial connects from the local address from (e.g. 127.0.0.2: Linux routes all of 127/8 to lo) and reports
// whether the server accepted the connection (sent its byte) within wait.
func dial(t *testing.T, addr, from string, wait time.Duration) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(wait))
	b := make([]byte, 1)
	_, err = io.ReadFull(c, b)
	return c, err == nil
}

func TestPerSourceBoundRefusesTheNextFromThatSourceOnly(t *testing.T) {
	var refused atomic.Int64
	s := serve(t, 10, 3, func(net.Addr) { refused.Add(1) })
	addr := s.l.Addr().String()
	var first net.Conn
	for i := range 3 {
		c, ok := dial(t, addr, "127.0.0.1", 5*time.Second)
		if !ok {
			t.Fatalf("connection %d from 127.0.0.1 was not accepted", i+1)
		}
		if i == 0 {
			first = c
		}
	}
	// The fourth from the same source is closed at once (EOF or reset, not a wait).
	c, ok := dial(t, addr, "127.0.0.1", 5*time.Second)
	if ok {
		t.Fatal("a fourth connection from 127.0.0.1 was accepted over the bound of 3")
	}
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the fourth connection was left waiting instead of closed")
	}
	if refused.Load() != 1 {
		t.Fatalf("refused callback: %d, want 1", refused.Load())
	}
	// Another source still gets in.
	if _, ok := dial(t, addr, "127.0.0.2", 5*time.Second); !ok {
		t.Fatal("127.0.0.2 was not accepted while 127.0.0.1 held its bound")
	}
	// Once one of the first source's connections closes, its slot is free again.
	_ = first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.l.Open("127.0.0.1") != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the closed connection's slot was never given back (open: %d)", s.l.Open("127.0.0.1"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := dial(t, addr, "127.0.0.1", 5*time.Second); !ok {
		t.Fatal("127.0.0.1 was refused after one of its connections closed")
	}
}

func TestTotalBoundWaits(t *testing.T) {
	s := serve(t, 2, 2, nil)
	addr := s.l.Addr().String()
	dial(t, addr, "127.0.0.1", 5*time.Second)
	dial(t, addr, "127.0.0.2", 5*time.Second)
	if _, ok := dial(t, addr, "127.0.0.3", 200*time.Millisecond); ok {
		t.Fatal("a third connection was accepted over the total of 2")
	}
}

func TestSources(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::9"}, // one /64
	} {
		pa := prefixOf(netip.MustParseAddr(c.a))
		pb := prefixOf(netip.MustParseAddr(c.b))
		if pa != pb {
			t.Errorf("%s (%v) and %s (%v) should be one source", c.a, pa, c.b, pb)
		}
	}
	if prefixOf(netip.MustParseAddr("2001:db8:1:2::1")) == prefixOf(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("two /64s are one source")
	}
}

func TestCloseStopsAWaitingAccept(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(raw, 1, 1, nil)
	l.sem <- struct{}{} // the one slot is taken
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	_ = l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting 5s after Close")
	}
}
