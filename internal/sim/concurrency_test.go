package sim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// try is a request that reports failures as errors, for goroutines other than the test's own.
func (e *env) try(method, path string, body any) (*resp, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header = e.headers()
	res, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	out := &resp{status: res.StatusCode, header: res.Header}
	if out.body, err = io.ReadAll(res.Body); err != nil {
		return nil, err
	}
	out.decode()
	if out.status != 200 || out.code() != "0" {
		return out, fmt.Errorf("%s %s: HTTP %d %s", method, path, out.status, out.body)
	}
	return out, nil
}

// A thousand watchers poll one task while others start work and the clock moves: every answer is consistent
// (a job never goes back from done to running) and the race detector stays quiet.
func TestManyConcurrentWatchers(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.ids(10)
	task := e.startTask("/v1/instances/async-command", map[string]any{"command": "id", "instance_ids": ids})
	e.client.Transport.(*http.Transport).MaxIdleConnsPerHost = 1000

	const watchers = 1000
	var wg sync.WaitGroup
	var finished atomic.Int64
	errs := make(chan error, watchers+1)
	stop := make(chan struct{})
	for range watchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer finished.Add(1)
			seenDone := false
			for range 3 {
				r, err := e.try("GET", "/v1/instances/tasks/"+task.TaskID, nil)
				if err != nil {
					errs <- err
					return
				}
				var d struct {
					Jobs []jobDetail `json:"jobs"`
				}
				if err := json.Unmarshal(r.env["data"], &d); err != nil || len(d.Jobs) != len(ids) {
					errs <- fmt.Errorf("jobs %s: %v", r.env["data"], err)
					return
				}
				if d.Jobs[0].Status == 2 {
					seenDone = true
				} else if seenDone {
					errs <- fmt.Errorf("job went back to status %d", d.Jobs[0].Status)
					return
				}
			}
		}()
	}
	// Meanwhile: other operations and a moving clock.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.try("POST", "/v1/instances/batch-query-status", map[string]any{"instance_ids": ids}); err != nil {
				errs <- err
				return
			}
			if _, err := e.try("POST", "/v1/instances/batch-reset", map[string]any{"instance_ids": ids[i%10 : i%10+1]}); err != nil {
				errs <- err
				return
			}
			e.clk.Advance(100 * time.Millisecond)
		}
	}()
	for finished.Load() < watchers {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.sim.Calls("GetTask"); n != 3*watchers {
		t.Errorf("GetTask calls %d, want %d", n, 3*watchers)
	}
}
