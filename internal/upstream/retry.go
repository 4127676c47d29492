package upstream

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// RetryPolicy bounds the automatic retries of one call. Zero fields take the defaults.
type RetryPolicy struct {
	MaxAttempts int           // sends per call, the first included; default 3; 1 disables retries
	BaseDelay   time.Duration // backoff before the first retry is drawn from [0, BaseDelay]; default 100ms
	MaxDelay    time.Duration // cap of the exponential backoff; default 2s
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 3
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 100 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 2 * time.Second
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	return p
}

// backoff returns the wait before retry number n (1 for the first retry): "full jitter", uniformly drawn from
// [0, min(MaxDelay, BaseDelay·2^(n-1))], so that many gateways retrying after one upstream hiccup spread out
// instead of coming back in lockstep.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return time.Duration(rand.Int64N(int64(d) + 1)) //nolint:gosec // G404: jitter spreads retries; nothing to guess
}

// Upstream codes that say "temporarily unable", after which a read may be sent again.
var retryableCodes = map[string]bool{
	"KOOPHONE.API.9001": true, // Redis returned nothing
	"KOOPHONE.API.9003": true, // third-party API error (500)
	"KOOPHONE.API.4999": true, // third-party API error (400)
}

func retryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// shouldRetry decides whether a failed attempt may be sent again. A request that provably never left this
// process may always be repeated. Anything else is repeated only for reads: a write (CreateInstance orders and
// bills phones) that may have reached KooPhone must never be sent twice by us.
func shouldRetry(read bool, r *attemptResult) bool {
	if r.notSent {
		return true
	}
	if !read {
		return false
	}
	e := r.err
	switch e.Kind {
	case KindTransport:
		return true
	case KindDecode:
		return r.bodyFailed // the connection broke while the answer was being read
	case KindHTTP:
		return retryableStatus(e.HTTPStatus)
	case KindAPI:
		return retryableCodes[e.Code] || retryableStatus(e.HTTPStatus)
	}
	return false
}
