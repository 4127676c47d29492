package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

const (
	iamPassword = "iam-P@ssw0rd-SECRET"
	projectID   = "9d71ec45aef04d84a991c12250227b5c"
)

// iamServer is a Keystone token endpoint issuing "iam-token-N" valid for life on the fake clock.
type iamServer struct {
	*httptest.Server
	fc     *clock.Fake
	life   time.Duration
	calls  atomic.Int32
	gate   chan struct{} // when set, every token request waits for it to close
	mu     sync.Mutex
	bodies [][]byte
	answer func(w http.ResponseWriter, n int) bool // optional override; true when it answered
}

func newIAM(t *testing.T, fc *clock.Fake) *iamServer {
	s := &iamServer{fc: fc, life: 24 * time.Hour}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.calls.Add(1))
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, body)
		s.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/v3/auth/tokens" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		gate, answer := s.gate, s.answer
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		if answer != nil && answer(w, n) {
			return
		}
		now := s.fc.Now()
		w.Header().Set("X-Subject-Token", fmt.Sprintf("iam-token-%d", n))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"token":{"expires_at":%q,"issued_at":%q,"methods":["password"]}}`,
			now.Add(s.life).Format("2006-01-02T15:04:05.000000Z"), now.Format("2006-01-02T15:04:05.000000Z"))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *iamServer) setGate(g chan struct{}) {
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
}

func (s *iamServer) setAnswer(f func(w http.ResponseWriter, n int) bool) {
	s.mu.Lock()
	s.answer = f
	s.mu.Unlock()
}

// hold makes IAM wait until the returned release is called (also at cleanup, so a failing test cannot hang on
// a handler that never returns).
func (s *iamServer) hold(t *testing.T) (release func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	s.setGate(gate)
	t.Cleanup(release)
	return release
}

func iamConfig(iam *iamServer, project string) IAMConfig {
	return IAMConfig{Endpoint: iam.URL, Domain: "acme", User: "robot", Password: iamPassword, Project: project, Clock: iam.fc}
}

// tokenUpstream answers okBody to requests carrying an accepted token, 401 otherwise.
func tokenUpstream(t *testing.T, accept func(token string, n int) bool) *fakeUpstream {
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if accept(r.Header.Get("X-Auth-Token"), n) {
			reply(w, 200, okBody)
			return
		}
		reply(w, 401, `{"error_code":"KOOPHONE.API.6001","error_msg":"身份验证失败!"}`)
	})
}

func tokensSeen(u *fakeUpstream) []string {
	var out []string
	for _, r := range u.requests() {
		out = append(out, r.Header.Get("X-Auth-Token"))
	}
	return out
}

func TestIAMTokenLifecycle(t *testing.T) {
	fc := clock.NewFake(epoch)
	iam := newIAM(t, fc)
	u := tokenUpstream(t, func(string, int) bool { return true })
	c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewIAMPassword(iamConfig(iam, projectID)); cfg.Clock = fc })
	ctx := context.Background()
	callOK := func() {
		t.Helper()
		if _, err := c.BatchQueryStatus(ctx, InstanceIDsRequest{InstanceIDs: []string{"a"}}); err != nil {
			t.Fatal(err)
		}
	}

	callOK()
	callOK()
	if n := iam.calls.Load(); n != 1 {
		t.Fatalf("IAM calls after two KooPhone calls: %d", n)
	}
	fc.Advance(17 * time.Hour) // a 24 h token is refreshed 6 h before it expires
	callOK()
	if n := iam.calls.Load(); n != 1 {
		t.Fatalf("refreshed too early: %d IAM calls", n)
	}
	fc.Advance(2 * time.Hour) // 19 h: in the refresh window, still valid
	callOK()
	if n := iam.calls.Load(); n != 2 {
		t.Fatalf("IAM calls in the refresh window: %d", n)
	}
	fc.Advance(30 * time.Hour) // long past the second token's expiry
	callOK()
	want := []string{"iam-token-1", "iam-token-1", "iam-token-1", "iam-token-2", "iam-token-3"}
	if got := tokensSeen(u); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("tokens sent %v, want %v", got, want)
	}

	// The request body: Keystone password method, project scoped by id (32 hex) or by name.
	wantBody := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"robot","password":"` +
		iamPassword + `","domain":{"name":"acme"}}}},"scope":{"project":{"id":"` + projectID + `"}}}}`
	iam.mu.Lock()
	got := string(iam.bodies[0])
	iam.mu.Unlock()
	if got != wantBody {
		t.Fatalf("IAM body\n got %s\nwant %s", got, wantBody)
	}
	byName := NewIAMPassword(iamConfig(iam, "cn-north-7")).(*iamAuth)
	defer byName.Close()
	if b := string(byName.requestBody()); !strings.Contains(b, `"scope":{"project":{"name":"cn-north-7"}}`) {
		t.Fatalf("project by name: %s", b)
	}
}

func TestIAMSingleFlight(t *testing.T) {
	fc := clock.NewFake(epoch)
	iam := newIAM(t, fc)
	u := tokenUpstream(t, func(string, int) bool { return true })
	c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewIAMPassword(iamConfig(iam, projectID)); cfg.Clock = fc })

	burst := func(wantCalls int32) {
		t.Helper()
		release := iam.hold(t)
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for range 100 {
			wg.Go(func() {
				if _, err := c.GetTask(context.Background(), "t"); err != nil {
					errs <- err
				}
			})
		}
		for iam.calls.Load() < wantCalls {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // let the other callers pile up behind the flight
		release()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := iam.calls.Load(); n != wantCalls {
			t.Fatalf("IAM calls: %d, want %d", n, wantCalls)
		}
	}
	burst(1)                   // no token yet
	fc.Advance(25 * time.Hour) // the token has expired
	burst(2)
	iam.setGate(nil)
	if got := u.count(); got != 200 {
		t.Fatalf("KooPhone calls: %d", got)
	}
}

func TestIAMRefreshAndRetryOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reject string // answer to a stale token
		status int
	}{
		{"HTTP 401", `{"error_msg":"token expired","error_code":"APIG.1002"}`, 401},
		{"HTTP 401 without envelope", `Unauthorized`, 401},
		{"KOOPHONE.API.6001 with 200", `{"error_code":"KOOPHONE.API.6001","error_msg":"身份验证失败!"}`, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := clock.NewFake(epoch)
			iam := newIAM(t, fc)
			u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if r.Header.Get("X-Auth-Token") == "iam-token-1" {
					reply(w, tc.status, tc.reject)
					return
				}
				_, _ = w.Write(fixture(t, "create.json"))
			})
			c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewIAMPassword(iamConfig(iam, projectID)); cfg.Clock = fc })
			// A write: the refused attempt did nothing upstream, so it is sent once more.
			order, err := c.CreateInstance(requestid.With(context.Background(), "rid-401"), CreateInstanceRequest{Count: 1})
			if err != nil {
				t.Fatal(err)
			}
			if order.OrderID != "CS2412261442DBN4E" {
				t.Fatalf("order %+v", order)
			}
			if got := tokensSeen(u); strings.Join(got, ",") != "iam-token-1,iam-token-2" || iam.calls.Load() != 2 {
				t.Fatalf("tokens sent %v, IAM calls %d", got, iam.calls.Load())
			}
			reqs := u.requests()
			if reqs[0].Header.Get("x-request-id") != "rid-401" || reqs[1].Header.Get("x-request-id") != "rid-401" ||
				!bytes.Equal(reqs[0].Body, reqs[1].Body) {
				t.Fatal("the retry is not the same request")
			}
		})
	}
}

func TestIAMSecondRejectionFails(t *testing.T) {
	fc := clock.NewFake(epoch)
	iam := newIAM(t, fc)
	u := tokenUpstream(t, func(string, int) bool { return false })
	c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewIAMPassword(iamConfig(iam, projectID)); cfg.Clock = fc })
	_, err := c.GetTask(context.Background(), "t")
	e := asError(t, err)
	if e.Kind != KindAPI || e.Code != "KOOPHONE.API.6001" || e.HTTPStatus != 401 || e.Attempts != 2 {
		t.Fatalf("got %#v", e)
	}
	if u.count() != 2 || iam.calls.Load() != 2 {
		t.Fatalf("KooPhone calls %d, IAM calls %d", u.count(), iam.calls.Load())
	}
	if containsAny(err.Error(), iamPassword, "iam-token-") {
		t.Fatalf("secret in error: %v", err)
	}
}

// A static token cannot be refreshed: a 401 is final and nothing is sent twice.
func TestStaticTokenRejected(t *testing.T) {
	u := tokenUpstream(t, func(string, int) bool { return false })
	c := newClient(t, u.URL)
	_, err := c.GetTask(context.Background(), "t")
	if e := asError(t, err); e.Attempts != 1 || u.count() != 1 || containsAny(err.Error(), testToken) {
		t.Fatalf("got %#v after %d calls", e, u.count())
	}
}

func TestIAMFailures(t *testing.T) {
	cases := []struct {
		name   string
		answer func(w http.ResponseWriter, n int) bool
	}{
		{"refused, echoing the password", func(w http.ResponseWriter, n int) bool {
			reply(w, 401, `{"error":{"code":401,"message":"The username or password is wrong: `+iamPassword+`","title":"Unauthorized"}}`)
			return true
		}},
		{"no X-Subject-Token", func(w http.ResponseWriter, n int) bool {
			reply(w, 201, `{"token":{"expires_at":"2099-01-01T00:00:00.000000Z"}}`)
			return true
		}},
		{"bad expires_at", func(w http.ResponseWriter, n int) bool {
			w.Header().Set("X-Subject-Token", "iam-token-x")
			reply(w, 201, `{"token":{"expires_at":"tomorrow"}}`)
			return true
		}},
		{"already expired", func(w http.ResponseWriter, n int) bool {
			w.Header().Set("X-Subject-Token", "iam-token-x")
			reply(w, 201, `{"token":{"expires_at":"2001-01-01T00:00:00.000000Z"}}`)
			return true
		}},
		{"not JSON", func(w http.ResponseWriter, n int) bool {
			w.Header().Set("X-Subject-Token", "iam-token-x")
			reply(w, 201, `<html>`)
			return true
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc := clock.NewFake(epoch)
			iam := newIAM(t, fc)
			iam.setAnswer(tc.answer)
			u := tokenUpstream(t, func(string, int) bool { return true })
			c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewIAMPassword(iamConfig(iam, projectID)); cfg.Clock = fc })
			_, err := c.CreateInstance(context.Background(), CreateInstanceRequest{Count: 1})
			e := asError(t, err)
			if e.Kind != KindAuth || e.Op != "CreateInstance" || e.RequestID == "" || u.count() != 0 {
				t.Fatalf("got %#v, KooPhone calls %d", e, u.count())
			}
			if containsAny(err.Error(), iamPassword, "iam-token-x") || containsAny(fmt.Sprintf("%+v", e), iamPassword) {
				t.Fatalf("secret in error: %v", err)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		iam := newIAM(t, clock.NewFake(epoch))
		iam.Close()
		u := tokenUpstream(t, func(string, int) bool { return true })
		c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewIAMPassword(iamConfig(iam, projectID)) })
		_, err := c.GetTask(context.Background(), "t")
		if e := asError(t, err); e.Kind != KindAuth || containsAny(err.Error(), iamPassword) {
			t.Fatalf("got %#v", e)
		}
	})
}

// While IAM fails, a token that is due for refresh but still valid keeps being used.
func TestIAMRefreshFailureKeepsValidToken(t *testing.T) {
	fc := clock.NewFake(epoch)
	iam := newIAM(t, fc)
	u := tokenUpstream(t, func(string, int) bool { return true })
	c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewIAMPassword(iamConfig(iam, projectID)); cfg.Clock = fc })
	ctx := context.Background()
	if _, err := c.GetTask(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	iam.setAnswer(func(w http.ResponseWriter, n int) bool { reply(w, 503, `{}`); return true })
	fc.Advance(20 * time.Hour)
	for range 3 {
		if _, err := c.GetTask(ctx, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if n := iam.calls.Load(); n != 2 {
		t.Fatalf("IAM calls %d: a failed refresh should pause further attempts", n)
	}
	fc.Advance(time.Minute)
	iam.setAnswer(nil)
	if _, err := c.GetTask(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if got := tokensSeen(u); got[len(got)-1] != "iam-token-3" {
		t.Fatalf("tokens %v", got)
	}
}

// A caller that gives up waiting for a token leaves at once; the refresh goes on for the others.
func TestIAMWaitEndsWithCaller(t *testing.T) {
	fc := clock.NewFake(epoch)
	iam := newIAM(t, fc)
	release := iam.hold(t)
	u := tokenUpstream(t, func(string, int) bool { return true })
	c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewIAMPassword(iamConfig(iam, projectID)); cfg.Clock = fc })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.GetTask(ctx, "t")
	e := asError(t, err)
	if e.Kind != KindTransport || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %#v", e)
	}
	release()
	if _, err := c.GetTask(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	if iam.calls.Load() != 1 {
		t.Fatalf("IAM calls %d", iam.calls.Load())
	}
}

func TestCredentialsNeverPrinted(t *testing.T) {
	iamCfg := IAMConfig{Endpoint: "https://iam.example.com", Domain: "acme", User: "robot", Password: iamPassword, Project: "p"}
	auths := []Authenticator{
		NewStaticToken(testToken),
		NewIAMPassword(iamCfg),
		NewAKSK("AK-ID-123", "SK-SECRET-xyz", "p"),
	}
	defer auths[1].(closer).Close()
	values := []any{iamCfg, &iamCfg, Config{Endpoint: "https://k", Auth: auths[0]}}
	for _, a := range auths {
		values = append(values, a, Config{Endpoint: "https://k", Auth: a})
	}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if s := fmt.Sprintf(verb, v); containsAny(s, testToken, iamPassword, "SK-SECRET-xyz", "AK-ID-123") {
				t.Errorf("%s of %T leaks a secret: %s", verb, v, s)
			}
		}
		if a, ok := v.(Authenticator); ok && containsAny(a.Principal(), testToken, iamPassword, "SK-SECRET-xyz") {
			t.Errorf("principal leaks: %s", a.Principal())
		}
	}
}

// Errors and debug logs of failing calls never carry a credential or the device token.
func TestSecretsStayOutOfErrorsAndLogs(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fc := clock.NewFake(epoch)
	iam := newIAM(t, fc)
	deviceToken := "dee5081f40c83ddea3ded91c387351e9"
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if strings.HasSuffix(r.URL.Path, "/auth") {
			_, _ = w.Write(fixture(t, "device-token.json"))
			return
		}
		reply(w, 401, `{"error_code":"KOOPHONE.API.6001","error_msg":"身份验证失败!"}`)
	})
	for _, auth := range []Authenticator{
		NewStaticToken(testToken),
		NewIAMPassword(iamConfig(iam, projectID)),
		NewAKSK("AK-ID-123", "SK-SECRET-xyz", projectID),
	} {
		c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = auth; cfg.Logger = logger; cfg.Clock = fc })
		_, err := c.CreateInstance(context.Background(), CreateInstanceRequest{Count: 1})
		if err == nil {
			t.Fatal("want an error")
		}
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if containsAny(s, testToken, iamPassword, "SK-SECRET-xyz", "iam-token-") {
				t.Errorf("secret in error: %s", s)
			}
		}
		if _, err := c.GetDeviceToken(context.Background(), "a1"); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	if containsAny(out, testToken, iamPassword, "SK-SECRET-xyz", "iam-token-", deviceToken) {
		t.Errorf("secret in logs:\n%s", out)
	}
	if !strings.Contains(out, "op=CreateInstance") || !strings.Contains(out, "request_id=") || !strings.Contains(out, "status=401") {
		t.Errorf("logs lack call details:\n%s", out)
	}
}

// During a refresh, callers holding a still-valid token do not wait for IAM.
func TestIAMRefreshDoesNotBlockOthers(t *testing.T) {
	fc := clock.NewFake(epoch)
	iam := newIAM(t, fc)
	u := tokenUpstream(t, func(string, int) bool { return true })
	c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewIAMPassword(iamConfig(iam, projectID)); cfg.Clock = fc })
	if _, err := c.GetTask(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	fc.Advance(19 * time.Hour)
	release := iam.hold(t)
	refresher := make(chan error, 1)
	go func() { _, err := c.GetTask(context.Background(), "t"); refresher <- err }()
	for iam.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.GetTask(ctx, "t"); err != nil {
		t.Fatalf("blocked behind the refresh: %v", err)
	}
	release()
	if err := <-refresher; err != nil {
		t.Fatal(err)
	}
	if got := tokensSeen(u); len(got) != 3 || got[1] != "iam-token-1" || got[2] != "iam-token-2" {
		t.Fatalf("tokens %v", got)
	}
}

// TestIAMTokenUnderClockSkew: IAM's clock and the gateway's differ by hours or days either way. The token's life
// is read off IAM's own issued_at/expires_at and counted from its arrival on the gateway's clock, so it is used at
// once, kept for its life and refreshed in the same window as without skew; a skew over a minute is logged once
// per token with its measure.
func TestIAMTokenUnderClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{0, 2 * time.Hour, -2 * time.Hour, 72 * time.Hour, -72 * time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			gw := clock.NewFake(epoch)                       // the gateway's clock
			iam := newIAM(t, clock.NewFake(epoch.Add(skew))) // IAM's, skew ahead of it
			advance := func(d time.Duration) { gw.Advance(d); iam.fc.Advance(d) }
			var logs testsupport.SyncBuffer
			cfg := iamConfig(iam, projectID)
			cfg.Clock = gw
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			u := tokenUpstream(t, func(string, int) bool { return true })
			c := newClient(t, u.URL, func(c *Config) { c.Auth = NewIAMPassword(cfg); c.Clock = gw })
			call := func() {
				t.Helper()
				if _, err := c.BatchQueryStatus(context.Background(), InstanceIDsRequest{InstanceIDs: []string{"a"}}); err != nil {
					t.Fatal(err)
				}
			}
			call()
			call()
			advance(17 * time.Hour) // a 24 h token is refreshed 6 h before it expires, whatever the skew
			call()
			if n := iam.calls.Load(); n != 1 {
				t.Fatalf("%d IAM calls before the refresh window", n)
			}
			advance(2 * time.Hour)
			call()
			if n := iam.calls.Load(); n != 2 {
				t.Fatalf("%d IAM calls in the refresh window", n)
			}
			want := "iam-token-1,iam-token-1,iam-token-1,iam-token-2"
			if got := strings.Join(tokensSeen(u), ","); got != want {
				t.Fatalf("tokens sent %s, want %s", got, want)
			}
			warned := strings.Count(logs.String(), "IAM's clock and this host's differ")
			switch {
			case skew == 0 && warned != 0:
				t.Fatalf("warned without skew: %s", logs.String())
			case skew != 0 && (warned != 2 || !strings.Contains(logs.String(), "skew="+skew.String())):
				t.Fatalf("want two warnings naming skew=%s, got: %s", skew, logs.String())
			}
		})
	}
}

// TestIAMTokenLifeFromIssuedAt: a token whose expires_at is not after its issued_at is refused, whatever the
// gateway's clock says.
func TestIAMTokenLifeFromIssuedAt(t *testing.T) {
	fc := clock.NewFake(epoch)
	iam := newIAM(t, fc)
	iam.setAnswer(func(w http.ResponseWriter, _ int) bool {
		w.Header().Set("X-Subject-Token", "backwards")
		reply(w, 201, `{"token":{"expires_at":"2099-01-01T00:00:00.000000Z","issued_at":"2099-01-02T00:00:00.000000Z"}}`)
		return true
	})
	u := tokenUpstream(t, func(string, int) bool { return true })
	c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewIAMPassword(iamConfig(iam, projectID)); cfg.Clock = fc })
	_, err := c.BatchQueryStatus(context.Background(), InstanceIDsRequest{InstanceIDs: []string{"a"}})
	var ue *Error
	if !errors.As(err, &ue) || ue.Kind != KindAuth || !strings.Contains(ue.Message, "not after its issued_at") {
		t.Fatalf("got %v", err)
	}
	if len(u.requests()) != 0 {
		t.Fatal("KooPhone was called without a valid token")
	}
}

// testsupport.SyncBuffer is a bytes.Buffer safe for a logger and a test to share.
