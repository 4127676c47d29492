package auth

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// The README's example keys file and policy load, and mean what the README says they mean.
func TestExampleFiles(t *testing.T) {
	g, err := New(Config{
		KeysFile:   "../../docs/auth/keys.example.yaml",
		PolicyFile: "../../docs/auth/policy.example.yaml",
		Clock:      clock.NewFake(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)),
		Log:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	call := func(key, rpc string) error {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+key))
		ctx, err := g.authenticate(ctx)
		if err != nil {
			return err
		}
		return g.check(ctx, rpc, nil, true)
	}
	for _, c := range []struct {
		key, rpc string
		want     codes.Code
	}{
		{"demo-reader-key-0002", instanceSvc + "ListInstances", codes.OK},
		{"demo-reader-key-0002", instanceSvc + "WatchPrepareProgress", codes.OK},
		{"demo-reader-key-0002", instanceSvc + "BatchReset", codes.PermissionDenied},
		{"demo-operator-key-0001", instanceSvc + "BatchReset", codes.OK},
		{"demo-operator-key-0001", appSvc + "InstallApp", codes.OK},
		{"demo-operator-key-0001", orderSvc + "CreateInstance", codes.PermissionDenied},
		{"demo-operator-key-0001", instanceSvc + "SyncCommand", codes.PermissionDenied},
		{"demo-operator-key-0001", instanceSvc + "RunAsyncCommand", codes.PermissionDenied},
		{"demo-ci-key-0003", instanceSvc + "ListInstances", codes.Unauthenticated}, // expired
		{"not-a-key", instanceSvc + "ListInstances", codes.Unauthenticated},
	} {
		if got := status.Code(call(c.key, c.rpc)); got != c.want {
			t.Errorf("%s → %s: %v, want %v", c.key, c.rpc, got, c.want)
		}
	}
}
