package fleet_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/fleet"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// BenchmarkRunCommandOn1000Phones measures "run a command on every phone" for a fleet of 1,000, the way
// FleetService.RunFleetCommand does it: resolve the selector through ListInstances pages, start AsyncCommand
// batches of 100 with the default concurrency (4), follow each task through a stream hub until every job has
// ended (also with concurrency 10: every batch at once). Real clock, the simulator on loopback with its default job duration (2s) and the gateway's default poll
// intervals (500ms first, 10s at most). Reported per run: wall time (ns/op) and the upstream calls by operation.
//
//	go test -run '^$' -bench RunCommandOn1000Phones -benchtime 3x ./internal/fleet/
func BenchmarkRunCommandOn1000Phones(b *testing.B) {
	for _, conc := range []int{4, 10} {
		b.Run("concurrency="+strconv.Itoa(conc), func(b *testing.B) { benchRunCommand(b, conc) })
	}
}

func benchRunCommand(b *testing.B, concurrency int) {
	var calls map[string]int64
	for b.Loop() {
		b.StopTimer()
		s := sim.New(sim.Config{FleetSize: 1000, Seed: int64(b.N)})
		srv := httptest.NewServer(s)
		creds := s.Credentials()
		tr := upstream.NewTransport()
		up, err := upstream.New(upstream.Config{Endpoint: srv.URL, Auth: upstream.NewAKSK(creds.AK, creds.SK, creds.ProjectID),
			HTTPClient: &http.Client{Transport: tr}})
		if err != nil {
			b.Fatal(err)
		}
		hub := stream.NewLocal[taskState](stream.Config{Clock: clock.Real{}, FirstInterval: 500 * time.Millisecond, MaxInterval: 10 * time.Second})
		e := &env{sim: s, up: up, hub: hub}
		eng := fleet.NewEngine(follower{e}, fleet.Config{Concurrency: concurrency})
		res := fleet.NewResolver(up, fleet.ResolverConfig{})
		b.StartTimer()

		ids, err := res.Resolve(context.Background(), fleet.Selector{Filter: &fleet.Filter{All: true}})
		if err != nil {
			b.Fatal(err)
		}
		c, err := eng.Run(context.Background(), ids, fleet.AsyncCommand(up, "getprop ro.serialno"), 0, 0, func(fleet.Event) error { return nil })
		if err != nil || c.Succeeded != 1000 {
			b.Fatalf("%v %+v", err, c)
		}

		b.StopTimer()
		calls = s.AllCalls()
		hub.Close()
		up.Close()
		tr.CloseIdleConnections()
		srv.Close()
		b.StartTimer()
	}
	for _, op := range []string{"ListInstances", "AsyncCommand", "GetTask"} {
		b.ReportMetric(float64(calls[op]), op+"-calls/op")
	}
}
