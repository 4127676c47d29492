package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"google.golang.org/grpc"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

// path is one way of making the benchmark's call: BatchQueryStatus of the same phones.
type path struct {
	name  string
	call  callFunc
	pid   int // the process that serves the path besides the simulator (0 for direct)
	close func()
}

// httpClient has enough idle connections for every concurrent caller, like any sane client of a busy API.
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 1024
	return &http.Client{Transport: tr}
}

// postJSON posts body to url with headers and fails on any status but 200; the answer is read and dropped.
func postJSON(ctx context.Context, hc *http.Client, url string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = header.Clone()
	req.Header.Set("Content-Type", "application/json")
	// KooPhone requires a request id on every call; the gateway makes one per call, and so do direct and bare.
	req.Header.Set("X-Request-Id", nextRequestID())
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	return nil
}

// directPath calls the simulator itself.
func directPath(s *simulator, ids []string) path {
	hc := newHTTPClient()
	body, _ := json.Marshal(map[string][]string{"instance_ids": ids})
	h := http.Header{"X-Auth-Token": {s.token}}
	return path{name: "direct", close: hc.CloseIdleConnections, call: func(ctx context.Context) error {
		return postJSON(ctx, hc, s.url+"/v1/instances/batch-query-status", body, h)
	}}
}

// restPath calls the gateway's REST mirror.
func restPath(g *gateway, ids []string, header http.Header) path {
	return restPathWith("gateway REST", g, newHTTPClient(), ids, header)
}

// restPathWith calls the gateway's REST mirror with hc (TLS, a client certificate) and header (an API key).
func restPathWith(name string, g *gateway, hc *http.Client, ids []string, header http.Header) path {
	body, _ := json.Marshal(map[string][]string{"instance_ids": ids})
	return path{name: name, pid: g.pid(), close: hc.CloseIdleConnections, call: func(ctx context.Context) error {
		return postJSON(ctx, hc, g.base+"/v1/instances/batch-query-status", body, header)
	}}
}

// grpcPool spreads calls over a few connections, as a client with many callers would.
type grpcPool struct {
	conns []*grpc.ClientConn
	next  atomic.Uint64
}

func dialPool(addr string, n int) (*grpcPool, error) {
	return dialPoolWith(addr, n, koophone.Config{NoRetry: true})
}

// dialPoolWith dials with cfg: TLS, an API key or a client certificate.
func dialPoolWith(addr string, n int, cfg koophone.Config) (*grpcPool, error) {
	p := &grpcPool{}
	for range n {
		// The client module's dialling, without its retry policy: a benchmark counts every failure as it happens.
		c, err := koophone.Dial(addr, cfg)
		if err != nil {
			p.close()
			return nil, err
		}
		p.conns = append(p.conns, c)
	}
	return p, nil
}

func (p *grpcPool) pick() *grpc.ClientConn { return p.conns[p.next.Add(1)%uint64(len(p.conns))] }

func (p *grpcPool) close() {
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// grpcPath calls BatchQueryStatus over gRPC at addr (the gateway or the bare proxy), with md as metadata.
func grpcPath(name, addr string, pid int, conns int, ids []string, opts ...grpc.CallOption) (path, error) {
	return grpcPathWith(name, addr, pid, conns, koophone.Config{NoRetry: true}, ids, opts...)
}

// grpcPathWith dials with cfg (TLS, an API key, a client certificate).
func grpcPathWith(name, addr string, pid int, conns int, cfg koophone.Config, ids []string, opts ...grpc.CallOption) (path, error) {
	pool, err := dialPoolWith(addr, conns, cfg)
	if err != nil {
		return path{}, err
	}
	req := &pb.BatchQueryStatusRequest{InstanceIds: ids}
	return path{name: name, pid: pid, close: pool.close, call: func(ctx context.Context) error {
		res, err := pb.NewInstanceServiceClient(pool.pick()).BatchQueryStatus(ctx, req, opts...)
		if err == nil && len(res.GetStatusResults()) != len(ids) {
			err = fmt.Errorf("%d results for %d phones", len(res.GetStatusResults()), len(ids))
		}
		return err
	}}, nil
}

var requestSeq atomic.Uint64

// nextRequestID is a cheap unique request id, so direct and bare calls carry one as KooPhone requires.
func nextRequestID() string { return "lb-" + strconv.FormatUint(requestSeq.Add(1), 10) }
