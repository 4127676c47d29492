package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

// --reflection=on serves reflection without credentials even when callers must authenticate.
func TestReflectionOnWithAuthentication(t *testing.T) {
	e := newSecureEnv(t, secureOpts{keys: map[string]string{"k": "ci"}, args: []string{"--reflection=on"}})
	if err := reflectionList(e.bearer(""), e.dial()); err != nil {
		t.Fatalf("reflection: %v", err)
	}
}

// A streaming write is audited with the request it received.
func TestStreamingWriteAudited(t *testing.T) {
	e := newSecureEnv(t, secureOpts{keys: map[string]string{"k": "alice"}})
	phone := e.sim.InstanceIDs()[0]
	st, err := pb.NewInstanceServiceClient(e.dial()).RunAsyncCommand(e.bearer("k"), &pb.RunAsyncCommandRequest{Command: "ls", InstanceIds: []string{phone}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	_ = e.srv.Shutdown(context.Background()) // ends the stream and flushes the audit line; Cleanup's second call is a no-op
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(e.audit())), &line); err != nil {
		t.Fatalf("audit log %q: %v", e.audit(), err)
	}
	ids, _ := line["instance_ids"].([]any)
	if line["rpc"] != "RunAsyncCommand" || line["principal"] != "key:alice" || len(ids) != 1 || ids[0] != phone ||
		!strings.Contains(strings.Join(toStrings(line["actions"]), ","), auth.ActionAsyncCommand) {
		t.Errorf("audit line: %v", line)
	}
}

// Credentials sent in clear text to a KooPhone endpoint off this host get a warning at start.
func TestWarnsOnPlainHTTPEndpoint(t *testing.T) {
	cfg, err := config.Load([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--audit-log=off",
		"--endpoint=http://192.0.2.1:80"}, func(k string) string {
		return map[string]string{"KOOPHONE_AUTH_TOKEN": "tok-secret-1"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var logs testsupport.SyncBuffer
	srv, err := Start(context.Background(), cfg, NewLogger(&logs, "text", slog.LevelDebug))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"KooPhone endpoint is plain HTTP") {
		t.Errorf("no warning in:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "tok-secret-1") {
		t.Error("the token shows in the log")
	}
}
