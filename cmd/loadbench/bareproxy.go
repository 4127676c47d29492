package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

// bareProxy is the physical limit of the gateway's design: a gRPC server with no interceptors that forwards
// BatchQueryStatus with one plain net/http call and maps the answer. No validation, logging, retries or error
// mapping: what the gateway spends beyond this is the price of its features.
type bareProxy struct {
	pb.UnimplementedInstanceServiceServer
	url, token string
	hc         *http.Client
}

func (p *bareProxy) BatchQueryStatus(ctx context.Context, req *pb.BatchQueryStatusRequest) (*pb.BatchQueryStatusResponse, error) {
	body, _ := json.Marshal(map[string][]string{"instance_ids": req.GetInstanceIds()})
	hreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/v1/instances/batch-query-status", bytes.NewReader(body))
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("X-Auth-Token", p.token)
	hreq.Header.Set("X-Request-Id", nextRequestID())
	res, err := p.hc.Do(hreq)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	defer func() { _ = res.Body.Close() }()
	var env struct {
		ErrorCode string `json:"error_code"`
		Data      struct {
			StatusResults []struct {
				InstanceID string `json:"instance_id"`
				Status     int32  `json:"status"`
			} `json:"status_results"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil || res.StatusCode != http.StatusOK {
		return nil, status.Errorf(codes.Unavailable, "upstream HTTP %d: %v", res.StatusCode, err)
	}
	out := &pb.BatchQueryStatusResponse{StatusResults: make([]*pb.StatusResult, len(env.Data.StatusResults))}
	for i, r := range env.Data.StatusResults {
		out.StatusResults[i] = &pb.StatusResult{InstanceId: r.InstanceID, RawStatus: r.Status}
	}
	return out, nil
}

// runBareProxy is `loadbench bareproxy -listen ADDR -upstream URL` (the token comes in LOADBENCH_TOKEN).
func runBareProxy(args []string) error {
	fs := flag.NewFlagSet("bareproxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "gRPC listen address")
	upstreamURL := fs.String("upstream", "", "simulator base URL")
	certFile := fs.String("tls-cert", "", "TLS certificate (PEM): serve TLS with the gateway's settings (TLS 1.2 or later)")
	keyFile := fs.String("tls-key", "", "TLS private key (PEM) for -tls-cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var opts []grpc.ServerOption
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return err
		}
		// As auth.ServerTLS configures the gateway's listeners without client CAs: TLS 1.2 or later, Go's defaults
		// for the rest (TLS 1.3 and AES-GCM between two Go processes).
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}})))
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// The same idle-connection settings as the gateway's transport, so neither path churns connections.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 256
	srv := grpc.NewServer(opts...)
	pb.RegisterInstanceServiceServer(srv, &bareProxy{url: *upstreamURL, token: os.Getenv("LOADBENCH_TOKEN"), hc: &http.Client{Transport: tr}})
	reflection.Register(srv) // for ghz (make bench's cross-check); costs nothing per call
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	fmt.Println("bare proxy on", lis.Addr())
	return srv.Serve(lis)
}
