package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// restAnswer is one REST answer: its status, headers, and the google.rpc.Status of its error (the body of a
// refused call or stream, or the data of an SSE "error" event).
type restAnswer struct {
	status int
	header http.Header
	raw    string
	err    map[string]any
}

// restCall sends one request to the mirror and reads the whole answer.
func restAnswerOf(t *testing.T, method, url, body string, header ...string) restAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // only keeps a broken test from hanging
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := restAnswer{status: res.StatusCode, header: res.Header, raw: string(b)}
	// {"error": …} as the body (unary, NDJSON), or as the data of an SSE "error" event.
	sc := bufio.NewScanner(strings.NewReader(a.raw))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimPrefix(sc.Text(), "data: ")
		var m struct {
			Error map[string]any `json:"error"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Error != nil {
			a.err = m.Error
			break
		}
	}
	return a
}

// details returns the status's details of one type (by the end of its @type).
func (a restAnswer) details(typ string) []map[string]any {
	var out []map[string]any
	ds, _ := a.err["details"].([]any)
	for _, d := range ds {
		m, _ := d.(map[string]any)
		if at, _ := m["@type"].(string); strings.HasSuffix(at, "/"+typ) {
			out = append(out, m)
		}
	}
	return out
}

// checkRetryAfterAndErrorInfo holds the two rules of issue 20 on one REST answer: a 429 or 503 whose status carries
// RetryInfo has a Retry-After header of its delay in whole seconds, rounded up, at least 1 (and an answer without
// RetryInfo has none); no gateway-made ErrorInfo has an empty metadata value. It returns the ErrorInfo's reason.
func checkRetryAfterAndErrorInfo(t *testing.T, what string, a restAnswer) string {
	t.Helper()
	if a.err == nil {
		t.Fatalf("%s: HTTP %d without an error status: %q", what, a.status, a.raw)
	}
	return checkRESTError(t, what, a)
}

// checkRESTError is checkRetryAfterAndErrorInfo on any answer: nothing to check without an error status. env.rest
// runs it on every answer of the tests that use it.
func checkRESTError(t testing.TB, what string, a restAnswer) string {
	t.Helper()
	if a.err == nil {
		return ""
	}
	var delay time.Duration
	retry := a.details("google.rpc.RetryInfo")
	if len(retry) > 0 {
		s, _ := retry[0]["retry_delay"].(string)
		if s == "" {
			s, _ = retry[0]["retryDelay"].(string)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: RetryInfo delay %q: %v", what, s, err)
		}
		delay = max(d, time.Second)
	}
	got := a.header.Get("Retry-After")
	switch {
	case len(retry) > 0 && (a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable):
		if want := strconv.FormatInt(int64((delay+time.Second-1)/time.Second), 10); got != want {
			t.Errorf("%s: HTTP %d with RetryInfo %v: Retry-After %q, want %q", what, a.status, delay, got, want)
		}
	case len(retry) == 0 && got != "":
		t.Errorf("%s: HTTP %d without RetryInfo has Retry-After %q", what, a.status, got)
	}
	reason := ""
	for _, info := range a.details("google.rpc.ErrorInfo") {
		reason, _ = info["reason"].(string)
		md, _ := info["metadata"].(map[string]any)
		for k, v := range md {
			if s, _ := v.(string); s == "" {
				t.Errorf("%s: ErrorInfo %s has an empty %q: %v", what, reason, k, md)
			}
		}
	}
	return reason
}

// Every refusal the gateway makes with RetryInfo, over REST, unary and streaming: KooPhone's 429 (RATE_LIMITED,
// then every call held back by its Retry-After), a watch beyond this replica's pollers (TOO_MANY_WATCHES), a
// caller past its stream share (PRINCIPAL_STREAM_LIMITED) and KooPhone down (UNAVAILABLE, then the open breaker):
// a 429 or 503 carries Retry-After; an SSE stream refused before its first message is a 200 whose "error" event
// carries the same status; no ErrorInfo has an empty metadata value. (PRINCIPAL_RATE_LIMITED over REST:
// TestShareRate; the SSE framing itself: internal/rest.)
func TestRESTRetryAfterOnEveryRetryInfo(t *testing.T) {
	t.Run("KooPhone's 429 and the hold after it", func(t *testing.T) {
		e := newFaultEnv(t, "--default-call-timeout=2s")
		base := "http://" + e.srv.HTTPAddr()
		e.faults(sim.Fault{Kind: sim.Fault429, Ops: []string{"ListInstances"}, Count: 1, RetryAfter: 30 * time.Second})
		a := restAnswerOf(t, http.MethodGet, base+"/v1/instances/batch-query?page_no=1&page_size=5", "")
		if a.status != http.StatusTooManyRequests {
			t.Fatalf("KooPhone's 429: HTTP %d %s", a.status, a.raw)
		}
		checkRetryAfterAndErrorInfo(t, "KooPhone's 429", a)
		// Held back by the Retry-After: a unary read and a stream (NDJSON) refused before its first message.
		a = restAnswerOf(t, http.MethodGet, base+"/v1/instances/sku", "")
		if r := checkRetryAfterAndErrorInfo(t, "a held unary call", a); a.status != http.StatusTooManyRequests || r != "RATE_LIMITED" {
			t.Fatalf("a held unary call: HTTP %d reason %q: %s", a.status, r, a.raw)
		}
		// (A stream has no default deadline; this one's caller gives one, shorter than the hold, as a unary call's.)
		a = restAnswerOf(t, http.MethodPost, base+"/v1/instances/async-command/run", `{"command":"ls","instance_ids":["`+e.sim.InstanceIDs()[0]+`"]}`,
			"Grpc-Timeout", "2S")
		if r := checkRetryAfterAndErrorInfo(t, "a held stream", a); a.status != http.StatusTooManyRequests || r != "RATE_LIMITED" {
			t.Fatalf("a held stream (NDJSON): HTTP %d reason %q: %s", a.status, r, a.raw)
		}
		// The same stream asked for as SSE: a 200 (a page's EventSource reads only those) with an "error" event.
		a = restAnswerOf(t, http.MethodPost, base+"/v1/instances/async-command/run", `{"command":"ls","instance_ids":["`+e.sim.InstanceIDs()[0]+`"]}`,
			"Accept", "text/event-stream", "Grpc-Timeout", "2S")
		if r := checkRetryAfterAndErrorInfo(t, "a held stream (SSE)", a); a.status != http.StatusOK || !strings.Contains(a.raw, "event: error\n") ||
			r != "RATE_LIMITED" || len(a.details("google.rpc.RetryInfo")) != 1 {
			t.Fatalf("a held stream (SSE): HTTP %d reason %q: %q", a.status, r, a.raw)
		}
	})

	t.Run("too many watches", func(t *testing.T) {
		e := newFaultEnv(t, "--watch-max-pollers=1")
		base := "http://" + e.srv.HTTPAddr()
		// One task watched (over gRPC, held open) takes the one poller; a watch of another task is refused.
		var tasks []string
		for _, id := range e.sim.InstanceIDs()[:2] {
			task, err := e.inst.AsyncCommand(callCtx(t, 10*time.Second), &pb.AsyncCommandRequest{Command: "ls", InstanceIds: []string{id}})
			if err != nil {
				t.Fatal(err)
			}
			tasks = append(tasks, task.GetTaskId())
		}
		w, err := e.inst.WatchTask(callCtx(t, 20*time.Second), &pb.WatchTaskRequest{TaskId: tasks[0]})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Recv(); err != nil {
			t.Fatal(err)
		}
		a := restAnswerOf(t, http.MethodGet, base+"/v1/instances/tasks/"+tasks[1]+"/watch", "")
		if r := checkRetryAfterAndErrorInfo(t, "a watch beyond the pollers", a); a.status != http.StatusTooManyRequests || r != "TOO_MANY_WATCHES" {
			t.Fatalf("a watch beyond the pollers: HTTP %d reason %q: %s", a.status, r, a.raw)
		}
	})

	t.Run("a caller past its stream share", func(t *testing.T) {
		e := newShareEnv(t, "", "--share-open-streams=1")
		task, err := e.inst.AsyncCommand(as(e.ctx(), floodKey), &pb.AsyncCommandRequest{Command: "ls", InstanceIds: []string{e.phone()}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(as(e.ctx(), floodKey))
		defer cancel()
		w, err := e.inst.WatchTask(ctx, &pb.WatchTaskRequest{TaskId: task.GetTaskId()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Recv(); err != nil {
			t.Fatal(err)
		}
		a := restAnswerOf(t, http.MethodGet, e.base+"/v1/instances/tasks/"+task.GetTaskId()+"/watch", "", "Authorization", "Bearer "+floodKey)
		if r := checkRetryAfterAndErrorInfo(t, "a second stream", a); a.status != http.StatusTooManyRequests || r != "PRINCIPAL_STREAM_LIMITED" {
			t.Fatalf("a second stream: HTTP %d reason %q: %s", a.status, r, a.raw)
		}
	})

	t.Run("KooPhone down, then the breaker open", func(t *testing.T) {
		e := newFaultEnv(t, "--breaker-failures=2", "--breaker-open-for=1m")
		base := "http://" + e.srv.HTTPAddr()
		e.faults(sim.Fault{Kind: sim.Fault503})
		reasons := map[string]bool{}
		withRetry := 0
		for i := range 6 {
			a := restAnswerOf(t, http.MethodGet, base+"/v1/instances/tasks/feedfacefeedface", "")
			if a.status != http.StatusServiceUnavailable {
				t.Fatalf("call %d with KooPhone down: HTTP %d %s", i+1, a.status, a.raw)
			}
			reasons[checkRetryAfterAndErrorInfo(t, "KooPhone down", a)] = true
			if len(a.details("google.rpc.RetryInfo")) > 0 {
				withRetry++
			}
		}
		if withRetry == 0 {
			t.Errorf("no 503 with RetryInfo among 6 (reasons %v): the rule went unchecked", reasons)
		}
	})
}
