package rest

// The mirror's way into the gRPC services: a client in the same process calls a *grpc.Server's services through the
// server's own interceptor chain, without TCP. Unary calls run the handler directly (InProcChannel), streams go
// over in-memory connections (InProcConns), so every REST call meets the full interceptor chain.
//
// Why unary calls skip the connections: a REST call through a gRPC client and server pays for HTTP/2 framing and
// two serialisations in each direction, about half its CPU; and a connection admits only the server's
// MaxConcurrentStreams at once, so held REST watch streams could leave unary REST callers queueing behind them.
// Why several stream connections: one HTTP/2 connection serialises its streams through one reader and one writer
// goroutine.

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// inprocBufferSize is each direction's in-memory buffer per connection: larger than HTTP/2's initial 64 KiB window, so
// a writer rarely waits for its reader.
const inprocBufferSize = 256 << 10

// InProcListener accepts the in-memory connections; serve it with the same *grpc.Server as the TCP listener.
type InProcListener = bufconn.Listener

// ListenInProcess returns a new in-memory listener.
func ListenInProcess() *InProcListener { return bufconn.Listen(inprocBufferSize) }

// InProcConns is a grpc.ClientConnInterface over in-memory connections to one server, used in turn.
type InProcConns struct {
	conns []*grpc.ClientConn
	next  atomic.Uint64
}

var _ grpc.ClientConnInterface = (*InProcConns)(nil)

// DialInProcess opens n client connections to lis (lazily, on first use, like grpc.NewClient).
func DialInProcess(lis *InProcListener, n int, opts ...grpc.DialOption) (*InProcConns, error) {
	if n < 1 {
		return nil, fmt.Errorf("in-process call: need at least one connection, got %d", n)
	}
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
	}, opts...)
	c := &InProcConns{}
	for range n {
		// "passthrough" skips name resolution: the address is never dialled, the context dialer is.
		cc, err := grpc.NewClient("passthrough:///in-process", opts...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("in-process call: %w", err)
		}
		c.conns = append(c.conns, cc)
	}
	return c, nil
}

// Invoke sends a unary call on the next connection.
func (c *InProcConns) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.pick().Invoke(ctx, method, args, reply, opts...)
}

// NewStream opens a stream on the next connection.
func (c *InProcConns) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.pick().NewStream(ctx, desc, method, opts...)
}

func (c *InProcConns) pick() *grpc.ClientConn { return c.conns[c.next.Add(1)%uint64(len(c.conns))] }

// Close closes every connection.
func (c *InProcConns) Close() {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}
