package telemetry

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/coord"
)

// The Redis series are read from the coordinator's status at each scrape, with bounded labels only.
func TestRedisSeries(t *testing.T) {
	tel, err := New(context.Background(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	st := coord.Status{Degraded: true, Leases: 7, Replicas: 3, Evictable: coord.EvictYes,
		Stats: coord.Stats{Degradations: 2, Recoveries: 1, Probes: 9, LocalShare: 5}}
	st.ErrorsBy[coord.OpIdempotency] = 4
	st.Skipped[coord.OpQuota] = 120
	st.Skipped[coord.OpShare] = 6
	if err := tel.RegisterRedis(func() coord.Status { return st }); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"koophone_redis_up 0", "koophone_redis_degraded 1", "koophone_redis_leases 7", "koophone_redis_replicas 3",
		"koophone_redis_keys_evictable 1", `koophone_redis_transitions_total{to="down"} 2`, `koophone_redis_transitions_total{to="up"} 1`,
		`koophone_redis_errors_total{op="idempotency"} 4`, `koophone_redis_skipped_total{op="quota"} 120`,
		`koophone_redis_errors_total{op="probe"} 0`, "koophone_redis_probes_total 9",
		"koophone_redis_local_share_total 5", `koophone_redis_skipped_total{op="share"} 6`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %q in /metrics", want)
		}
	}
}
