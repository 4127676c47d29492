// Package testsupport holds the helpers several packages' tests share, so each is written once. Only tests import
// it.
package testsupport

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/koophone-gateway/koophone-gateway/internal/rest"
)

// SyncBuffer is a bytes.Buffer that a logger may write to from any goroutine while the test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Eventually polls cond until it holds, and fails the test naming what it waited for once within has passed: a test
// that waits does so with its own deadline, never until go test's timeout.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", within, what)
		}
	}
}

// HTTPBinding returns the verb and path template of an RPC's google.api.http binding ("" and "" without one), as the
// REST mirror's route table reads it.
func HTTPBinding(md protoreflect.MethodDescriptor) (method, path string) {
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	return rest.Binding(rule)
}
