package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// IAMConfig is what the Keystone password flow needs to obtain a project-scoped token.
type IAMConfig struct {
	Endpoint   string // e.g. https://iam.cn-north-4.myhuaweicloud.com
	Domain     string // account (domain) name
	User       string // IAM user name
	Password   string
	Project    string       // project id (32 hex characters) or project name
	HTTPClient *http.Client // optional; default built from NewTransport()
	Clock      clock.Clock  // default clock.Real{}
	OnRefresh  func(error)  // optional; told of every token fetch (nil error: a new token), for metrics
	Logger     *slog.Logger // optional; warns when IAM's clock and ours disagree
}

// String never prints the password, so that a logged configuration is safe.
func (c IAMConfig) String() string {
	return fmt.Sprintf("upstream.IAMConfig{Endpoint: %q, Domain: %q, User: %q, Password: REDACTED, Project: %q}",
		c.Endpoint, c.Domain, c.User, c.Project)
}

// GoString is String, for %#v.
func (c IAMConfig) GoString() string { return c.String() }

const (
	// iamFetchTimeout bounds one token request; it runs detached from the callers waiting for it (one caller
	// giving up must not fail the others), so it needs a limit of its own.
	iamFetchTimeout = 30 * time.Second
	// iamRetryPause spaces refresh attempts while IAM fails and the current token is still valid.
	iamRetryPause = 30 * time.Second
	// iamSkewWarning is how far IAM's clock may be from ours before we say so: lifetimes are measured on IAM's own
	// clock, so skew does no harm, but it breaks AK/SK signing and reading logs side by side.
	iamSkewWarning = time.Minute
)

var projectIDPattern = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

type iamToken struct {
	value     string
	expires   time.Time
	refreshAt time.Time
}

// iamFlight is one token request in progress; everyone who needs a token meanwhile waits on done.
type iamFlight struct {
	done chan struct{}
	tok  *iamToken
	err  error
}

type iamAuth struct {
	cfg    IAMConfig
	hc     *http.Client
	clock  clock.Clock
	ctx    context.Context // ends with Close; parent of every token request
	cancel context.CancelFunc

	mu     sync.Mutex
	tok    *iamToken
	flight *iamFlight
}

// NewIAMPassword returns an Authenticator that sends a project-scoped IAM token as X-Auth-Token, obtained with
// the Keystone password method, cached, refreshed well before it expires (one request at a time however many
// calls need it), and refreshed once more when KooPhone says it is no longer valid.
func NewIAMPassword(cfg IAMConfig) Authenticator {
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	a := &iamAuth{cfg: cfg, hc: httpClient(cfg.HTTPClient, DefaultMaxConnsPerHost, true), clock: cfg.Clock}
	if a.clock == nil {
		a.clock = clock.Real{}
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

func (a *iamAuth) validate() error {
	c := a.cfg
	if c.Endpoint == "" || c.Domain == "" || c.User == "" || c.Password == "" || c.Project == "" {
		return &Error{Kind: KindAuth, Message: "IAM: endpoint, domain, user, password and project are all required"}
	}
	return nil
}

func (a *iamAuth) Authorize(req *http.Request, _ []byte, _ time.Time) error {
	tok, err := a.token(req.Context())
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", tok.value)
	return nil
}

// Reject drops the token req carried, unless it was already replaced, so that the retry fetches a new one.
func (a *iamAuth) Reject(req *http.Request) bool {
	sent := req.Header.Get("X-Auth-Token")
	a.mu.Lock()
	if a.tok != nil && a.tok.value == sent {
		a.tok = nil
	}
	a.mu.Unlock()
	return true
}

func (a *iamAuth) Principal() string {
	return "iam:" + a.cfg.Endpoint + "|" + a.cfg.Domain + "|" + a.cfg.User + "|" + a.cfg.Project
}

func (a *iamAuth) Close() {
	a.cancel()
	a.hc.CloseIdleConnections()
}

func (a *iamAuth) String() string {
	return fmt.Sprintf("upstream.IAMPassword{endpoint: %q, domain: %q, user: %q, password: REDACTED, project: %q}",
		a.cfg.Endpoint, a.cfg.Domain, a.cfg.User, a.cfg.Project)
}

func (a *iamAuth) GoString() string { return a.String() }

// token returns a token to send. A fresh one is used as is. Past its refresh time, one caller starts a refresh
// and waits for it while the others keep using the still-valid token; with no valid token everyone waits for the
// single refresh in flight.
func (a *iamAuth) token(ctx context.Context) (*iamToken, error) {
	a.mu.Lock()
	now := a.clock.Now()
	cur := a.tok
	if cur != nil && now.Before(cur.refreshAt) {
		a.mu.Unlock()
		return cur, nil
	}
	valid := cur != nil && now.Before(cur.expires)
	f := a.flight
	if f == nil {
		// The refresh runs on the authenticator's own context, not this caller's: every waiting caller shares it,
		// and one of them giving up must not cancel it for the rest.
		f = a.startLocked() //nolint:contextcheck // deliberate, see above
	} else if valid {
		a.mu.Unlock()
		return cur, nil
	}
	a.mu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			if valid {
				return cur, nil // IAM is failing but the old token still works: keep calling KooPhone
			}
			return nil, f.err
		}
		return f.tok, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *iamAuth) startLocked() *iamFlight {
	f := &iamFlight{done: make(chan struct{})}
	a.flight = f
	go func() {
		tok, err := a.fetch()
		if a.cfg.OnRefresh != nil {
			a.cfg.OnRefresh(err)
		}
		a.mu.Lock()
		if err == nil {
			a.tok = tok
		} else if cur := a.tok; cur != nil {
			// Keep the valid token but do not ask IAM again at once: every call would.
			next := a.clock.Now().Add(iamRetryPause)
			a.tok = &iamToken{value: cur.value, expires: cur.expires, refreshAt: next}
		}
		a.flight = nil
		f.tok, f.err = tok, err
		a.mu.Unlock()
		close(f.done)
	}()
	return f
}

// Keystone password-method request body, field order as in IAM's documentation.
type iamRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password struct {
				User struct {
					Name     string `json:"name"`
					Password string `json:"password"`
					Domain   struct {
						Name string `json:"name"`
					} `json:"domain"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
		Scope struct {
			Project iamProject `json:"project"`
		} `json:"scope"`
	} `json:"auth"`
}

type iamProject struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

func (a *iamAuth) requestBody() []byte {
	var r iamRequest
	r.Auth.Identity.Methods = []string{"password"}
	u := &r.Auth.Identity.Password.User
	u.Name, u.Password, u.Domain.Name = a.cfg.User, a.cfg.Password, a.cfg.Domain
	if projectIDPattern.MatchString(a.cfg.Project) {
		r.Auth.Scope.Project.ID = a.cfg.Project
	} else {
		r.Auth.Scope.Project.Name = a.cfg.Project
	}
	b, _ := json.Marshal(&r) // strings only: cannot fail
	return b
}

func (a *iamAuth) fetch() (*iamToken, error) {
	ctx, cancel := context.WithTimeout(a.ctx, iamFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Endpoint+"/v3/auth/tokens",
		bytes.NewReader(a.requestBody()))
	if err != nil {
		return nil, a.fail(0, "bad IAM endpoint", nil)
	}
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	req.Header.Set("Accept", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, a.fail(0, "IAM unreachable", err)
	}
	defer func() { _ = resp.Body.Close() }() // read below; a failed close changes nothing about the answer
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, a.fail(resp.StatusCode, "reading IAM answer", err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, a.fail(resp.StatusCode, "IAM refused the token request: "+iamErrorText(raw), nil)
	}
	value := resp.Header.Get("X-Subject-Token")
	if value == "" {
		return nil, a.fail(resp.StatusCode, "IAM answer has no X-Subject-Token", nil)
	}
	var body struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			IssuedAt  string `json:"issued_at"`
		} `json:"token"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, a.fail(resp.StatusCode, "IAM answer is not JSON", nil)
	}
	expires, err := time.Parse(time.RFC3339Nano, body.Token.ExpiresAt)
	if err != nil {
		return nil, a.fail(resp.StatusCode, "IAM answer has no valid token.expires_at", nil)
	}
	arrived := a.clock.Now()
	life, err := a.lifetime(expires, body.Token.IssuedAt, arrived)
	if err != nil {
		return nil, a.fail(resp.StatusCode, err.Error(), nil)
	}
	// The token's life is counted from when the answer arrived, on our clock: both ends of it come from IAM's
	// clock, so a gateway whose clock is hours or days off IAM's still uses and refreshes it on time.
	local := arrived.Add(life)
	return &iamToken{value: value, expires: local, refreshAt: local.Add(-refreshMargin(life))}, nil
}

// lifetime is how long a token lives by IAM's own clock: expires_at − issued_at. Without a usable issued_at (IAM
// always sends one; a proxy might strip it) it falls back to expires_at − our clock, which is only right when the
// two clocks agree.
func (a *iamAuth) lifetime(expires time.Time, issuedAt string, arrived time.Time) (time.Duration, error) {
	issued, err := time.Parse(time.RFC3339Nano, issuedAt)
	if err != nil {
		life := expires.Sub(arrived)
		if life <= 0 {
			return 0, errors.New("IAM issued an already expired token by our clock and sent no issued_at to measure it by")
		}
		return life, nil
	}
	life := expires.Sub(issued)
	if life <= 0 {
		return 0, fmt.Errorf("IAM issued a token whose expires_at (%s) is not after its issued_at (%s)",
			expires.UTC().Format(time.RFC3339), issued.UTC().Format(time.RFC3339))
	}
	// issued_at is stamped just before the answer leaves IAM, so issued − arrived is the skew up to one round trip.
	if skew := issued.Sub(arrived); skew > iamSkewWarning || skew < -iamSkewWarning {
		a.logger().Warn("IAM's clock and this host's differ; token lifetimes follow IAM's clock",
			"skew", skew.Round(time.Second).String(), "iam_time", issued.UTC().Format(time.RFC3339),
			"local_time", arrived.UTC().Format(time.RFC3339))
	}
	return life, nil
}

func (a *iamAuth) logger() *slog.Logger {
	if a.cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.cfg.Logger
}

// refreshMargin is how long before expiry a token is replaced: when a quarter of its life or an hour remains,
// whichever comes first (6 h early for IAM's 24 h tokens), but never earlier than half-way through a short-lived
// token, which would otherwise be refreshed on every call.
func refreshMargin(life time.Duration) time.Duration {
	return max(life/4, min(time.Hour, life/2))
}

// fail builds an IAM error. The message is scrubbed of the password in case IAM (or a proxy) echoes the request.
func (a *iamAuth) fail(status int, msg string, cause error) *Error {
	if cause != nil {
		// Transport errors name the URL and the network failure only; keep them for errors.Is/As.
		msg += ": " + cause.Error()
	}
	if a.cfg.Password != "" {
		msg = strings.ReplaceAll(msg, a.cfg.Password, "REDACTED")
	}
	return &Error{Op: "IAM token", Kind: KindAuth, HTTPStatus: status, Message: msg, Err: cause}
}

// iamErrorText extracts IAM's error description ({"error":{"code","message"}} or {"error_code","error_msg"}).
func iamErrorText(raw []byte) string {
	var b struct {
		Error struct {
			Code    json.RawMessage `json:"code"`
			Message string          `json:"message"`
		} `json:"error"`
		ErrorCode string `json:"error_code"`
		ErrorMsg  string `json:"error_msg"`
	}
	if json.Unmarshal(raw, &b) != nil {
		return "no JSON error body"
	}
	var s string
	switch {
	case b.Error.Message != "":
		s = strings.TrimSpace(rawText(b.Error.Code) + " " + b.Error.Message)
	case b.ErrorCode != "" || b.ErrorMsg != "":
		s = strings.TrimSpace(b.ErrorCode + " " + b.ErrorMsg)
	default:
		return "no error description"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
