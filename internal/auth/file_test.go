package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth/authtest"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
)

// fileEnv is a guard on real keys and policy files in a temporary directory, on a fake clock.
type fileEnv struct {
	t     *testing.T
	dir   string
	clk   *clock.Fake
	g     *Guard
	log   *bytes.Buffer
	audit *bytes.Buffer
}

const allowAll = `statements: [{effect: allow, principals: ["*"], actions: ["koophone:*"]}]`

func keyDoc(entries ...string) string { return "keys: [" + strings.Join(entries, ", ") + "]" }

func keyEntryDoc(principal, key, expires string) string {
	e := `{principal: ` + principal + `, sha256: "` + HashKey(key) + `"`
	if expires != "" {
		e += `, expires: ` + expires
	}
	return e + "}"
}

func newFileEnv(t *testing.T, keys, policy string) *fileEnv {
	t.Helper()
	e := &fileEnv{t: t, dir: t.TempDir(), clk: clocktest.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		log: &bytes.Buffer{}, audit: &bytes.Buffer{}}
	cfg := Config{Clock: e.clk, Log: slog.New(slog.NewTextHandler(e.log, nil)), Audit: slog.New(slog.NewJSONHandler(e.audit, nil))}
	cfg.KeysFile = authtest.WriteFile(t, e.dir, "keys.yaml", []byte(keys))
	if policy != "" {
		cfg.PolicyFile = authtest.WriteFile(t, e.dir, "policy.yaml", []byte(policy))
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.g = g
	return e
}

// call authenticates key and authorizes a ListInstances call, as the interceptors do.
func (e *fileEnv) call(key string) error {
	_, err := e.callCtx(key)
	return err
}

func (e *fileEnv) callCtx(key string) (context.Context, error) {
	ctx := e.g.WithCallInfo(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+key)))
	actx, err := e.g.authenticate(ctx)
	if err != nil {
		return ctx, err
	}
	return actx, e.g.check(actx, instanceSvc+"ListInstances", nil, true)
}

func (e *fileEnv) path(name string) string { return filepath.Join(e.dir, name) }

// edited lets the injected clock pass StatEvery after a test changed a file, so the next call looks at it (calls
// stat a file at most once per StatEvery).
func (e *fileEnv) edited() { e.clk.Advance(StatEvery) }

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

// Finding 5: "keys: []" and "statements: []" take effect (nobody authenticates with a key; every call denied);
// they are deliberate, so readiness stays up.
func TestExplicitlyEmptyFilesTakeEffect(t *testing.T) {
	e := newFileEnv(t, keyDoc(keyEntryDoc("alice", "k1", "")), allowAll)
	wantCode(t, "before", e.call("k1"), codes.OK)
	authtest.WriteFile(t, e.dir, "keys.yaml", []byte(`keys: []`))
	e.edited()
	wantCode(t, "keys: []", e.call("k1"), codes.Unauthenticated)
	if err := e.g.Check(); err != nil {
		t.Errorf("keys: [] made the guard unready: %v", err)
	}
	authtest.WriteFile(t, e.dir, "keys.yaml", []byte(keyDoc(keyEntryDoc("alice", "k1", ""))))
	authtest.WriteFile(t, e.dir, "policy.yaml", []byte(`statements: []`))
	e.edited()
	wantCode(t, "statements: []", e.call("k1"), codes.PermissionDenied)
	if !e.g.Ready() {
		t.Error("statements: [] made the guard unready")
	}
}

// Finding 5: a deleted, unreadable or world-writable keys file or policy refuses every call (UNAVAILABLE) until
// fixed, with one ERROR line per change, readiness down and a metric; fixing it brings everything back.
func TestBrokenFilesRefuseEveryCall(t *testing.T) {
	for _, c := range []struct {
		name    string
		file    string
		breakIt func(t *testing.T, path string)
	}{
		{"deleted keys", "keys.yaml", func(t *testing.T, p string) { must(t, os.Remove(p)) }},
		{"deleted policy", "policy.yaml", func(t *testing.T, p string) { must(t, os.Remove(p)) }},
		{"world-writable keys", "keys.yaml", func(t *testing.T, p string) { must(t, os.Chmod(p, 0o666)) }},
		{"group-writable policy", "policy.yaml", func(t *testing.T, p string) { must(t, os.Chmod(p, 0o620)) }},
		// A directory where the file was: no read succeeds, even as root (who reads a file of any mode), so the
		// case runs in CI too.
		{"unreadable keys", "keys.yaml", func(t *testing.T, p string) {
			must(t, os.Remove(p))
			must(t, os.Mkdir(p, 0o700))
		}},
		{"invalid policy", "policy.yaml", func(t *testing.T, p string) {
			must(t, os.WriteFile(p, []byte(`statements: [{effect: allow}]`), 0o600))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newFileEnv(t, keyDoc(keyEntryDoc("alice", "k1", "")), allowAll)
			changes := 0
			e.g.OnFileChange(func() { changes++ })
			good, _ := os.ReadFile(e.path(c.file))
			c.breakIt(t, e.path(c.file))
			e.edited()
			for range 3 {
				wantCode(t, "with the file broken", e.call("k1"), codes.Unavailable)
			}
			if err := e.g.Check(); err == nil || strings.Contains(err.Error(), e.dir) {
				t.Errorf("Check: %v (want an error that names no path)", err)
			}
			if e.g.Ready() || changes != 1 {
				t.Errorf("ready %v after %d changes, want false after 1", e.g.Ready(), changes)
			}
			if n := strings.Count(e.log.String(), "level=ERROR"); n != 1 {
				t.Errorf("%d ERROR lines, want 1:\n%s", n, e.log)
			}
			if v := metricValue(t, e.g, "koophone_auth_file_ok", strings.TrimSuffix(c.file, ".yaml")); v != 0 {
				t.Errorf("koophone_auth_file_ok = %v, want 0", v)
			}
			_ = os.Remove(e.path(c.file))
			authtest.WriteFile(t, e.dir, c.file, good)
			e.edited()
			wantCode(t, "with the file fixed", e.call("k1"), codes.OK)
			if !e.g.Ready() || changes != 2 {
				t.Errorf("ready %v after %d changes, want true after 2", e.g.Ready(), changes)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Finding 5: a keys file caught half-rewritten in place (truncated, then written) must not let in a key the new
// file no longer lets in: on main the previous version stayed in force, so a key being revoked still worked.
func TestHalfWrittenFileAcceptsNothingOld(t *testing.T) {
	e := newFileEnv(t, keyDoc(keyEntryDoc("alice", "k1", ""), keyEntryDoc("bob", "k2", "")), "")
	wantCode(t, "before", e.call("k2"), codes.OK)
	// The new file revokes k2; the writer has written only part of it so far.
	next := keyDoc(keyEntryDoc("alice", "k1", ""))
	for _, partial := range []string{"", next[:7], next[:len(next)/2]} {
		must(t, os.WriteFile(e.path("keys.yaml"), []byte(partial), 0o600))
		e.edited()
		if err := e.call("k2"); err == nil {
			t.Errorf("k2 accepted while the file held %q", partial)
		}
	}
	must(t, os.WriteFile(e.path("keys.yaml"), []byte(next), 0o600))
	e.edited()
	wantCode(t, "k2 after the rewrite", e.call("k2"), codes.Unauthenticated)
	wantCode(t, "k1 after the rewrite", e.call("k1"), codes.OK)
}

// Finding 5: an edit that keeps size and modification time (cp -p, rsync -t) is seen by the next content check.
func TestSameSizeAndMtimeEditIsReloaded(t *testing.T) {
	e := newFileEnv(t, keyDoc(keyEntryDoc("alice", "k1", "")), "")
	fi, err := os.Stat(e.path("keys.yaml"))
	must(t, err)
	// Same length: k1's and k2's hashes are both 64 hex digits.
	must(t, os.WriteFile(e.path("keys.yaml"), []byte(keyDoc(keyEntryDoc("alice", "k2", ""))), 0o600))
	must(t, os.Chtimes(e.path("keys.yaml"), fi.ModTime(), fi.ModTime()))
	if fi2, _ := os.Stat(e.path("keys.yaml")); fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatal("the test did not keep size and mtime")
	}
	e.clk.Advance(HashCheckEvery)
	wantCode(t, "revoked k1", e.call("k1"), codes.Unauthenticated)
	wantCode(t, "new k2", e.call("k2"), codes.OK)
}

// An unchanged file is not parsed again by the periodic content check, and logs nothing.
func TestUnchangedFileIsNotReparsed(t *testing.T) {
	e := newFileEnv(t, keyDoc(keyEntryDoc("alice", "k1", "")), "")
	for range 3 {
		e.clk.Advance(HashCheckEvery)
		wantCode(t, "k1", e.call("k1"), codes.OK)
	}
	if n := e.g.keys.reloadsOK.Load() + e.g.keys.reloadsFailed.Load(); n != 0 || e.log.Len() != 0 {
		t.Errorf("%d reloads, log %q", n, e.log)
	}
}

// Calls stat a file at most once per StatEvery on the injected clock: a change is seen by the first call
// StatEvery after the last look, not before; readiness's Check looks at once.
func TestChangeIsSeenWithinStatEvery(t *testing.T) {
	e := newFileEnv(t, keyDoc(keyEntryDoc("alice", "k1", "")), "")
	wantCode(t, "before", e.call("k1"), codes.OK)
	authtest.WriteFile(t, e.dir, "keys.yaml", []byte(keyDoc(keyEntryDoc("alice", "k2", ""))))
	e.clk.Advance(StatEvery - time.Millisecond)
	wantCode(t, "k1 within StatEvery of the last look", e.call("k1"), codes.OK)
	e.clk.Advance(time.Millisecond)
	wantCode(t, "k1 StatEvery after the last look", e.call("k1"), codes.Unauthenticated)
	wantCode(t, "k2", e.call("k2"), codes.OK)

	must(t, os.Remove(e.path("keys.yaml")))
	if err := e.g.Check(); err == nil {
		t.Error("Check right after the keys file was deleted: nil, want an error")
	}
}

// A group- or world-writable file is refused at start too.
func TestWritableFileRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	p := authtest.WriteFile(t, dir, "keys.yaml", []byte(keyDoc(keyEntryDoc("alice", "k1", ""))))
	must(t, os.Chmod(p, 0o646))
	_, err := New(Config{KeysFile: p, Log: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("New with a world-writable keys file: %v", err)
	}
}

// Finding 5: expiry is checked at each call against the injected clock (no file change needed), and the caller
// gets one message for unknown and expired keys while the call log tells them apart.
func TestExpiredAndUnknownKeysLookAlike(t *testing.T) {
	e := newFileEnv(t, keyDoc(keyEntryDoc("ci-bot", "k1", clocktest.Start(time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC)).Format(time.RFC3339))), "")
	wantCode(t, "before expiry", e.call("k1"), codes.OK)
	e.clk.Advance(time.Hour)
	ctxExpired, expired := e.callCtx("k1")
	ctxUnknown, unknown := e.callCtx("nope")
	wantCode(t, "expired", expired, codes.Unauthenticated)
	wantCode(t, "unknown", unknown, codes.Unauthenticated)
	if status.Convert(expired).Message() != status.Convert(unknown).Message() {
		t.Errorf("the caller can tell them apart: %q vs %q", status.Convert(expired).Message(), status.Convert(unknown).Message())
	}
	if f := LogFields(ctxExpired); !slicesHas(f, "auth.refused", "expired_key") || !slicesHas(f, "auth.key_owner", "key:ci-bot") {
		t.Errorf("call log fields of the expired key: %v", f)
	}
	if f := LogFields(ctxUnknown); !slicesHas(f, "auth.refused", "unknown_key") || len(f) != 2 {
		t.Errorf("call log fields of the unknown key: %v", f)
	}
}

func slicesHas(kv []any, k, v string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == k && kv[i+1] == v {
			return true
		}
	}
	return false
}

// Finding 5: an API key's principal and a certificate's identity with the same name are different principals.
func TestKeyAndCertificatePrincipalsAreApart(t *testing.T) {
	e := newFileEnv(t, keyDoc(keyEntryDoc("alice", "k1", "")),
		`statements: [{effect: allow, principals: ["cert:alice"], actions: ["koophone:*"]}]`)
	ctx, err := e.callCtx("k1")
	wantCode(t, "key alice against a grant to cert:alice", err, codes.PermissionDenied)
	if p, _ := PrincipalFrom(ctx); p.Name != "key:alice" {
		t.Errorf("principal %q, want key:alice", p.Name)
	}
}

// Finding 4: a denied write with 95,000 ids writes one small audit line that counts them.
func TestAuditLineIsBounded(t *testing.T) {
	e := newFileEnv(t, keyDoc(keyEntryDoc("reader", "k1", "")),
		`statements: [{effect: allow, principals: ["key:reader"], actions: ["koophone:cloudphoneResource:query*"]}]`)
	ids := make([]string, 95000)
	for i := range ids {
		ids[i] = strings.Repeat("x", 200) // far longer than any id
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer k1"))
	info := &grpc.UnaryServerInfo{FullMethod: instanceSvc + "BatchReset"}
	chain := []grpc.UnaryServerInterceptor{e.g.AuthenticateUnary(), e.g.AuditUnary(), e.g.AuthorizeUnary()}
	// authenticate → audit → authorize → handler, as the server chains them.
	h := func(ctx context.Context, req any) (any, error) { return &pb.BatchResetResponse{}, nil }
	for i := len(chain) - 1; i >= 0; i-- {
		next, ic := h, chain[i]
		h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
	}
	_, err := h(ctx, &pb.BatchResetRequest{InstanceIds: ids})
	wantCode(t, "reset by a reader", err, codes.PermissionDenied)
	lines := strings.Split(strings.TrimSpace(e.audit.String()), "\n")
	if len(lines) != 1 || len(lines[0]) > 4096 {
		t.Fatalf("%d audit lines, the first %d bytes, want one of at most 4 KiB", len(lines), len(lines[0]))
	}
	var line struct {
		IDs     []string `json:"instance_ids"`
		Total   int      `json:"instance_ids_total"`
		Outcome string   `json:"outcome"`
	}
	must(t, json.Unmarshal([]byte(lines[0]), &line))
	if line.Total != 95000 || len(line.IDs) != auditMaxIDs || len(line.IDs[0]) > auditMaxIDLen+len("…") || line.Outcome != "PermissionDenied" {
		t.Errorf("audit line: %s", lines[0])
	}
}

// The per-call cost of looking at the credential files (a stat each at most every StatEvery; a content check every
// HashCheckEvery).
func BenchmarkAuthenticateKey(b *testing.B) {
	dir := b.TempDir()
	g, err := New(Config{KeysFile: authtest.WriteFile(b, dir, "keys.yaml", []byte(keyDoc(keyEntryDoc("alice", "k1", "")))),
		PolicyFile: authtest.WriteFile(b, dir, "policy.yaml", []byte(allowAll)), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := g.WithCallInfo(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer k1")))
	b.ReportAllocs()
	for b.Loop() {
		actx, err := g.authenticate(ctx)
		if err == nil {
			err = g.check(actx, instanceSvc+"ListInstances", nil, true)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// Concurrent calls while the file changes under them: no race, and every answer is one of the two versions'.
func TestConcurrentReload(t *testing.T) {
	e := newFileEnv(t, keyDoc(keyEntryDoc("alice", "k1", "")), "")
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if c := status.Code(e.call("k1")); c != codes.OK && c != codes.Unauthenticated {
					t.Errorf("k1: %v", c)
					return
				}
			}
		}()
	}
	for i := range 20 {
		doc := keyDoc(keyEntryDoc("alice", "k1", ""))
		if i%2 == 1 {
			doc = `keys: []`
		}
		authtest.WriteFile(t, e.dir, "keys.yaml", []byte(doc))
		e.edited()
	}
	wg.Wait()
}

// metricValue is the value of the guard's metric name{file=file}.
func metricValue(t *testing.T, g *Guard, name, file string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, c := range g.Collectors() {
		must(t, reg.Register(c))
	}
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "file" && l.GetValue() == file {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{file=%q}", name, file)
	return 0
}
