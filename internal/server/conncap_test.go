package server

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestConnectionCap: with --max-connections=1 the REST listener serves one connection at a time; a second client
// is not served (its connection waits in the backlog, holding no file descriptor of ours) until the first closes.
func TestConnectionCap(t *testing.T) {
	e := newEnv(t, "--max-connections=1")
	get := func(c *http.Client, wait time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/healthz", nil)
		res, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body) // read to the end, so the connection stays open for reuse
			_ = res.Body.Close()
		}
		return err
	}
	first := &http.Client{Transport: &http.Transport{}}
	if err := get(first, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// first keeps its connection open (keep-alive): the one slot is taken.
	second := &http.Client{Transport: &http.Transport{}}
	defer second.CloseIdleConnections()
	if err := get(second, 300*time.Millisecond); err == nil {
		t.Fatal("a second connection was served while the cap of one was held")
	}
	first.CloseIdleConnections()
	if err := get(second, 10*time.Second); err != nil {
		t.Fatalf("after the first connection closed: %v", err)
	}
}
