package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profile drives saturation load through the gateway over gRPC and then over REST, and saves a CPU profile of
// each (dir/cpu-grpc.pprof, dir/cpu-rest.pprof) and the allocations since start (dir/allocs.pprof), read from
// the gateway's --pprof-addr. `make profile` prints their top entries with go tool pprof.
func profile(ctx context.Context, o *options, dir string) error {
	s, err := startSim(ctx, o, "sim", time.Minute)
	if err != nil {
		return err
	}
	defer s.stop()
	g, err := startGateway(ctx, o, s, "gateway-profile", o.gatewayBin)
	if err != nil {
		return err
	}
	defer g.stop()
	ids := s.ids[:10]
	grpcP, err := grpcPath("gateway gRPC", g.grpcAddr, g.pid(), 4, ids, callOptions(o)...)
	if err != nil {
		return err
	}
	defer grpcP.close()
	restP := restPath(g, ids, o.header)
	defer restP.close()
	secs := max(1, int(o.segment/time.Second))
	for _, p := range []struct {
		path
		file string
	}{{grpcP, "cpu-grpc.pprof"}, {restP, "cpu-rest.pprof"}} {
		closedLoop(ctx, o.conc, o.warmup, 0, p.call)
		var wg sync.WaitGroup
		var res sample
		wg.Go(func() { res = closedLoop(ctx, o.conc, time.Duration(secs)*time.Second+500*time.Millisecond, 0, p.call) })
		err := save(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", g.pprofAddr, secs), filepath.Join(dir, p.file))
		wg.Wait()
		if err != nil {
			return err
		}
		logf("%s: %.0f calls/s while profiling, %d failed", p.name, res.rate(), res.errs)
	}
	return save("http://"+g.pprofAddr+"/debug/pprof/allocs", filepath.Join(dir, "allocs.pprof"))
}

func save(url, file string) error {
	res, err := http.Get(url)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, res.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
