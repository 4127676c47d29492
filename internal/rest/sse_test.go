package rest_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/koophone-gateway/koophone-gateway/internal/rest"
)

// sseEvent is one event as an EventSource would dispatch it, with the retry field seen before it.
type sseEvent struct {
	id, name, data string
	retry          string
}

// readSSE parses an SSE body as the WHATWG parser does for the fields the mirror sends; any other line fails.
func readSSE(t *testing.T, body string) []sseEvent {
	t.Helper()
	var events []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "":
			if cur.name != "" || cur.data != "" {
				events = append(events, cur)
			}
			cur = sseEvent{}
		case "retry":
			cur.retry = value
		case "id":
			cur.id = value
		case "event":
			cur.name = value
		case "data":
			cur.data += value
		default:
			t.Fatalf("not SSE: %q in\n%s", line, body)
		}
	}
	if cur.name != "" || cur.data != "" {
		t.Fatalf("last event not ended by a blank line: %+v", cur)
	}
	return events
}

func sse(t *testing.T, method, url, body string, header ...string) (answer, []sseEvent) {
	t.Helper()
	resp, b := do(t, method, url, body, append([]string{"Accept", "text/event-stream"}, header...)...)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != rest.MIMESSE {
		t.Fatalf("%d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp, readSSE(t, b)
}

func names(events []sseEvent) string {
	var n []string
	for _, e := range events {
		n = append(n, e.name+"#"+e.id)
	}
	return strings.Join(n, " ")
}

// A stream that ends well: the retry field once, results numbered from 1, then "end" with code 0.
func TestSSEStreamEndsWithEnd(t *testing.T) {
	url := startMirror(t)
	resp, events := sse(t, "GET", url+"/v1/instances/tasks/ok/watch", "")
	if got := names(events); got != "result#1 result#2 end#" {
		t.Fatalf("events %s", got)
	}
	if events[0].retry != "60000" || events[1].retry != "" {
		t.Errorf("retry fields %q %q: want 60000 once", events[0].retry, events[1].retry)
	}
	for _, e := range events[:2] {
		if !json.Valid([]byte(e.data)) || !strings.HasPrefix(e.data, `{"result"`) {
			t.Errorf("result data %q", e.data)
		}
	}
	if events[2].data != `{"code":0}` {
		t.Errorf("end data %q", events[2].data)
	}
	if resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	// A stream with no message at all still ends with "end".
	if _, events := sse(t, "GET", url+"/v1/instances/tasks/empty/watch", ""); names(events) != "end#" || events[0].retry != "60000" {
		t.Fatalf("empty stream: %+v", events)
	}
}

// Failing after its first message: the error event with the status, then "end" with its code.
func TestSSEErrorMidStream(t *testing.T) {
	url := startMirror(t)
	_, events := sse(t, "GET", url+"/v1/instances/tasks/mid/watch", "")
	if got := names(events); got != "result#1 error# end#" {
		t.Fatalf("events %s", got)
	}
	if e, details := decodeError(t, events[1].data); e.Error.Code != int(codes.Unavailable) || details[0]["reason"] != "SERVER_SHUTTING_DOWN" {
		t.Errorf("error event %+v %v", e, details)
	}
	if events[2].data != `{"code":14}` {
		t.Errorf("end %q", events[2].data)
	}
}

// Failing before the first message: still 200 (EventSource drops any other status's body), an error event a page
// can read, then "end". The same stream over NDJSON keeps the error's HTTP status.
func TestSSEErrorBeforeFirstMessage(t *testing.T) {
	url := startMirror(t)
	_, events := sse(t, "GET", url+"/v1/instances/tasks/gone/watch", "")
	if got := names(events); got != "error# end#" {
		t.Fatalf("events %s", got)
	}
	if events[0].retry != "60000" {
		t.Errorf("retry %q", events[0].retry)
	}
	if e, _ := decodeError(t, events[0].data); e.Error.Code != int(codes.NotFound) || e.Error.Message != "task does not exist" {
		t.Errorf("error event %+v", e)
	}
	if events[1].data != `{"code":5}` {
		t.Errorf("end %q", events[1].data)
	}
	// With RetryInfo: the details say when, in the event.
	_, events = sse(t, "GET", url+"/v1/instances/tasks/busy/watch", "")
	if _, details := decodeError(t, events[0].data); len(details) != 1 || details[0]["retry_delay"] != "2.500s" {
		t.Errorf("busy: %v", details)
	}
	// NDJSON: unchanged, the HTTP status and one JSON body; a RetryInfo becomes Retry-After.
	resp, body := do(t, "GET", url+"/v1/instances/tasks/busy/watch", "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3" ||
		resp.Header.Get("Content-Type") != "application/json" || strings.Contains(body, "event:") {
		t.Fatalf("NDJSON busy: %d Retry-After=%q %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), body)
	}
}

// Last-Event-ID resumes a watch: it starts again with the current snapshot, numbered after the id the client has.
func TestSSELastEventIDResumesAWatch(t *testing.T) {
	url := startMirror(t)
	_, events := sse(t, "GET", url+"/v1/instances/tasks/ok/watch", "", "Last-Event-ID", "41")
	if got := names(events); got != "result#42 result#43 end#" {
		t.Fatalf("events %s", got)
	}
	// An id that is not ours starts from 1.
	if _, events = sse(t, "GET", url+"/v1/instances/tasks/ok/watch", "", "Last-Event-ID", "x"); names(events) != "result#1 result#2 end#" {
		t.Fatalf("foreign id: %s", names(events))
	}
	// NDJSON has no ids: the header changes nothing there.
	resp, body := do(t, "GET", url+"/v1/instances/tasks/ok/watch", "", "Last-Event-ID", "41")
	if resp.StatusCode != 200 || strings.Count(body, "\n") != 2 {
		t.Fatalf("NDJSON: %d %q", resp.StatusCode, body)
	}
}

// A stream that is not a watch would run again: a Last-Event-ID there is refused, in the stream's own framing.
func TestLastEventIDOnAStreamThatIsNotAWatch(t *testing.T) {
	url := startMirror(t)
	const path = "/v1/instances/async-command/run"
	const body = `{"command":"ls","instance_ids":["a"]}`
	_, events := sse(t, "POST", url+path, body, "Last-Event-ID", "3", "Content-Type", "application/json")
	if got := names(events); got != "error# end#" {
		t.Fatalf("events %s", got)
	}
	e, details := decodeError(t, events[0].data)
	if field, reason := badRequestField(t, details); e.Error.Code != int(codes.InvalidArgument) || field != "header.Last-Event-ID" || reason != "header.not_resumable" {
		t.Errorf("%+v %s %s", e, field, reason)
	}
	resp, b := do(t, "POST", url+path, body, "Last-Event-ID", "3", "Content-Type", "application/json")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(b, "header.not_resumable") {
		t.Fatalf("NDJSON: %d %s", resp.StatusCode, b)
	}
}

// A single answer asked for with the SSE Accept header stays plain JSON, and so do its errors.
func TestUnaryWithSSEAcceptIsJSON(t *testing.T) {
	url := startMirror(t)
	resp, body := do(t, "GET", url+"/v1/instances/batch-query?page_no=1", "", "Accept", "text/event-stream")
	if resp.Header.Get("Content-Type") != "application/json" || !json.Valid([]byte(body)) {
		t.Errorf("unary with SSE accept: %q %s", resp.Header.Get("Content-Type"), body)
	}
	resp, body = do(t, "GET", url+"/v1/instances/tasks/abc", "", "Accept", "text/event-stream")
	if resp.StatusCode != http.StatusNotFound || !json.Valid([]byte(body)) {
		t.Errorf("unary error with SSE accept: %d %s", resp.StatusCode, body)
	}
}
