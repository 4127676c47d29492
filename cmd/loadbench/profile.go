package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// profile drives saturation load through the gateway over gRPC and then over REST, and saves a CPU profile of
// each (dir/cpu-grpc.pprof, dir/cpu-rest.pprof) and the allocations since start (dir/allocs.pprof), read from
// the gateway's --pprof-addr; `make profile` prints their top entries with go tool pprof. With -profile-dress the
// gateway wears the production dress (TLS, API keys, the policy, audit, /metrics scraped every 15 s) with shares
// configured, and the files are named *-dress.pprof. Either way each CPU profile's samples are attributed to the
// features (attribute.go) and the table printed (and written to -out).
func profile(ctx context.Context, o *options, dir string) error {
	s, err := startSim(ctx, o, "sim", time.Minute)
	if err != nil {
		return err
	}
	defer s.stop()
	ids := s.ids[:10]
	var g *gateway
	var grpcP, restP path
	suffix, what := "", "plain (anonymous, no TLS)"
	if o.profileDress {
		d, err := newDress(filepath.Join(o.logDir, "dress"))
		if err != nil {
			return err
		}
		if g, err = startGatewayTLS(ctx, o, s, "gateway-profile-dress", o.gatewayBin, d, append(d.keysEnv("profile"), d.sharesEnv()...)...); err != nil {
			return err
		}
		defer g.stop()
		scr := startScraper(ctx, []*gateway{g})
		defer scr.close()
		if grpcP, err = grpcPathWith("gateway gRPC", g.grpcAddr, g.pid(), 4, d.grpcConfig(false), ids); err != nil {
			return err
		}
		restP = restPathWith("gateway REST", g, d.httpClient(false), ids, d.restHeader(false))
		suffix, what = "-dress", "production dress (TLS, API key, policy, audit, /metrics every 15 s) with shares configured"
	} else {
		if g, err = startGateway(ctx, o, s, "gateway-profile", o.gatewayBin); err != nil {
			return err
		}
		defer g.stop()
		if grpcP, err = grpcPath("gateway gRPC", g.grpcAddr, g.pid(), 4, ids, callOptions(o)...); err != nil {
			return err
		}
		restP = restPath(g, ids, o.header)
	}
	defer grpcP.close()
	defer restP.close()
	secs := max(1, int(o.segment/time.Second))
	var md strings.Builder
	fmt.Fprintf(&md, "### Where the gateway's CPU goes: %s, saturation (%d callers), %ds per transport\n\n", what, o.conc, secs)
	for _, p := range []struct {
		path
		file string
	}{{grpcP, "cpu-grpc" + suffix + ".pprof"}, {restP, "cpu-rest" + suffix + ".pprof"}} {
		closedLoop(ctx, o.conc, o.warmup, 0, p.call)
		var wg sync.WaitGroup
		var res sample
		// The load runs half a second longer than the profile on each side's account; calls are counted at the rate.
		wg.Go(func() { res = closedLoop(ctx, o.conc, time.Duration(secs)*time.Second+500*time.Millisecond, 0, p.call) })
		file := filepath.Join(dir, p.file)
		err := save(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", g.pprofAddr, secs), file)
		wg.Wait()
		if err != nil {
			return err
		}
		logf("%s: %.0f calls/s while profiling, %d failed", p.name, res.rate(), res.errs)
		a, err := attribute(o.gatewayBin, file)
		if err != nil {
			return err
		}
		md.WriteString(a.markdown(p.name, res.rate()*float64(secs)))
	}
	fmt.Print(md.String())
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md.String()), 0o600); err != nil {
			return err
		}
	}
	return save("http://"+g.pprofAddr+"/debug/pprof/allocs", filepath.Join(dir, "allocs"+suffix+".pprof"))
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
