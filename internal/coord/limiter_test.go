package coord

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/coord/redistest"
)

// waitNow asks for a slot that must come at once (the deadline leaves no room to wait an hour-long interval).
func waitNow(q *Quota, write bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return q.Wait(ctx, write)
}

func TestQuotaSharedAcrossReplicas(t *testing.T) {
	rs := redistest.Start(t)
	cfg := QuotaConfig{Read: Rate{Events: 10, Per: time.Hour, Burst: 5}, Write: Rate{Events: 1, Per: time.Hour}, Replicas: 2}
	var qs [2]*Quota
	for i := range qs {
		c := openCoord(t, rs.URL())
		defer func() { _ = c.Close() }()
		q, err := c.NewQuota(cfg)
		if err != nil {
			t.Fatal(err)
		}
		qs[i] = q
	}
	// Five reads in all, whichever replica asks.
	for i := range 5 {
		if err := waitNow(qs[i%2], false); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	for i := range qs {
		if err := waitNow(qs[i], false); !errors.Is(err, ErrQuotaWait) {
			t.Fatalf("replica %d got a sixth read: %v", i, err)
		}
	}
	// Writes have their own budget.
	if err := waitNow(qs[1], true); err != nil {
		t.Fatal(err)
	}
	if err := waitNow(qs[0], true); !errors.Is(err, ErrQuotaWait) {
		t.Fatalf("second write: %v", err)
	}

	// A 429 seen by one replica holds back the other.
	rs.Restart() // empty budget again
	qs[0].HoldUntil(time.Now().Add(time.Hour))
	if err := waitNow(qs[1], false); !errors.Is(err, ErrQuotaWait) {
		t.Fatalf("held replica went ahead: %v", err)
	}

	// Redis down: each replica spends its local share (burst 5 / 2 replicas = 2), and says so.
	rs.Stop()
	q := qs[1]
	for i := range 2 {
		if err := waitNow(q, false); err != nil {
			t.Fatalf("local read %d: %v", i, err)
		}
	}
	if err := waitNow(q, false); !errors.Is(err, ErrQuotaWait) {
		t.Fatalf("third local read: %v", err)
	}
	if st := q.c.Status(); !st.Degraded || st.LocalQuota != 2 {
		t.Fatalf("status while Redis is down: %+v", st)
	}
	rs.Restart()
	// A background probe notices; until then the calls stay local without asking Redis.
	eventually(t, "recovered", func() bool { return !q.c.Status().Degraded })
	if err := waitNow(q, false); err != nil {
		t.Fatalf("after Redis came back: %v", err)
	}
	if st := q.c.Status(); st.LocalQuota != 2 {
		t.Fatalf("a read after recovery was admitted locally: %+v", st)
	}
}

func TestQuotaRejectsNegativeRates(t *testing.T) {
	c, err := Open(Config{URL: "redis://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.NewQuota(QuotaConfig{Read: Rate{Events: -1}}); err == nil {
		t.Fatal("negative rate accepted")
	}
}
