// Package inproc connects a client to a *grpc.Server in the same process through in-memory connections (no TCP,
// no loopback port), and spreads calls over several of them: unary calls over one set, streams over another.
//
// The REST mirror uses it to reach the gRPC server, so every REST call still meets the full interceptor chain.
// Why several connections: a single HTTP/2 connection serialises every call through one reader and one writer
// goroutine, and admits only the server's MaxConcurrentStreams at once. With one connection, enough held REST
// watch streams would use up those slots and leave unary REST callers queueing behind them; with streams on
// connections of their own, they never can.
package inproc

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// bufferSize is each direction's in-memory buffer per connection: larger than HTTP/2's initial 64 KiB window, so
// a writer rarely waits for its reader.
const bufferSize = 256 << 10

// Listener accepts the in-memory connections; serve it with the same *grpc.Server as the TCP listener.
type Listener = bufconn.Listener

// Listen returns a new in-memory listener.
func Listen() *Listener { return bufconn.Listen(bufferSize) }

// Conns is a grpc.ClientConnInterface over in-memory connections to one server.
type Conns struct {
	unary, streams []*grpc.ClientConn
	nextU, nextS   atomic.Uint64
}

var _ grpc.ClientConnInterface = (*Conns)(nil)

// Dial opens unary+streams client connections to lis (lazily, on first use, like grpc.NewClient).
func Dial(lis *Listener, unary, streams int, opts ...grpc.DialOption) (*Conns, error) {
	if unary < 1 || streams < 1 {
		return nil, fmt.Errorf("inproc: need at least one connection of each kind, got %d unary and %d streams", unary, streams)
	}
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
	}, opts...)
	c := &Conns{}
	for i := range unary + streams {
		// "passthrough" skips name resolution: the address is never dialled, the context dialer is.
		cc, err := grpc.NewClient("passthrough:///in-process", opts...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("inproc: %w", err)
		}
		if i < unary {
			c.unary = append(c.unary, cc)
		} else {
			c.streams = append(c.streams, cc)
		}
	}
	return c, nil
}

// Invoke sends a unary call on the next unary connection.
func (c *Conns) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cc := c.unary[c.nextU.Add(1)%uint64(len(c.unary))]
	return cc.Invoke(ctx, method, args, reply, opts...)
}

// NewStream opens a stream on the next stream connection.
func (c *Conns) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc := c.streams[c.nextS.Add(1)%uint64(len(c.streams))]
	return cc.NewStream(ctx, desc, method, opts...)
}

// Close closes every connection.
func (c *Conns) Close() {
	for _, cc := range append(c.unary, c.streams...) {
		_ = cc.Close()
	}
}
