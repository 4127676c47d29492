package errcat_test

import (
	"testing"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
)

// The gateway's own ErrorInfo carries only keys that say something: an empty value is left out.
func TestInfoLeavesOutEmptyMetadata(t *testing.T) {
	md := map[string]string{errcat.KeyOperation: "GetTask", errcat.KeyUpstreamCode: "", errcat.KeyHTTPStatus: ""}
	info := errcat.Info(pb.ErrorReason_RATE_LIMITED, md)
	if got := info.GetMetadata(); len(got) != 1 || got[errcat.KeyOperation] != "GetTask" {
		t.Fatalf("metadata %v", got)
	}
	if len(md) != 3 {
		t.Errorf("the caller's map was changed: %v", md)
	}
	if info := errcat.Info(pb.ErrorReason_RATE_LIMITED, map[string]string{"x": ""}); info.GetMetadata() != nil {
		t.Errorf("all empty: %v", info.GetMetadata())
	}
	if info.GetReason() != "RATE_LIMITED" || info.GetDomain() != errcat.Domain {
		t.Errorf("%v", info)
	}
}
