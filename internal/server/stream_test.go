package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

// recvAll receives a server stream's messages on a channel, then its final error (nil for OK) on another.
func recvAll[T any](s grpc.ServerStreamingClient[T]) (<-chan *T, <-chan error) {
	msgs, end := make(chan *T, 1024), make(chan error, 1)
	go func() {
		defer close(msgs)
		for {
			m, err := s.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				end <- err
				return
			}
			msgs <- m
		}
	}()
	return msgs, end
}

// next waits (in real time, bounded) for the next message while the fake clock is moved along in steps.
func next[T any](e *env, msgs <-chan *T) *T {
	e.t.Helper()
	var got *T
	ok := true
	e.advanceUntil(250*time.Millisecond, func() bool {
		select {
		case got, ok = <-msgs:
			return true
		default:
			return false
		}
	})
	if !ok {
		e.t.Fatal("stream ended early")
	}
	return got
}

func endOf(e *env, end <-chan error) error {
	e.t.Helper()
	select {
	case err := <-end:
		return err
	case <-time.After(10 * time.Second):
		e.t.Fatal("stream did not end")
		return nil
	}
}

func startTask(e *env, phones ...string) *pb.AsyncCommandResponse {
	e.t.Helper()
	task, err := e.inst.AsyncCommand(e.ctx(), &pb.AsyncCommandRequest{Command: "getprop ro.serialno", InstanceIds: phones})
	if err != nil {
		e.t.Fatal(err)
	}
	return task
}

// watchTask opens WatchTask(id) and receives it in the background.
func watchTask(e *env, id string) (<-chan *pb.WatchTaskResponse, <-chan error) {
	e.t.Helper()
	s, err := e.inst.WatchTask(e.ctx(), &pb.WatchTaskRequest{TaskId: id})
	if err != nil {
		e.t.Fatal(err)
	}
	return recvAll(s)
}

// waitIdle waits until no watcher and no poller is left in the server's hubs.
func waitIdle(e *env) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tasks, prepares := e.srv.services.WatchStats()
		if tasks.Watchers+tasks.Pollers+prepares.Watchers+prepares.Pollers == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatal("watchers or pollers left behind")
}

func TestWatchTaskLife(t *testing.T) {
	e := newEnv(t)
	p1, p2 := e.phone(), e.phone()
	task := startTask(e, p1, p2)
	msgs, end := watchTask(e, task.GetTaskId())
	first := <-msgs
	if first.GetTerminal() || first.GetRunningCount() != 2 || len(first.GetJobs()) != 2 || first.GetTaskId() != task.GetTaskId() {
		t.Fatalf("first message: %v", first)
	}
	last := next(e, msgs)
	if !last.GetTerminal() || last.GetSucceededCount() != 2 || last.GetJobs()[0].GetExecuteMsg() == "" {
		t.Fatalf("last message: %v", last)
	}
	if err := endOf(e, end); err != nil {
		t.Fatalf("stream ended with %v, want OK", err)
	}
	if extra, open := <-msgs; open {
		t.Fatalf("message after terminal: %v", extra)
	}
	waitIdle(e)
}

func TestWatchTaskUnknown(t *testing.T) {
	e := newEnv(t)
	s, err := e.inst.WatchTask(e.ctx(), &pb.WatchTaskRequest{TaskId: "feedfacefeedface"})
	if err != nil {
		t.Fatal(err)
	}
	_, end := recvAll(s)
	err = endOf(e, end)
	if status.Code(err) != codes.NotFound || errorInfoReason(err) != "KOOPHONE.API.1323" {
		t.Fatalf("got %v", err)
	}
}

// TestWatchSurvivesTransientFaults: KooPhone answers 503 five times in a row: the client's own three attempts
// fail, the hub retries on its backoff, and the stream carries on to the end without an error.
func TestWatchSurvivesTransientFaults(t *testing.T) {
	e := newEnv(t)
	task := startTask(e, e.phone())
	msgs, end := watchTask(e, task.GetTaskId())
	<-msgs
	if err := e.sim.SetFaults([]sim.Fault{{Kind: "503", Ops: []string{"GetTask"}, Count: 5}}); err != nil {
		t.Fatal(err)
	}
	before := e.sim.Calls("GetTask")
	if last := next(e, msgs); !last.GetTerminal() {
		t.Fatalf("last: %v", last)
	}
	if err := endOf(e, end); err != nil {
		t.Fatal(err)
	}
	if calls := e.sim.Calls("GetTask") - before; calls < 6 {
		t.Fatalf("only %d GetTask calls: the faults were not met", calls)
	}
	tasks, _ := e.srv.services.WatchStats()
	if tasks.PollErrors == 0 {
		t.Fatal("the hub saw no poll error")
	}
}

func TestWatchCancelAndDeadline(t *testing.T) {
	e := newEnv(t)
	task := startTask(e, e.phone())

	ctx, cancel := context.WithCancel(e.ctx())
	s, err := e.inst.WatchTask(ctx, &pb.WatchTaskRequest{TaskId: task.GetTaskId()})
	if err != nil {
		t.Fatal(err)
	}
	msgs, end := recvAll(s)
	<-msgs
	cancel()
	if err := endOf(e, end); status.Code(err) != codes.Canceled {
		t.Fatalf("after cancel: %v", err)
	}

	// The deadline runs in real time (it is the caller's): short, and the fake clock stays still meanwhile.
	dctx, dcancel := context.WithTimeout(e.ctx(), 200*time.Millisecond)
	defer dcancel()
	s, err = e.inst.WatchTask(dctx, &pb.WatchTaskRequest{TaskId: task.GetTaskId()})
	if err != nil {
		t.Fatal(err)
	}
	msgs, end = recvAll(s)
	<-msgs
	if err := endOf(e, end); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("after deadline: %v", err)
	}
	waitIdle(e)
}

// TestThousandWatchersOnePoller: 1,000 concurrent watchers of one task cost KooPhone exactly as many GetTask calls
// as one watcher of another task does.
func TestThousandWatchersOnePoller(t *testing.T) {
	e := newEnv(t)
	watch := func(n int) int64 {
		task := startTask(e, e.phone())
		before := e.sim.Calls("GetTask")
		var wg sync.WaitGroup
		firsts := make(chan struct{}, n)
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := e.inst.WatchTask(e.ctx(), &pb.WatchTaskRequest{TaskId: task.GetTaskId()})
				if err != nil {
					errs <- err
					return
				}
				m, err := s.Recv()
				if err != nil || m.GetTerminal() {
					errs <- errors.Join(err, errors.New("first message missing or terminal"))
					return
				}
				firsts <- struct{}{}
				for {
					m, err := s.Recv()
					if err != nil {
						errs <- err
						return
					}
					if m.GetTerminal() {
						if _, err := s.Recv(); !errors.Is(err, io.EOF) {
							errs <- errors.Join(err, errors.New("stream did not end with OK after terminal"))
						}
						return
					}
				}
			}()
		}
		for range n {
			select {
			case <-firsts:
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(30 * time.Second):
				t.Fatal("watchers did not all get the first snapshot")
			}
		}
		// Every watcher holds the running snapshot; now the job ends and the poller's next poll sees it.
		e.clk.Advance(jobDuration)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		e.advanceUntil(250*time.Millisecond, func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		})
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return e.sim.Calls("GetTask") - before
	}
	one := watch(1)
	thousand := watch(1000)
	if one != thousand {
		t.Fatalf("1 watcher: %d GetTask calls; 1,000 watchers: %d", one, thousand)
	}
	t.Logf("GetTask calls: 1 watcher %d, 1,000 watchers %d", one, thousand)
	waitIdle(e)
}

func TestShutdownEndsStreamsAndFlipsHealth(t *testing.T) {
	e := newEnv(t)
	hs, err := healthpb.NewHealthClient(e.conn).Watch(e.ctx(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := hs.Recv(); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health before shutdown: %v %v", h, err)
	}
	task := startTask(e, e.phone())
	msgs, end := watchTask(e, task.GetTaskId())
	<-msgs
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- e.shutdown(ctx)
	}()
	if h, err := hs.Recv(); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health during shutdown: %v %v", h, err)
	}
	err = endOf(e, end)
	if status.Code(err) != codes.Unavailable || errorInfoReason(err) != service.ReasonShuttingDown {
		t.Fatalf("stream at shutdown: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// readNDJSON reads a REST stream line by line.
func readNDJSON(t *testing.T, body io.Reader) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestWatchTaskOverREST reads the stream with a plain HTTP client: newline-delimited JSON, {"result": …} per
// message, and an in-band {"error": …} line when the upstream fails after the first message.
func TestWatchTaskOverREST(t *testing.T) {
	e := newEnv(t)
	get := func(taskID string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(e.ctx(), "GET", e.base+"/v1/instances/tasks/"+taskID+"/watch", nil)
		return e.http.Do(req)
	}

	task := startTask(e, e.phone())
	// The job finishes before the watch starts: the whole stream is one terminal message.
	e.clk.Advance(jobDuration)
	res, err := get(task.GetTaskId())
	if err != nil {
		t.Fatal(err)
	}
	lines := readNDJSON(t, res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || len(lines) != 1 {
		t.Fatalf("HTTP %d, lines %v", res.StatusCode, lines)
	}
	result, _ := lines[0]["result"].(map[string]any)
	if result["terminal"] != true || result["succeeded_count"] != float64(1) {
		t.Fatalf("line: %v", lines[0])
	}

	// Now a failure after the first message: KooPhone starts answering with an internal error.
	task = startTask(e, e.phone())
	res, err = get(task.GetTaskId())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	r := bufio.NewReader(res.Body)
	first, err := r.ReadString('\n')
	if err != nil || !strings.Contains(first, `"running_count":1`) {
		t.Fatalf("first line %q: %v", first, err)
	}
	if err := e.sim.SetFaults([]sim.Fault{{Kind: "error", Ops: []string{"GetTask"}, Count: 100}}); err != nil {
		t.Fatal(err)
	}
	lineCh := make(chan []map[string]any, 1)
	go func() { lineCh <- readNDJSON(t, r) }()
	var rest []map[string]any
	e.advanceUntil(250*time.Millisecond, func() bool {
		select {
		case rest = <-lineCh:
			return true
		default:
			return false
		}
	})
	if len(rest) != 1 {
		t.Fatalf("after the first message: %v", rest)
	}
	errObj, _ := rest[0]["error"].(map[string]any)
	if errObj["code"] != float64(codes.Internal) || !strings.Contains(mustJSON(t, errObj), "KOOPHONE.API.9999") {
		t.Fatalf("error line: %v", rest[0])
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWatchPrepareProgressLife(t *testing.T) {
	e := newEnv(t)
	p := e.phone()
	ctx := e.ctx()
	if _, err := e.inst.AssignInstance(ctx, &pb.AssignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "alice", InstanceId: p}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.inst.BatchPrepareInstances(ctx, &pb.BatchPrepareInstancesRequest{UserId: "alice", InstanceIds: []string{p}}); err != nil {
		t.Fatal(err)
	}
	s, err := e.inst.WatchPrepareProgress(ctx, &pb.WatchPrepareProgressRequest{UserId: "alice", InstanceId: p})
	if err != nil {
		t.Fatal(err)
	}
	msgs, end := recvAll(s)
	first := <-msgs
	if first.GetStatus() != pb.ProgressStatus_PROGRESS_STATUS_QUEUED || first.GetWaitingCount() != prepareQueue || first.GetTerminal() {
		t.Fatalf("first: %v", first)
	}
	var seen []string
	for last := first; !last.GetTerminal(); {
		last = next(e, msgs)
		seen = append(seen, last.GetStatus().String())
		if last.GetTerminal() && last.GetStatus() != pb.ProgressStatus_PROGRESS_STATUS_READY {
			t.Fatalf("ended at %v", last)
		}
	}
	if !strings.Contains(strings.Join(seen, ","), "PROGRESS_STATUS_RESTORING") {
		t.Errorf("never saw restoring: %v", seen)
	}
	if err := endOf(e, end); err != nil {
		t.Fatal(err)
	}
}

func TestRunAsyncCommand(t *testing.T) {
	e := newEnv(t)
	p1, p2 := e.phone(), e.phone()
	s, err := e.inst.RunAsyncCommand(e.ctx(), &pb.RunAsyncCommandRequest{Command: "getprop ro.serialno", InstanceIds: []string{p1, p2}})
	if err != nil {
		t.Fatal(err)
	}
	msgs, end := recvAll(s)
	started := <-msgs
	if started.GetTaskId() == "" || len(started.GetCmdJobs()) != 2 || len(started.GetJobs()) != 0 {
		t.Fatalf("first message: %v", started)
	}
	var last *pb.RunAsyncCommandResponse
	for last == nil || !last.GetTerminal() {
		last = next(e, msgs)
	}
	outputs := map[string]string{}
	for _, j := range last.GetJobs() {
		outputs[j.GetInstanceId()] = j.GetExecuteMsg()
	}
	// getprop ro.serialno prints each phone's own id: the jobs were tagged with the right phones.
	if outputs[p1] != p1 || outputs[p2] != p2 {
		t.Fatalf("outputs by phone: %v", outputs)
	}
	if err := endOf(e, end); err != nil {
		t.Fatal(err)
	}
}

func TestOpenSession(t *testing.T) {
	e := newEnv(t)
	p := e.phone()

	// Without assign, an unassigned phone is refused after the prepared step.
	s, err := e.inst.OpenSession(e.ctx(), &pb.OpenSessionRequest{UserId: "bob", InstanceId: p})
	if err != nil {
		t.Fatal(err)
	}
	msgs, end := recvAll(s)
	if m := <-msgs; m.GetPrepared().GetStatus() != pb.PrepareStatus_PREPARE_STATUS_WAITING_FOR_ASSIGNMENT {
		t.Fatalf("prepared: %v", m)
	}
	if err := endOf(e, end); status.Code(err) != codes.FailedPrecondition || errorInfoReason(err) != service.ReasonNotAssigned {
		t.Fatalf("without assign: %v", err)
	}

	// With assign: prepared, progress until ready, then the session.
	s, err = e.inst.OpenSession(e.ctx(), &pb.OpenSessionRequest{UserId: "bob", InstanceId: p, Assign: true})
	if err != nil {
		t.Fatal(err)
	}
	msgs, end = recvAll(s)
	first := <-msgs
	if !first.GetAssigned() || first.GetPrepared().GetStatus() != pb.PrepareStatus_PREPARE_STATUS_WAITING_FOR_RESTORE {
		t.Fatalf("first: %v", first)
	}
	var progress int
	for {
		m := next(e, msgs)
		if m.GetProgress() != nil {
			progress++
			continue
		}
		sess := m.GetSession()
		if sess == nil || sess.GetDeviceToken() == "" || sess.GetResource().GetRtc().GetIceSignaling().GetSignalingUrl() == "" {
			t.Fatalf("last: %v", m)
		}
		break
	}
	if progress < 2 {
		t.Errorf("only %d progress messages", progress)
	}
	if err := endOf(e, end); err != nil {
		t.Fatal(err)
	}
}

// TestWatchTaskEveryKindOfTask: WatchTask follows every kind of task KooPhone has, whatever its id looks like.
func TestWatchTaskEveryKindOfTask(t *testing.T) {
	e := newEnv(t)
	starts := map[string]func() string{
		"AsyncCommand": func() string { return startTask(e, e.phone()).GetTaskId() },
		"BatchReset": func() string {
			res, err := e.inst.BatchReset(e.ctx(), &pb.BatchResetRequest{InstanceIds: []string{e.phone()}})
			if err != nil {
				t.Fatal(err)
			}
			return res.GetTaskId()
		},
		"UnassignInstance": func() string {
			p := e.phone()
			pair := []*pb.UserInstance{{UserId: "carol", InstanceId: p}}
			if _, err := e.inst.AssignInstance(e.ctx(), &pb.AssignInstanceRequest{UserInstances: pair}); err != nil {
				t.Fatal(err)
			}
			res, err := e.inst.UnassignInstance(e.ctx(), &pb.UnassignInstanceRequest{UserInstances: pair})
			if err != nil {
				t.Fatal(err)
			}
			return res.GetTaskId()
		},
		"BatchBackupInstances": func() string {
			p := e.phone()
			e.prepared("dave", p)
			res, err := e.inst.BatchBackupInstances(e.ctx(), &pb.BatchBackupInstancesRequest{InstanceIds: []string{p}})
			if err != nil {
				t.Fatal(err)
			}
			return res.GetTaskId()
		},
		"InstallApp": func() string {
			res, err := e.app.InstallApp(e.ctx(), installReq(e.phone()))
			if err != nil {
				t.Fatal(err)
			}
			return res.GetTaskId()
		},
	}
	for kind, start := range starts {
		t.Run(kind, func(t *testing.T) {
			e.t = t
			id := start()
			msgs, end := watchTask(e, id)
			if first := <-msgs; first.GetTerminal() || first.GetRunningCount() != 1 {
				t.Fatalf("%s %s first: %v", kind, id, first)
			}
			if last := next(e, msgs); !last.GetTerminal() || last.GetSucceededCount() != 1 {
				t.Fatalf("%s %s last: %v", kind, id, last)
			}
			if err := endOf(e, end); err != nil {
				t.Fatal(err)
			}
		})
	}
	e.t = t
}

// TestPrepareProgressIsNotCached: a phone prepared, backed up and prepared again is followed afresh, not answered
// from a cached "ready" (which would make OpenSession ask for a device token too early).
func TestPrepareProgressIsNotCached(t *testing.T) {
	e := newEnv(t)
	p := e.phone()
	open := func() []*pb.OpenSessionResponse {
		s, err := e.inst.OpenSession(e.ctx(), &pb.OpenSessionRequest{UserId: "erin", InstanceId: p, Assign: true})
		if err != nil {
			t.Fatal(err)
		}
		msgs, end := recvAll(s)
		var all []*pb.OpenSessionResponse
		for {
			m := next(e, msgs)
			all = append(all, m)
			if m.GetSession() != nil {
				break
			}
		}
		if err := endOf(e, end); err != nil {
			t.Fatal(err)
		}
		return all
	}
	first := open()
	task, err := e.inst.BatchBackupInstances(e.ctx(), &pb.BatchBackupInstancesRequest{InstanceIds: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	msgs, end := watchTask(e, task.GetTaskId())
	m := <-msgs
	for !m.GetTerminal() {
		m = next(e, msgs)
	}
	if err := endOf(e, end); err != nil {
		t.Fatal(err)
	}
	second := open()
	if len(second) < 3 || second[1].GetProgress().GetStatus() != pb.ProgressStatus_PROGRESS_STATUS_QUEUED {
		t.Fatalf("second session (after %d messages the first time): %v", len(first), second)
	}
}
