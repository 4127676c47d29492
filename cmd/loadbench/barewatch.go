package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc"

	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/server/grpcopts"
)

// bareWatch is the floor of an idle watcher in this design: a gRPC server with the gateway's transport settings
// (grpcopts.Server at the defaults: keepalive, stream workers, header and stream bounds) and no
// interceptors, whose WatchTask sends one snapshot of the gateway's shape and then waits for the caller to leave.
// What a gateway watcher costs beyond it is the price of the chain, the hub and the handler.
type bareWatch struct {
	pb.UnimplementedInstanceServiceServer
	tasks atomic.Int64
}

// AsyncCommand names a task, so the harness's watcher loop runs unchanged against the floor.
func (b *bareWatch) AsyncCommand(context.Context, *pb.AsyncCommandRequest) (*pb.AsyncCommandResponse, error) {
	return &pb.AsyncCommandResponse{TaskId: "task-" + strconv.FormatInt(b.tasks.Add(1), 10)}, nil
}

func (b *bareWatch) WatchTask(req *pb.WatchTaskRequest, srv grpc.ServerStreamingServer[pb.WatchTaskResponse]) error {
	// One running job, as the gateway's first snapshot of a task started on one phone.
	err := srv.Send(&pb.WatchTaskResponse{TaskId: req.GetTaskId(), RunningCount: 1, Jobs: []*pb.Job{{
		JobId: req.GetTaskId() + "-job-1", Status: pb.JobStatus_JOB_STATUS_RUNNING, RawStatus: 1}}})
	if err != nil {
		return err
	}
	<-srv.Context().Done()
	return nil
}

// runBareWatch is `loadbench barewatch -listen ADDR -pprof ADDR`; it prints "bare watcher floor on GRPC pprof PPROF".
func runBareWatch(args []string) error {
	fs := flag.NewFlagSet("barewatch", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "gRPC listen address")
	pprofAddr := fs.String("pprof", "127.0.0.1:0", "/debug/pprof listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(nil, func(string) string { return "" }, os.Stderr) // the gateway's defaults
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	plis, err := net.Listen("tcp", *pprofAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // the harness reads goroutine and heap, as from the gateway
	go func() { _ = http.Serve(plis, mux) }()    //nolint:gosec // loopback, for the harness only
	srv := grpc.NewServer(grpcopts.Server(cfg)...)
	pb.RegisterInstanceServiceServer(srv, &bareWatch{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Stop()
		_ = plis.Close()
	}()
	fmt.Println("bare watcher floor on", lis.Addr(), "pprof", plis.Addr())
	return srv.Serve(lis)
}
