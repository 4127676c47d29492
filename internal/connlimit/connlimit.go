// Package connlimit bounds the connections a listener holds, so that nobody can hold a port before saying who they
// are: at most Total at once (more wait in the kernel's backlog until one closes, holding no file descriptor of
// ours), and at most PerSource from one source (more are closed as soon as they are accepted, so one client, with
// or without credentials, cannot take the slots everyone else needs). A source is an IPv4 address or an IPv6 /64
// (what one host is usually given). It knows nothing of TLS, HTTP or gRPC.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
)

// Listener is a net.Listener with the two bounds.
type Listener struct {
	net.Listener
	perSource int
	refused   func(net.Addr) // called for each connection closed for its source's bound; may be nil

	sem       chan struct{} // one token per open connection
	done      chan struct{} // closed by Close: Accept stops waiting for a token
	closeOnce sync.Once

	mu       sync.Mutex
	bySource map[netip.Prefix]int
}

// Wrap bounds l to total connections at once, and perSource from one source (perSource above total is total).
// refused, if not nil, is told of each connection closed for its source's bound.
func Wrap(l net.Listener, total, perSource int, refused func(remote net.Addr)) *Listener {
	total = max(total, 1)
	perSource = min(max(perSource, 1), total)
	return &Listener{
		Listener: l, perSource: perSource, refused: refused,
		sem: make(chan struct{}, total), done: make(chan struct{}),
		bySource: map[netip.Prefix]int{},
	}
}

// Accept waits for a free slot, then for a connection from a source below its bound.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		src, ok := source(c.RemoteAddr())
		if !ok {
			// Not an IP connection (a unix socket in a test): only the total applies.
			return &conn{Conn: c, release: func() { <-l.sem }}, nil
		}
		l.mu.Lock()
		if l.bySource[src] >= l.perSource {
			l.mu.Unlock()
			<-l.sem
			if l.refused != nil {
				l.refused(c.RemoteAddr()) // before the close, so the count is there once the client sees it
			}
			_ = c.Close()
			continue
		}
		l.bySource[src]++
		l.mu.Unlock()
		return &conn{Conn: c, release: func() { l.release(src) }}, nil
	}
}

func (l *Listener) release(src netip.Prefix) {
	l.mu.Lock()
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src) // the map holds only sources with connections open
	}
	l.mu.Unlock()
	<-l.sem
}

// Close closes the listener; connections already accepted stay open.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Open is how many connections source (an address such as "127.0.0.1") holds now.
func (l *Listener) Open(addr string) int {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bySource[prefixOf(a)]
}

// source is the bucket a remote address counts against.
func source(a net.Addr) (netip.Prefix, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	return prefixOf(ip), true
}

func prefixOf(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap() // an IPv4 client of a dual-stack listener counts as its IPv4 address
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// conn gives its slot back once, however often it is closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
