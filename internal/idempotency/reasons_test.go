package idempotency

import (
	"testing"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
)

// The interceptor's reasons and domain are the contract's: each reason is an ErrorReason value's name.
func TestReasonsAreInTheContract(t *testing.T) {
	for _, r := range []string{ReasonKeyReused, ReasonOutcomeUnknown, ReasonStoreUnavailable, ReasonInFlight} {
		if _, ok := pb.ErrorReason_value[r]; !ok {
			t.Errorf("reason %s is not in koophone.v1.ErrorReason", r)
		}
	}
	if errorDomain != errcat.Domain {
		t.Errorf("domain %q, want the gateway's %q", errorDomain, errcat.Domain)
	}
}
