package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// orders counts the orders it takes; release (when set) holds each call until closed.
type orders struct {
	pb.UnimplementedOrderServiceServer
	n       atomic.Int64
	release chan struct{}
	fail    error
}

func (o *orders) CreateInstance(ctx context.Context, req *pb.CreateInstanceRequest) (*pb.CreateInstanceResponse, error) {
	n := o.n.Add(1)
	if o.release != nil {
		<-o.release
	}
	if o.fail != nil {
		return nil, o.fail
	}
	return &pb.CreateInstanceResponse{OrderId: fmt.Sprintf("order-%d-%s", n, req.GetRequestId())}, nil
}

func (o *orders) BatchShowSku(context.Context, *pb.BatchShowSkuRequest) (*pb.BatchShowSkuResponse, error) {
	o.n.Add(1)
	return &pb.BatchShowSkuResponse{}, nil
}

// serve runs the order service behind the interceptor on loopback.
func serve(t *testing.T, srv *orders, o idempotency.Options) pb.OrderServiceClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(idempotency.UnaryServerInterceptor(o)))
	pb.RegisterOrderServiceServer(g, srv)
	go func() { _ = g.Serve(l) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); g.Stop() })
	return pb.NewOrderServiceClient(conn)
}

const key = "123e4567-e89b-12d3-a456-426614174000"

func order(id, prefix string) *pb.CreateInstanceRequest {
	return &pb.CreateInstanceRequest{Os: "AOSP11", InstanceSkuId: "sku", BandSkuId: "band", RegionId: "r",
		InstanceNamePrefix: prefix, BandSize: 5, RequestId: id}
}

func reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}

// StoreTests runs the store-independent behaviour against any store.
func storeTests(t *testing.T, newStore func() idempotency.Store) {
	ctx := context.Background()
	t.Run("concurrent repeats make one order", func(t *testing.T) {
		srv := &orders{release: make(chan struct{})}
		c := serve(t, srv, idempotency.Options{Store: newStore(), PollEvery: time.Millisecond})
		var wg sync.WaitGroup
		ids := make([]string, 10)
		errs := make([]error, 10)
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := c.CreateInstance(ctx, order(key, "p"))
				ids[i], errs[i] = res.GetOrderId(), err
			}()
		}
		for srv.n.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		close(srv.release)
		wg.Wait()
		for i := range 10 {
			if errs[i] != nil || ids[i] != "order-1-"+key {
				t.Fatalf("call %d: %q %v", i, ids[i], errs[i])
			}
		}
		if n := srv.n.Load(); n != 1 {
			t.Fatalf("%d orders, want 1", n)
		}
		// Same key, different request: ALREADY_EXISTS naming the key; nothing sent.
		_, err := c.CreateInstance(ctx, order(key, "other"))
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), key) || reason(err) != idempotency.ReasonKeyReused {
			t.Fatalf("reused key: %v", err)
		}
		// Header form of the same key replays the same outcome.
		hctx := metadata.AppendToOutgoingContext(ctx, idempotency.HeaderName, key)
		res, err := c.CreateInstance(hctx, order("", "p"))
		if err != nil || res.GetOrderId() != "order-1-"+key || srv.n.Load() != 1 {
			t.Fatalf("header repeat: %v %v (orders %d)", res, err, srv.n.Load())
		}
	})
	t.Run("without a key every call runs", func(t *testing.T) {
		srv := &orders{}
		c := serve(t, srv, idempotency.Options{Store: newStore()})
		for range 2 {
			if _, err := c.CreateInstance(ctx, order("", "p")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.BatchShowSku(metadata.AppendToOutgoingContext(ctx, idempotency.HeaderName, key), &pb.BatchShowSkuRequest{}); err != nil {
			t.Fatal(err)
		}
		if srv.n.Load() != 3 {
			t.Fatalf("%d calls, want 3", srv.n.Load())
		}
	})
	t.Run("outcome unknown is remembered", func(t *testing.T) {
		srv := &orders{fail: status.Error(codes.DeadlineExceeded, "KooPhone did not answer")}
		c := serve(t, srv, idempotency.Options{Store: newStore()})
		if _, err := c.CreateInstance(ctx, order(key, "p")); status.Code(err) != codes.DeadlineExceeded {
			t.Fatal(err)
		}
		srv.fail = nil
		_, err := c.CreateInstance(ctx, order(key, "p"))
		if status.Code(err) != codes.Unknown || reason(err) != idempotency.ReasonOutcomeUnknown || srv.n.Load() != 1 {
			t.Fatalf("repeat after unknown outcome: %v (orders %d)", err, srv.n.Load())
		}
	})
	t.Run("a definite failure is replayed, a refusal is forgotten", func(t *testing.T) {
		srv := &orders{fail: status.Error(codes.FailedPrecondition, "insufficient balance")}
		c := serve(t, srv, idempotency.Options{Store: newStore()})
		for range 2 {
			if _, err := c.CreateInstance(ctx, order(key, "p")); status.Code(err) != codes.FailedPrecondition {
				t.Fatal(err)
			}
		}
		if srv.n.Load() != 1 {
			t.Fatalf("%d calls", srv.n.Load())
		}
		const key2 = "223e4567-e89b-12d3-a456-426614174000"
		srv.fail = status.Error(codes.ResourceExhausted, "quota")
		if _, err := c.CreateInstance(ctx, order(key2, "p")); status.Code(err) != codes.ResourceExhausted {
			t.Fatal(err)
		}
		srv.fail = nil
		if _, err := c.CreateInstance(ctx, order(key2, "p")); err != nil || srv.n.Load() != 3 {
			t.Fatalf("retry after refusal: %v (calls %d)", err, srv.n.Load())
		}
	})
	t.Run("bad keys", func(t *testing.T) {
		c := serve(t, &orders{}, idempotency.Options{Store: newStore()})
		for name, md := range map[string][]string{
			"not a uuid": {idempotency.HeaderName, "abc"},
			"differs":    {idempotency.HeaderName, "323e4567-e89b-12d3-a456-426614174000"},
		} {
			_, err := c.CreateInstance(metadata.AppendToOutgoingContext(ctx, md...), order(key, "p"))
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "Idempotency-Key") {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

func TestMemoryStore(t *testing.T) {
	storeTests(t, func() idempotency.Store { return idempotency.NewMemory(nil, 0) })
}

func TestMemoryExpiryAndBound(t *testing.T) {
	clk := clocktest.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	m := idempotency.NewMemory(clk, 2)
	srv := &orders{}
	c := serve(t, srv, idempotency.Options{Store: m, Clock: clk})
	ctx := context.Background()
	for range 2 {
		if _, err := c.CreateInstance(ctx, order(key, "p")); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(24 * time.Hour)
	if _, err := c.CreateInstance(ctx, order(key, "p")); err != nil || srv.n.Load() != 2 {
		t.Fatalf("after 24h: %v (orders %d)", err, srv.n.Load())
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, _, err := m.Claim(ctx, k, idempotency.Record{}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if m.Len() != 2 {
		t.Fatalf("bound not kept: %d keys", m.Len())
	}
}

func TestStalePendingIsUnknown(t *testing.T) {
	clk := clocktest.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	m := idempotency.NewMemory(clk, 0)
	srv := &orders{release: make(chan struct{})}
	c := serve(t, srv, idempotency.Options{Store: m, Clock: clk, MaxPending: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan error, 1)
	go func() { _, err := c.CreateInstance(ctx, order(key, "p")); first <- err }()
	for srv.n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	clk.Advance(2 * time.Minute) // the first call's replica "died" long ago, as far as repeats can tell
	_, err := c.CreateInstance(context.Background(), order(key, "p"))
	if status.Code(err) != codes.Unknown || reason(err) != idempotency.ReasonOutcomeUnknown {
		t.Fatalf("stale pending: %v", err)
	}
	close(srv.release)
	if err := <-first; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// Keys are per caller: the same key and request from two callers are two writes, and each caller's repeat replays
// its own first outcome.
func TestKeysAreScopedToTheCaller(t *testing.T) {
	srv := &orders{}
	c := serve(t, srv, idempotency.Options{Store: idempotency.NewMemory(nil, 100), Scope: func(ctx context.Context) string {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("x-caller"); len(v) == 1 {
			return v[0]
		}
		return ""
	}})
	as := func(who string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "x-caller", who)
	}
	first := map[string]string{}
	for _, who := range []string{"alice", "bob", "alice", "bob"} {
		res, err := c.CreateInstance(as(who), order(key, "p"))
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := first[who]; ok && prev != res.GetOrderId() {
			t.Fatalf("%s's repeat got %s, first %s", who, res.GetOrderId(), prev)
		}
		first[who] = res.GetOrderId()
	}
	if n := srv.n.Load(); n != 2 || first["alice"] == first["bob"] {
		t.Fatalf("%d orders, alice %s, bob %s: want one each", n, first["alice"], first["bob"])
	}
}
