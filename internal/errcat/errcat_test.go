package errcat

import (
	"testing"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// The gateway's own ErrorInfo carries only keys that say something: an empty value is left out.
func TestInfoLeavesOutEmptyMetadata(t *testing.T) {
	md := map[string]string{KeyOperation: "GetTask", KeyUpstreamCode: "", KeyHTTPStatus: ""}
	info := Info(pb.ErrorReason_RATE_LIMITED, md)
	if got := info.GetMetadata(); len(got) != 1 || got[KeyOperation] != "GetTask" {
		t.Fatalf("metadata %v", got)
	}
	if len(md) != 3 {
		t.Errorf("the caller's map was changed: %v", md)
	}
	if info := Info(pb.ErrorReason_RATE_LIMITED, map[string]string{"x": ""}); info.GetMetadata() != nil {
		t.Errorf("all empty: %v", info.GetMetadata())
	}
	if info.GetReason() != "RATE_LIMITED" || info.GetDomain() != Domain {
		t.Errorf("%v", info)
	}
}
