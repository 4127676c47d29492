package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHeldRESTStreamsCannotStarveUnaryREST holds two thousand REST watch streams, more than the mirror's stream
// connections admit (the server is set to 50 streams per connection), so every stream slot is taken and the rest
// of the watches queue for one; unary REST calls must still answer, because they travel on connections of their
// own. With one shared connection they would queue behind the watches.
func TestHeldRESTStreamsCannotStarveUnaryREST(t *testing.T) {
	const perConn, held = 50, 2000
	// Every watch is one HTTP/1.1 connection from 127.0.0.1: lift the per-source bound, which is not under test.
	e := newEnv(t, fmt.Sprintf("--max-concurrent-streams=%d", perConn), "--max-connections-per-source=4096")
	task := startTask(e, e.phone())
	url := e.base + "/v1/instances/tasks/" + task.GetTaskId() + "/watch"

	ctx, cancel := context.WithCancel(context.Background())
	hc := &http.Client{Transport: &http.Transport{}}
	var open atomic.Int64 // watches that got their first message
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		hc.CloseIdleConnections()
	}()
	for range held {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			res, err := hc.Do(req)
			if err != nil {
				return // cancelled while queued
			}
			defer func() { _ = res.Body.Close() }()
			if _, err := bufio.NewReader(res.Body).ReadString('\n'); err == nil {
				open.Add(1)
			}
			_, _ = io.Copy(io.Discard, res.Body) // held until the test ends
		})
	}
	full := int64(mirrorStreamConns * perConn)
	for deadline := time.Now().Add(60 * time.Second); open.Load() < full; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of the %d stream slots filled", open.Load(), full)
		}
		time.Sleep(10 * time.Millisecond)
	}

	phone := e.phone()
	for range 20 {
		r := e.rest(http.MethodPost, "/v1/instances/batch-query-status", `{"instance_ids":["`+phone+`"]}`)
		if r.status != http.StatusOK {
			t.Fatalf("BatchQueryStatus with %d REST watches held: HTTP %d %s", held, r.status, r.raw)
		}
	}
	if n := open.Load(); n != full {
		t.Errorf("%d watches open, want exactly the %d slots (the others queue)", n, full)
	}
}
