package service

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTaskSnapshotTerminal(t *testing.T) {
	job := func(status int) upstream.JobDetail { return upstream.JobDetail{JobID: "j", Status: status} }
	cases := []struct {
		name                       string
		jobs                       []upstream.JobDetail
		terminal                   bool
		running, succeeded, failed int32
	}{
		{"all running", []upstream.JobDetail{job(1), job(1)}, false, 2, 0, 0},
		{"one left", []upstream.JobDetail{job(2), job(1)}, false, 1, 1, 0},
		{"all ended", []upstream.JobDetail{job(2), job(-1)}, true, 0, 1, 1},
		{"unknown state keeps watching", []upstream.JobDetail{job(2), job(7)}, false, 1, 1, 0},
		{"no jobs", nil, true, 0, 0, 0},
	}
	for _, tc := range cases {
		m := taskSnapshot("t", tc.jobs)
		if m.GetTerminal() != tc.terminal || m.GetRunningCount() != tc.running || m.GetSucceededCount() != tc.succeeded || m.GetFailedCount() != tc.failed {
			t.Errorf("%s: %v", tc.name, m)
		}
	}
	if m := taskSnapshot("t", []upstream.JobDetail{job(7)}); m.GetJobs()[0].GetStatus() != pb.JobStatus_JOB_STATUS_UNSPECIFIED || m.GetJobs()[0].GetRawStatus() != 7 {
		t.Errorf("unknown status not kept raw: %v", m)
	}
}

func TestClassifyPollError(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		transient bool
		wait      time.Duration
	}{
		{"unreachable", &upstream.Error{Kind: upstream.KindTransport}, true, 0},
		{"503", &upstream.Error{Kind: upstream.KindHTTP, HTTPStatus: 503}, true, 0},
		{"429 with Retry-After", &upstream.Error{Kind: upstream.KindHTTP, HTTPStatus: 429, RetryAfter: 2 * time.Second}, true, 2 * time.Second},
		{"redis lock", &upstream.Error{Kind: upstream.KindAPI, Code: "KOOPHONE.API.9002"}, true, 0},
		{"no stock", &upstream.Error{Kind: upstream.KindAPI, Code: "KOOPHONE.API.40010", HTTPStatus: 200}, false, 0},
		{"unknown task", &upstream.Error{Kind: upstream.KindAPI, Code: "KOOPHONE.API.1323", HTTPStatus: 400}, false, 0},
		{"internal", &upstream.Error{Kind: upstream.KindAPI, Code: "KOOPHONE.API.9999", HTTPStatus: 500}, false, 0},
		{"not an upstream error", errTest, false, 0},
	}
	for _, tc := range cases {
		transient, wait := classifyPollError(tc.err)
		if transient != tc.transient || wait != tc.wait {
			t.Errorf("%s: transient %v wait %v", tc.name, transient, wait)
		}
	}
}

var errTest = &testError{}

type testError struct{}

func (*testError) Error() string { return "test" }

// Two different (user, phone) pairs never share a prepare-progress key, even when an id holds the separator or NUL.
func TestProgressKeyUnambiguous(t *testing.T) {
	pairs := [][2]string{
		{"a\x00b", "c"}, {"a", "b\x00c"},
		{"a/b", "c"}, {"a", "b/c"},
		{"1:a", "b"}, {"1", "a/b"},
		{"", "x"}, {"x", ""},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		k := progressKey(p[0], p[1])
		if other, ok := seen[k]; ok {
			t.Errorf("pairs %q and %q share key %q", other, p, k)
		}
		seen[k] = p
	}
}
