package apidocs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/server/servertest"
)

// ssePage follows watches with EventSource as the README tells a page to: read "result" and "error" events, close
// on "end". Each case runs under its own path prefix, which the test's proxy strips and counts:
//
//	a: a task's watch followed to its end, closed on "end";
//	b: a watch of an unknown task: the error before the first message, readable, then "end";
//	c: the proxy cuts the first connection after the first result (and shortens retry): EventSource resumes
//	   with Last-Event-ID by itself, and the ids go on;
//	d: a page that does not close on "end": the retry field keeps EventSource from reconnecting for a while.
const ssePage = `<!doctype html><meta charset="utf-8"><title>SSE check</title><script>
const task = new URLSearchParams(location.search).get("task");
function follow(url, closeOnEnd) {
  return new Promise((resolve) => {
    const got = { events: [], bareErrors: 0, opens: 0 };
    const es = new EventSource(url);
    es.onopen = () => got.opens++;
    const record = (type, e) => got.events.push({ type, id: e.lastEventId, data: JSON.parse(e.data) });
    es.addEventListener("result", (e) => record("result", e));
    // An in-band error is a MessageEvent with data; EventSource's own connection errors carry none.
    es.addEventListener("error", (e) => (e.data !== undefined ? record("error", e) : got.bareErrors++));
    es.addEventListener("end", (e) => {
      record("end", e);
      if (closeOnEnd) { es.close(); resolve(got); return; }
      setTimeout(() => { es.close(); resolve(got); }, 4000); // longer than EventSource's default 3 s retry
    });
  });
}
Promise.all([
  follow("/a/v1/instances/tasks/" + task + "/watch", true),
  follow("/b/v1/instances/tasks/0123abcd/watch", true),
  follow("/c/v1/instances/tasks/" + task + "/watch", true),
  follow("/d/v1/instances/tasks/" + task + "/watch", false),
]).then(([a, b, c, d]) => { window.report = { a, b, c, d }; });
</script>`

type pageEvent struct {
	Type string          `json:"type"`
	ID   string          `json:"id"`
	Data json.RawMessage `json:"data"`
}

type pageCase struct {
	Events     []pageEvent `json:"events"`
	BareErrors int         `json:"bareErrors"`
	Opens      int         `json:"opens"`
}

// opens counts the stream requests the proxy saw per case, with the Last-Event-ID each carried.
type opens struct {
	mu     sync.Mutex
	lastID map[string][]string
}

func (o *opens) add(prefix, lastID string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastID[prefix] = append(o.lastID[prefix], lastID)
	return len(o.lastID[prefix])
}

func (o *opens) get(prefix string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.lastID[prefix]...)
}

// TestSSEInChromium follows watches with EventSource in Debian's headless Chromium against the gateway on the
// simulator (through a proxy that counts connections): to the end without a reconnect, an error before the first
// message readable by the page, and a dropped connection resumed with Last-Event-ID.
func TestSSEInChromium(t *testing.T) {
	srv := servertest.Start(t, servertest.Fast...)
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	client := pb.NewInstanceServiceClient(conn)
	phones, err := client.ListInstances(context.Background(), &pb.ListInstancesRequest{PageNo: 1, PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	task, err := client.AsyncCommand(context.Background(), &pb.AsyncCommandRequest{Command: "ls",
		InstanceIds: []string{phones.GetResult()[0].GetInstanceId()}})
	if err != nil {
		t.Fatal(err)
	}

	seen := &opens{lastID: map[string][]string{}}
	gateway, _ := url.Parse("http://" + srv.HTTPAddr())
	proxy := httputil.NewSingleHostReverseProxy(gateway)
	proxy.FlushInterval = -1
	proxy.ModifyResponse = func(res *http.Response) error {
		if res.Request.Header.Get("X-Test-Cut") == "" {
			return nil
		}
		// Pass the stream on up to the end of its first result, with a short retry, and drop the connection.
		var out strings.Builder
		lines := bufio.NewReader(res.Body)
		sawID := false
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				break
			}
			out.WriteString(strings.Replace(line, "retry: 60000", "retry: 200", 1))
			sawID = sawID || strings.HasPrefix(line, "id: ")
			if line == "\n" && sawID {
				break
			}
		}
		_ = res.Body.Close()
		res.Body = io.NopCloser(strings.NewReader(out.String()))
		res.ContentLength = -1
		res.Header.Del("Content-Length")
		return nil
	}
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/page.html" {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, ssePage)
			return
		}
		prefix, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		n := seen.add(prefix, r.Header.Get("Last-Event-ID"))
		r.URL.Path = "/" + rest
		if prefix == "c" && n == 1 {
			r.Header.Set("X-Test-Cut", "1")
		}
		proxy.ServeHTTP(w, r)
	}))
	defer page.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "../../tools/npm/page-check.js", page.URL+"/page.html?task="+task.GetTaskId())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("page-check: %v (run `make npm-deps test-deps`)\n%s", err, out)
	}
	var got struct {
		Report        map[string]pageCase
		ConsoleErrors []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	t.Logf("report: %s", out)

	// a: results with ids 1, 2, …, the last one terminal, then end {"code":0}; one connection, no error.
	a := got.Report["a"]
	checkResults(t, "a", a, 1)
	if n := len(seen.get("a")); n != 1 || a.Opens != 1 || a.BareErrors != 0 {
		t.Errorf("a: %d connections at the server, %d opens and %d connection errors in the page; want 1, 1, 0", n, a.Opens, a.BareErrors)
	}

	// b: the error event carries the one error shape, then end with its code; one connection.
	b := got.Report["b"]
	if len(b.Events) != 2 || b.Events[0].Type != "error" || b.Events[1].Type != "end" || string(b.Events[1].Data) != `{"code":5}` {
		t.Fatalf("b: events %+v", b.Events)
	}
	var e struct {
		Error struct {
			Code    int
			Details []struct{ Reason string }
		}
	}
	if err := json.Unmarshal(b.Events[0].Data, &e); err != nil || e.Error.Code != 5 || len(e.Error.Details) == 0 || e.Error.Details[0].Reason != "KOOPHONE.API.1323" {
		t.Errorf("b: error event %s", b.Events[0].Data)
	}
	if n := len(seen.get("b")); n != 1 || b.BareErrors != 0 {
		t.Errorf("b: %d connections, %d connection errors", n, b.BareErrors)
	}

	// c: EventSource reconnected once by itself, sending the last id it had; the ids go on from there.
	c := got.Report["c"]
	if ids := seen.get("c"); len(ids) != 2 || ids[0] != "" || ids[1] != "1" {
		t.Errorf("c: connections with Last-Event-ID %q, want [\"\" \"1\"]", ids)
	}
	checkResults(t, "c", c, 1)

	// d: a page that keeps its EventSource after "end" sees the stream close, and no reconnect for 4 s.
	if n := len(seen.get("d")); n != 1 {
		t.Errorf("d: %d connections in 4 s after the end, want 1 (retry: 60000)", n)
	}
	if len(got.ConsoleErrors) > 0 {
		t.Logf("console (EventSource logs its own reconnects): %v", got.ConsoleErrors)
	}
}

// checkResults: results numbered from first on, the last one terminal, then end {"code":0}.
func checkResults(t *testing.T, name string, c pageCase, first int) {
	t.Helper()
	n := len(c.Events)
	if n < 2 || c.Events[n-1].Type != "end" || string(c.Events[n-1].Data) != `{"code":0}` {
		t.Fatalf("%s: events %+v", name, c.Events)
	}
	for i, ev := range c.Events[:n-1] {
		if ev.Type != "result" || ev.ID != strconv.Itoa(first+i) {
			t.Errorf("%s: event %d is %s id %q, want result id %d", name, i, ev.Type, ev.ID, first+i)
		}
	}
	var last struct{ Result struct{ Terminal bool } }
	if err := json.Unmarshal(c.Events[n-2].Data, &last); err != nil || !last.Result.Terminal {
		t.Errorf("%s: last result not terminal: %s", name, c.Events[n-2].Data)
	}
}
