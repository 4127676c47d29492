package rest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/rest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeInstances answers the few RPCs these tests call, so the mirror's behaviour is tested on its own.
type fakeInstances struct {
	pb.UnimplementedInstanceServiceServer
}

func (fakeInstances) ListInstances(ctx context.Context, req *pb.ListInstancesRequest) (*pb.ListInstancesResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", "from-grpc"))
	return &pb.ListInstancesResponse{PageNo: req.GetPageNo(), Result: []*pb.Instance{{InstanceId: "GbQj4kNO"}}}, nil
}

func (fakeInstances) GetTask(ctx context.Context, req *pb.GetTaskRequest) (*pb.GetTaskResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", "from-grpc"))
	st, _ := status.New(codes.NotFound, "no such task").WithDetails(&errdetails.ErrorInfo{Reason: "KOOPHONE.API.1323", Domain: "koophone.myhuaweicloud.com"})
	return nil, st.Err()
}

func (fakeInstances) SyncCommand(context.Context, *pb.SyncCommandRequest) (*pb.SyncCommandResponse, error) {
	return &pb.SyncCommandResponse{}, nil
}

// WatchTask: "ok" sends two messages and ends; "mid" sends one and fails; anything else fails at once.
func (fakeInstances) WatchTask(req *pb.WatchTaskRequest, srv grpc.ServerStreamingServer[pb.WatchTaskResponse]) error {
	switch req.GetTaskId() {
	case "ok":
		_ = srv.Send(&pb.WatchTaskResponse{TaskId: "ok", RunningCount: 1})
		return srv.Send(&pb.WatchTaskResponse{TaskId: "ok", Terminal: true, SucceededCount: 1})
	case "busy":
		st, _ := status.New(codes.Unavailable, "KooPhone is failing").WithDetails(
			&errdetails.RetryInfo{RetryDelay: durationpb.New(2500 * time.Millisecond)})
		return st.Err()
	case "empty":
		return nil
	case "mid":
		_ = srv.Send(&pb.WatchTaskResponse{TaskId: "mid", RunningCount: 1})
		st, _ := status.New(codes.Unavailable, "shutting down").WithDetails(&errdetails.ErrorInfo{Reason: "SERVER_SHUTTING_DOWN", Domain: "koophone-gateway"})
		return st.Err()
	}
	return status.Error(codes.NotFound, "task does not exist")
}

// startMirror serves fakeInstances over gRPC on loopback and a grpc-gateway mux with rest.Options in front of it.
func startMirror(t *testing.T) string {
	t.Helper()
	return startCheckedMirror(t, nil)
}

// startCheckedMirror is startMirror with the mux behind the edge's checks when edge is not nil, as the server wires
// it.
func startCheckedMirror(t *testing.T, edge *rest.EdgeConfig) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterInstanceServiceServer(gs, fakeInstances{})
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	base := &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
	}}
	mux := runtime.NewServeMux(
		runtime.WithOutgoingHeaderMatcher(func(k string) (string, bool) { return "X-Request-Id", k == "x-request-id" }),
		rest.Options(base),
	)
	if err := pb.RegisterInstanceServiceHandler(context.Background(), mux, conn); err != nil {
		t.Fatal(err)
	}
	var h http.Handler = mux
	if edge != nil {
		if h, err = rest.Edge(*edge, mux); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		_ = conn.Close()
		gs.Stop()
	})
	return hs.URL
}

type errorBody struct {
	Error struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Details []json.RawMessage `json:"details"`
	} `json:"error"`
}

// answer is what a test reads of a response once do has read and closed its body.
type answer struct {
	StatusCode int
	Header     http.Header
}

func do(t *testing.T, method, url, body string, header ...string) (answer, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return answer{StatusCode: resp.StatusCode, Header: resp.Header}, string(b)
}

// decodeError checks the one error shape and returns it, with its details decoded.
func decodeError(t *testing.T, body string) (errorBody, []map[string]any) {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == 0 {
		t.Fatalf("body is not {\"error\": status}: %q (%v)", body, err)
	}
	var details []map[string]any
	for _, d := range e.Error.Details {
		var m map[string]any
		_ = json.Unmarshal(d, &m)
		details = append(details, m)
	}
	return e, details
}

func badRequestField(t *testing.T, details []map[string]any) (field, reason string) {
	t.Helper()
	for _, d := range details {
		if d["@type"] == "type.googleapis.com/google.rpc.BadRequest" {
			v := d["field_violations"].([]any)[0].(map[string]any)
			return v["field"].(string), v["reason"].(string)
		}
	}
	t.Fatalf("no BadRequest in %v", details)
	return "", ""
}

func TestBadInputIsABadRequestWithARequestID(t *testing.T) {
	url := startMirror(t)
	cases := []struct {
		name, method, path, body  string
		wantField, wantReason     string
		mustNotContain, wantInMsg string
	}{
		{"unknown body field", "POST", "/v1/instances/sync-command", `{"command":"ls","bogus":1}`, "bogus", "body.unknown_field", "proto:", "bogus"},
		{"wrong type", "POST", "/v1/instances/sync-command", `{"command":5}`, "command", "body.type", "proto:", "command"},
		{"not JSON", "POST", "/v1/instances/sync-command", `{"command":`, "body", "body.syntax", "unexpected", "JSON"},
		{"not JSON at all", "POST", "/v1/instances/sync-command", `x`, "body", "body.syntax", "invalid character", "JSON"},
		{"unknown query parameter", "GET", "/v1/instances/batch-query?page_no=1&pag_size=2", "", "query.pag_size", "query.unknown_parameter", "", "pag_size"},
		{"query value of the wrong type", "GET", "/v1/instances/batch-query?page_no=one", "", "query.page_no", "query.type", "strconv", "page_no"},
		{"query parameter on a whole-body operation", "POST", "/v1/instances/sync-command?dry_run=1", `{"command":"ls"}`, "query.dry_run", "query.unknown_parameter", "", "JSON body"},
		// GetTask's one field is in the path: grpc-gateway reads no query there, so it was silently ignored.
		{"query parameter on a path-only operation", "GET", "/v1/instances/tasks/abc12345?verbose=1", "", "query.verbose", "query.unknown_parameter", "", "no query parameters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, c.method, url+c.path, c.body, "X-Request-Id", "caller-42")
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, body)
			}
			if got := resp.Header.Get("X-Request-Id"); got != "caller-42" {
				t.Errorf("X-Request-Id %q, want the caller's", got)
			}
			e, details := decodeError(t, body)
			if e.Error.Code != int(codes.InvalidArgument) || !strings.Contains(e.Error.Message, c.wantInMsg) {
				t.Errorf("status %d %q", e.Error.Code, e.Error.Message)
			}
			if c.mustNotContain != "" && strings.Contains(body, c.mustNotContain) {
				t.Errorf("Go internals %q in %s", c.mustNotContain, body)
			}
			if field, reason := badRequestField(t, details); field != c.wantField || reason != c.wantReason {
				t.Errorf("violation %s/%s, want %s/%s", field, reason, c.wantField, c.wantReason)
			}
		})
	}
	// Without one from the caller, the answer still has an id.
	resp, _ := do(t, "POST", url+"/v1/instances/sync-command", `{"bogus":1}`)
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on a refused body")
	}
}

// A body cut off by the edge's deadline is answered as what it is (not "the body ended early"), in the one error
// shape and with the caller's request id.
func TestBodyTimeoutIsNamed(t *testing.T) {
	url := startCheckedMirror(t, &rest.EdgeConfig{BodyTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := fmt.Fprintf(c, "POST /v1/instances/sync-command HTTP/1.1\r\nHost: x\r\nX-Request-Id: slow-1\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"comm"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // only keeps a broken server from hanging the test
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Request-Id") != "slow-1" {
		t.Fatalf("%d X-Request-Id=%q %s", resp.StatusCode, resp.Header.Get("X-Request-Id"), b)
	}
	e, details := decodeError(t, string(b))
	if field, reason := badRequestField(t, details); field != "body" || reason != "body.timeout" || !strings.Contains(e.Error.Message, "--http-body-timeout") {
		t.Errorf("violation %s/%s %q", field, reason, e.Error.Message)
	}
}

func TestKnownQueryParametersStillWork(t *testing.T) {
	url := startMirror(t)
	resp, body := do(t, "GET", url+"/v1/instances/batch-query?page_no=3&pageSize=5", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"page_no":3`) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestWrongVerbIs405WithAllow(t *testing.T) {
	url := startMirror(t)
	resp, body := do(t, "DELETE", url+"/v1/instances/sync-command", "")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("%d Allow=%q %s", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
	_, details := decodeError(t, body)
	if details[0]["reason"] != "HTTP_METHOD_NOT_ALLOWED" || details[0]["domain"] != "koophone-gateway" {
		t.Errorf("details %v", details)
	}
	// A path with a parameter: GET and POST are both bound under /v1/instances/tasks/{id}…
	resp, _ = do(t, "PUT", url+"/v1/instances/tasks/abc", "")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("%d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, body = do(t, "GET", url+"/v1/nothing/here", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "HTTP_PATH_NOT_FOUND") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestUnaryErrorShape(t *testing.T) {
	url := startMirror(t)
	resp, body := do(t, "GET", url+"/v1/instances/tasks/abc", "")
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Request-Id") != "from-grpc" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	e, details := decodeError(t, body)
	if e.Error.Code != int(codes.NotFound) || details[0]["reason"] != "KOOPHONE.API.1323" {
		t.Fatalf("%+v %v", e, details)
	}
}

func TestStreamIsNDJSONByDefault(t *testing.T) {
	url := startMirror(t)
	resp, body := do(t, "GET", url+"/v1/instances/tasks/ok/watch", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != rest.MIMENDJSON {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", body)
	}
	for i, l := range lines {
		var line struct {
			Result *struct {
				TaskID   string `json:"task_id"`
				Terminal bool   `json:"terminal"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil || line.Result == nil || line.Result.TaskID != "ok" {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if line.Result.Terminal != (i == 1) {
			t.Errorf("line %d terminal=%v", i, line.Result.Terminal)
		}
	}
}

func TestStreamErrors(t *testing.T) {
	url := startMirror(t)
	// Before the first message: the error's HTTP status and the usual body.
	resp, body := do(t, "GET", url+"/v1/instances/tasks/gone/watch", "")
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if e, _ := decodeError(t, strings.TrimSpace(body)); e.Error.Code != int(codes.NotFound) {
		t.Fatalf("%+v", e)
	}
	// After it: 200, then an {"error": …} line with the details.
	resp, body = do(t, "GET", url+"/v1/instances/tasks/mid/watch", "")
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if resp.StatusCode != 200 || len(lines) != 2 || !strings.HasPrefix(lines[0], `{"result"`) {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	e, details := decodeError(t, lines[1])
	if e.Error.Code != int(codes.Unavailable) || details[0]["reason"] != "SERVER_SHUTTING_DOWN" {
		t.Fatalf("%+v %v", e, details)
	}
}
