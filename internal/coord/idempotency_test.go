package coord

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/coord/redistest"
	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
)

type orderCounter struct {
	pb.UnimplementedOrderServiceServer
	n *atomic.Int64
}

func (o orderCounter) CreateInstance(context.Context, *pb.CreateInstanceRequest) (*pb.CreateInstanceResponse, error) {
	o.n.Add(1)
	time.Sleep(20 * time.Millisecond) // keep the first call in flight while the repeats arrive
	return &pb.CreateInstanceResponse{OrderId: "the-order"}, nil
}

func serveOrders(t *testing.T, store idempotency.Store, n *atomic.Int64) pb.OrderServiceClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.UnaryInterceptor(idempotency.UnaryServerInterceptor(idempotency.Options{Store: store, PollEvery: 5 * time.Millisecond})))
	pb.RegisterOrderServiceServer(g, orderCounter{n: n})
	go func() { _ = g.Serve(l) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); g.Stop() })
	return pb.NewOrderServiceClient(conn)
}

func TestKeyStoreAcrossReplicas(t *testing.T) {
	rs := redistest.Start(t)
	var n atomic.Int64
	var clients []pb.OrderServiceClient
	var coords []*Coord
	for range 3 {
		c := openCoord(t, rs.URL())
		defer func() { _ = c.Close() }()
		coords = append(coords, c)
		clients = append(clients, serveOrders(t, c.KeyStore(), &n))
	}
	req := &pb.CreateInstanceRequest{Os: "AOSP11", InstanceSkuId: "s", BandSkuId: "b", RegionId: "r",
		InstanceNamePrefix: "p", BandSize: 1, RequestId: "5f0c6a9e-3b7a-4c1e-9a53-0d7f4b1c2e3a"}
	var wg sync.WaitGroup
	errs := make([]error, 9)
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := clients[i%3].CreateInstance(context.Background(), req)
			if err == nil && res.GetOrderId() != "the-order" {
				err = status.Errorf(codes.Internal, "got %q", res.GetOrderId())
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if n.Load() != 1 {
		t.Fatalf("%d orders from 9 calls on 3 replicas, want 1", n.Load())
	}

	// Redis down: keyed writes are refused, not sent.
	rs.Stop()
	_, err := clients[1].CreateInstance(context.Background(), req)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("with Redis down: %v", err)
	}
	if n.Load() != 1 || !coords[1].Status().Degraded {
		t.Fatalf("orders %d, status %+v", n.Load(), coords[1].Status())
	}
	// Back (empty, like a Redis that lost its data): writes are accepted again.
	rs.Restart()
	eventually(t, "recovered", func() bool { return !coords[2].Status().Degraded })
	req.RequestId = "6f0c6a9e-3b7a-4c1e-9a53-0d7f4b1c2e3a"
	if _, err := clients[2].CreateInstance(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}
