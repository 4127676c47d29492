// Package upstream is the KooPhone REST client: one method per operation, token or AK/SK authentication,
// request ids, retries where a repeat cannot do harm, and lenient decoding of the answers.
package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
)

// Config configures a Client. Endpoint and Auth are required.
type Config struct {
	Endpoint         string        // base URL, e.g. https://koophone.myhuaweicloud.com (http allowed, for the simulator)
	Auth             Authenticator // required
	HTTPClient       *http.Client  // optional; default built from NewTransport(). Redirects are never followed.
	Clock            clock.Clock   // default clock.Real{}
	Retry            RetryPolicy   // default: 3 attempts, 100ms base, 2s cap, full jitter
	MaxResponseBytes int64         // default 8 MiB
	Logger           *slog.Logger  // optional; debug level, never secrets
	UserAgent        string        // default "koophone-gateway"
	// Traced makes each attempt a span of the caller's trace (otelhttp, global tracer provider; default transport
	// only). Leave it off when no trace is exported: otelhttp's per-request bookkeeping is ~5% of the gateway's
	// CPU on a cheap call, for spans nobody receives.
	Traced bool

	// Admission: what every attempt passes before it is sent, shared by all calls of this client.
	Limiter         Limiter       // nil: NewLocalLimiter(Rates, Clock); a fair queue stands in front of it (fair.go)
	Rates           Rates         // the local limiter's rates; zero (and no Limiter): unlimited, no queue
	PollShare       float64       // share of the quota's turns watch polls keep under contention; 0: DefaultPollShare
	Budget          RetryBudget   // retries of all calls together; default 20% of calls, at least 3/s
	Breaker         BreakerConfig // default: opens after 5 failures in a row, for 10s
	MaxInFlight     int           // attempts in flight at once; more wait inside their deadline; default DefaultMaxInFlight
	MaxConnsPerHost int           // connections to KooPhone (default transport only); default DefaultMaxConnsPerHost
	Observer        Observer      // metrics hooks; default NopObserver
}

const defaultMaxResponseBytes = 8 << 20

// Defaults of the client's bounds; the config table shows them (--upstream-max-in-flight, --upstream-max-conns).
const (
	DefaultMaxInFlight     = 256
	DefaultMaxConnsPerHost = 64
)

// Client calls KooPhone. It is safe for concurrent use.
type Client struct {
	endpoint  string // scheme://host[/prefix], no trailing slash
	auth      Authenticator
	hc        *http.Client
	clock     clock.Clock
	retry     RetryPolicy
	maxBytes  int64
	log       *slog.Logger
	userAgent string
	identity  string

	limiter  Limiter
	budget   *retryBudget
	breaker  *breaker
	inFlight chan struct{} // a slot per attempt in flight
	obs      Observer
}

// New checks cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.Auth == nil {
		return nil, errors.New("upstream: Config.Auth is required")
	}
	endpoint := strings.TrimRight(cfg.Endpoint, "/")
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("upstream: Config.Endpoint %q is not an http(s) base URL", cfg.Endpoint)
	}
	if v, ok := cfg.Auth.(validator); ok {
		if err := v.validate(); err != nil {
			return nil, err
		}
	}
	if cfg.MaxConnsPerHost <= 0 {
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	c := &Client{
		endpoint:  endpoint,
		auth:      cfg.Auth,
		hc:        httpClient(cfg.HTTPClient, cfg.MaxConnsPerHost, cfg.Traced),
		clock:     cfg.Clock,
		retry:     cfg.Retry.withDefaults(),
		maxBytes:  cfg.MaxResponseBytes,
		log:       cfg.Logger,
		userAgent: cfg.UserAgent,
	}
	if c.clock == nil {
		c.clock = clock.Real{}
	}
	if c.maxBytes <= 0 {
		c.maxBytes = defaultMaxResponseBytes
	}
	if c.userAgent == "" {
		c.userAgent = "koophone-gateway"
	}
	c.obs = cfg.Observer
	c.limiter = cfg.Limiter
	if c.limiter == nil && cfg.Rates != (Rates{}) {
		c.limiter = NewLocalLimiter(cfg.Rates, c.clock)
	}
	if c.limiter == nil {
		// No quota: nothing to wait for, so nothing to share out either.
		c.limiter = NewLocalLimiter(cfg.Rates, c.clock)
	} else {
		c.limiter = newFairLimiter(c.limiter, cfg.PollShare)
	}
	c.budget = newRetryBudget(cfg.Budget, c.clock)
	c.breaker = newBreaker(cfg.Breaker, c.obs)
	c.inFlight = make(chan struct{}, cfg.MaxInFlight)
	sum := sha256.Sum256([]byte(endpoint + "\x00" + cfg.Auth.Principal()))
	c.identity = hex.EncodeToString(sum[:])[:32]
	return c, nil
}

// Identity is a stable, non-secret id of (endpoint, principal): two clients with the same value see the same
// phones and tasks, so they can share pollers.
func (c *Client) Identity() string { return c.identity }

// BreakerState is the circuit breaker's state: BreakerClosed, BreakerHalfOpen or BreakerOpen.
func (c *Client) BreakerState() string { return c.breaker.state() }

// Close closes idle connections and stops the authenticator's background work (an IAM token request in flight).
func (c *Client) Close() {
	c.hc.CloseIdleConnections()
	if cl, ok := c.auth.(closer); ok {
		cl.Close()
	}
}

// call describes one KooPhone operation invocation.
type call struct {
	op             string
	method         string
	path           string      // already escaped
	query          [][2]string // key, value; empty optional values already left out
	queryRequestID bool        // also send x-request-id as a query parameter (ListInstances)
	body           any         // nil: no body
	read           bool        // safe to repeat: retried on transient failures
	codeInData     bool        // error_code may sit inside data (ListInstances)
}

// attemptResult is the outcome of sending a call once.
type attemptResult struct {
	err          *Error
	notSent      bool          // provably never reached the upstream (no connection was made)
	bodyFailed   bool          // the connection failed while the answer was being read
	authRejected bool          // HTTP 401 or KOOPHONE.API.6001
	inFlight     time.Duration // from sending to the answer or the failure
	req          *http.Request
}

// do runs a call: it sends it, retries it where that is safe, and decodes the answer's data into out.
func (c *Client) do(ctx context.Context, cl call, out any) error {
	id := requestid.FromOrNew(ctx)
	var body []byte
	if cl.body != nil {
		b, err := encodeJSON(cl.body)
		if err != nil {
			return &Error{Op: cl.op, Kind: KindDecode, Message: "encoding the request", Err: err, RequestID: id}
		}
		body = b
	}
	target := c.target(cl, id)
	c.budget.call()
	attempts, spent := 0, 0
	authRetried := false
	for {
		attempts++
		r := c.admittedAttempt(ctx, cl, target, id, body, attempts, out)
		if r.err == nil {
			return nil
		}
		e := r.err
		e.Op, e.RequestID, e.Attempts = cl.op, id, attempts
		// A write that may have reached KooPhone and whose answer was lost: say so, and never send it again.
		e.OutcomeUnknown = !cl.read && !r.notSent && outcomeUnknown(e)
		if e.HTTPStatus == http.StatusTooManyRequests && e.RetryAfter > 0 {
			c.limiter.HoldUntil(c.clock.Now().Add(e.RetryAfter)) // every caller holds back, not only this one
		}
		if ctx.Err() != nil || e.Kind == KindRateLimited || e.Kind == KindCircuitOpen {
			return e
		}
		if r.authRejected {
			// A refused credential is refused before anything is done, so even a write may be sent once more.
			if !authRetried && c.auth.Reject(r.req) {
				authRetried = true
				continue
			}
			e.CredentialRefused = true
			return e
		}
		spent++
		if spent >= c.retry.MaxAttempts || !shouldRetry(cl.read, &r) {
			return e
		}
		if !c.budget.allow() {
			c.obs.Retry(cl.op, false)
			return e // the shared retry budget is spent: an outage is not multiplied by our retries
		}
		c.obs.Retry(cl.op, true)
		wait := max(c.retry.backoff(spent), e.RetryAfter)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return e // waiting would outlast the caller: answer now, RetryAfter tells when to come back
		}
		if !clock.Sleep(c.clock, wait, ctx.Done()) {
			return &Error{
				Op: cl.op, Kind: KindTransport, RequestID: id, Attempts: attempts, RetryAfter: e.RetryAfter,
				Message: "gave up waiting to retry (" + ctx.Err().Error() + "); last failure: " + e.detail(),
				Err:     ctx.Err(),
			}
		}
	}
}

// outcomeUnknown reports a failure after which a write sent to KooPhone may or may not have taken effect: every
// answer that does not prove KooPhone refused it. The connection broke or the answer was unreadable; a proxy
// answered 5xx (its page says nothing of what KooPhone did: a 503 may come after KooPhone carried the write out);
// or KooPhone's own envelope says something failed along the way without saying nothing was done.
func outcomeUnknown(e *Error) bool {
	switch e.Kind {
	case KindTransport, KindDecode:
		return true
	case KindHTTP:
		return e.HTTPStatus >= 500
	case KindAPI:
		return RefusalUnproven(e.Code, e.HTTPStatus)
	}
	return false
}

// RefusalUnproven reports whether an error envelope with code, answered with httpStatus to a write, leaves open
// whether KooPhone carried the write out.
func RefusalUnproven(code string, httpStatus int) bool {
	n := CodeNumber(code)
	if n == "" { // the API gateway's own envelope (APIGW.*): its 5xx are a backend that failed or timed out
		return httpStatus >= 500
	}
	return unprovenCodes[n] || (httpStatus >= 500 && !refusedBeforeWork[n])
}

// unprovenCodes are KooPhone's codes (the seed's error table, 6.2) that report a failure part-way without saying
// the request was not carried out: Redis returned nothing (9001), a third-party API failed (9003, 4999), an
// unknown error (9999). A read is retried on the first three; a write's outcome is unknown.
var unprovenCodes = map[string]bool{"9001": true, "9003": true, "4999": true, "9999": true}

// refusedBeforeWork are the codes KooPhone answers with HTTP 500 that refuse a request before any work: a token it
// cannot parse (6002), a decryption failure (9000), a Redis lock it could not take (9002).
var refusedBeforeWork = map[string]bool{"6002": true, "9000": true, "9002": true}

// CodeNumber returns the numeric part of a KooPhone error code ("4001" of "KOOPHONE.API.4001", "KooPhone.API.4001"
// or "KPAPI.4001"), or "" when the code is not KooPhone's (an API gateway code such as APIGW.0301, say).
func CodeNumber(code string) string {
	upper := strings.ToUpper(code)
	for _, prefix := range []string{"KOOPHONE.API.", "KP.API.", "KPAPI."} {
		if strings.HasPrefix(upper, prefix) {
			return code[len(prefix):]
		}
	}
	return ""
}

// admittedAttempt sends one attempt once admission lets it: the breaker (fail fast while open), the rate limiter and
// the in-flight bound (both waiting inside the caller's deadline). Whatever admission refuses was never sent.
func (c *Client) admittedAttempt(ctx context.Context, cl call, target, id string, body []byte, n int, out any) attemptResult {
	refused := func(e *Error) attemptResult {
		c.obs.Attempt(cl.op, resultClass(e), 0, n, 0)
		return attemptResult{err: e, notSent: true}
	}
	// Checked first, so an open breaker never waits for the limiter. (Only a look: a half-open breaker's probe
	// slot is taken by allow below, whose done is always called.)
	if c.breaker.state() == BreakerOpen {
		return refused(c.breaker.openError())
	}
	start := c.clock.Now()
	if err := c.limiter.Wait(ctx, !cl.read); err != nil {
		var rl *RateLimitedError
		if errors.As(err, &rl) {
			c.obs.LimiterWait(!cl.read, c.clock.Now().Sub(start), true)
			return refused(&Error{Kind: KindRateLimited, RetryAfter: rl.Wait, Message: rl.Error(), Err: err})
		}
		return attemptResult{err: &Error{Kind: KindTransport, Message: "waiting for the rate limit: " + err.Error(), Err: err}, notSent: true}
	}
	select {
	case c.inFlight <- struct{}{}:
	case <-ctx.Done():
		return attemptResult{err: &Error{Kind: KindTransport, Message: "waiting for a free upstream slot: " + ctx.Err().Error(), Err: ctx.Err()}, notSent: true}
	}
	c.obs.LimiterWait(!cl.read, c.clock.Now().Sub(start), false)
	c.obs.InFlight(1)
	defer func() {
		<-c.inFlight
		c.obs.InFlight(-1)
	}()
	done, e := c.breaker.allow()
	if e != nil {
		return refused(e)
	}
	r := c.attempt(ctx, cl, target, id, body, n, out)
	done(&r, ctx)
	return r
}

func (c *Client) target(cl call, id string) string {
	t := c.endpoint + cl.path
	if len(cl.query) == 0 && !cl.queryRequestID {
		return t
	}
	q := url.Values{}
	for _, kv := range cl.query {
		q.Add(kv[0], kv[1])
	}
	if cl.queryRequestID {
		q.Set("x-request-id", id)
	}
	// Sent in canonical form (sorted, APIG escaping) so that an AK/SK signature covers exactly what goes out.
	return t + "?" + canonicalQuery(q)
}

func (c *Client) attempt(ctx context.Context, cl call, target, id string, body []byte, n int, out any) attemptResult {
	var gotConn atomic.Bool
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
	})
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(tctx, cl.method, target, rd)
	if err != nil {
		return attemptResult{err: &Error{Kind: KindTransport, Message: "building the request", Err: err}}
	}
	req.Header.Set("X-Request-Id", id)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	if err := c.auth.Authorize(req, body, c.clock.Now()); err != nil {
		return attemptResult{err: authError(ctx, err)}
	}

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		r := attemptResult{req: req, notSent: !gotConn.Load() || isDialError(err), inFlight: time.Since(start)}
		if ctxErr := ctx.Err(); ctxErr != nil {
			r.err = &Error{Kind: KindTransport, Err: ctxErr}
		} else {
			r.err = &Error{Kind: KindTransport, Err: err}
		}
		c.logAttempt(ctx, cl, id, n, 0, start, r.err)
		c.obs.Attempt(cl.op, resultClass(r.err), 0, n, time.Since(start))
		return r
	}
	defer func() { _ = resp.Body.Close() }() // read below; a failed close changes nothing about the answer

	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	r := attemptResult{req: req, inFlight: time.Since(start)}
	switch {
	case err != nil && ctx.Err() != nil:
		r.err = &Error{Kind: KindTransport, HTTPStatus: resp.StatusCode, Err: ctx.Err()}
	case err != nil:
		r.bodyFailed = true
		r.err = &Error{Kind: KindDecode, HTTPStatus: resp.StatusCode, Message: "answer cut short", Err: err}
	case int64(len(raw)) > c.maxBytes:
		r.err = &Error{Kind: KindDecode, HTTPStatus: resp.StatusCode,
			Message: fmt.Sprintf("answer larger than %d bytes", c.maxBytes)}
	default:
		if e := decodeResponse(resp.StatusCode, raw, cl.codeInData, out); e != nil {
			r.err = e
		}
	}
	if r.err != nil {
		r.err.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now())
		r.authRejected = credentialRefused(resp.StatusCode, r.err.Code)
	}
	c.logAttempt(ctx, cl, id, n, resp.StatusCode, start, r.err)
	c.obs.Attempt(cl.op, resultClass(r.err), resp.StatusCode, n, time.Since(start))
	return r
}

// credentialRefused reports an answer that refuses the credential itself: KOOPHONE.API.6001, or an HTTP 401 from
// the API gateway (APIG.* or APIGW.*) or with no code at all. KooPhone's own 401s, 1001 and 1003, refuse a phone or the API
// to a valid credential: refreshing the token for them would cost an IAM call and send the request (even a write)
// a second time for nothing.
func credentialRefused(httpStatus int, code string) bool {
	if code == "KOOPHONE.API.6001" {
		return true
	}
	return httpStatus == http.StatusUnauthorized && (code == "" || strings.HasPrefix(code, "APIG"))
}

// authError turns an Authenticator's failure into the call's error.
func authError(ctx context.Context, err error) *Error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return &Error{Kind: KindTransport, Message: "waiting for a token: " + ctxErr.Error(), Err: ctxErr}
	}
	if e, ok := AsError(err); ok {
		cp := *e
		if cp.Message == "" {
			cp.Message = "authentication failed"
		}
		cp.Kind = KindAuth
		return &cp
	}
	return &Error{Kind: KindAuth, Message: "authentication failed", Err: err}
}

func (c *Client) logAttempt(ctx context.Context, cl call, id string, n, status int, start time.Time, e *Error) {
	if c.log == nil || !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("op", cl.op),
		slog.String("method", cl.method),
		slog.String("path", cl.path),
		slog.Int("attempt", n),
		slog.Int("status", status),
		slog.Duration("duration", time.Since(start)),
	}
	if requestid.From(ctx) == "" {
		// The id was made here; a caller's id is added to every line by the server's log handler.
		attrs = append(attrs, slog.String("request_id", id))
	}
	if e != nil {
		attrs = append(attrs, slog.String("kind", e.Kind.String()))
		if e.Code != "" {
			attrs = append(attrs, slog.String("code", e.Code))
		}
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "koophone call", attrs...)
}

// encodeJSON marshals v without HTML escaping (an install_package_url keeps its "&" readable) and without the
// encoder's trailing newline: these bytes are both sent and signed.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
