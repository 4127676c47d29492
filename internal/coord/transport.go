package coord

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// QuotaTransport spends the shared quota on every request to KooPhone (retries included: each attempt costs the
// tenant's budget) and turns a 429's Retry-After into a hold on every replica. It lets the quota sit in front of
// the upstream client without changing it; an upstream client that waits on a Limiter itself needs none of this.
type QuotaTransport struct {
	Next  http.RoundTripper
	Quota Limiter
	Clock clock.Clock // default clock.Real{}
}

// RoundTrip implements http.RoundTripper.
func (t QuotaTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.Quota.Wait(req.Context(), isWrite(req)); err != nil {
		return nil, err
	}
	res, err := t.Next.RoundTrip(req)
	if err == nil && res.StatusCode == http.StatusTooManyRequests {
		if secs, perr := strconv.Atoi(strings.TrimSpace(res.Header.Get("Retry-After"))); perr == nil && secs > 0 {
			clk := t.Clock
			if clk == nil {
				clk = clock.Real{}
			}
			t.Quota.HoldUntil(clk.Now().Add(time.Duration(secs) * time.Second))
		}
	}
	return res, err
}

// readPosts are KooPhone's POST operations that change nothing.
var readPosts = []string{"/batch-query-status", "/prepare-progress", "/auth"}

func isWrite(req *http.Request) bool {
	if req.Method == http.MethodGet || req.Method == http.MethodHead {
		return false
	}
	for _, p := range readPosts {
		if strings.HasSuffix(req.URL.Path, p) {
			return false
		}
	}
	return true
}

// CloseIdleConnections lets the upstream client's Close reach the transport underneath.
func (t QuotaTransport) CloseIdleConnections() {
	if c, ok := t.Next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
