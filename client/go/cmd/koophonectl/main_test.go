package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fleet records the request it got and answers with a short stream.
type fleet struct {
	pb.UnimplementedFleetServiceServer
	got chan proto.Message
}

func (f *fleet) RebootFleet(req *pb.RebootFleetRequest, s grpc.ServerStreamingServer[pb.FleetEvent]) error {
	f.got <- req
	_ = s.Send(&pb.FleetEvent{Event: &pb.FleetEvent_Result{Result: &pb.FleetPhoneResult{InstanceId: "a1", Outcome: pb.FleetOutcome_FLEET_OUTCOME_FAILED, ErrorCode: "E1"}}})
	return s.Send(&pb.FleetEvent{Event: &pb.FleetEvent_Summary{Summary: &pb.FleetSummary{Counts: &pb.FleetProgress{Total: 1, Failed: 1}}}})
}

func (f *fleet) ResetFleet(*pb.ResetFleetRequest, grpc.ServerStreamingServer[pb.FleetEvent]) error {
	return status.Error(codes.FailedPrecondition, "no")
}

func start(t *testing.T) (string, *fleet) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{got: make(chan proto.Message, 1)}
	srv := grpc.NewServer()
	pb.RegisterFleetServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), f
}

func runCLI(addr string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	env := map[string]string{"KOOPHONE_ADDR": addr, "KOOPHONE_CONFIG": "/dev/null"}
	code := run(args, strings.NewReader(`{"options":{"batch_size":7}}`), &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

// Flags, shortcuts and a JSON body all end up in the request; flags win over the body.
func TestRequestFromFlagsAndBody(t *testing.T) {
	addr, f := start(t)
	code, out, errs := runCLI(addr, "fleet", "reboot-fleet", "-d", "-", "--ids", "a1, a2", "--options.concurrency", "3",
		"--selector.filter.running-status", "RUNNING_STATUS_RUNNING")
	if code != exitPartial || !strings.Contains(out, "a1                   FAILED       E1") || !strings.Contains(out, "done: 1 phones, 0 succeeded, 1 failed") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	want := &pb.RebootFleetRequest{
		Selector: &pb.FleetSelector{InstanceIds: []string{"a1", "a2"}, Filter: &pb.FleetFilter{RunningStatus: "RUNNING_STATUS_RUNNING"}},
		Options:  &pb.FleetOptions{BatchSize: 7, Concurrency: 3},
	}
	if got := <-f.got; !proto.Equal(got, want) {
		t.Fatalf("request %v, want %v", got, want)
	}
}

func TestExitCodes(t *testing.T) {
	addr, _ := start(t)
	if code, _, errs := runCLI(addr, "fleet", "reset-fleet", "--all"); code != 19 || !strings.Contains(errs, "FAILED_PRECONDITION: no") {
		t.Fatalf("FAILED_PRECONDITION: exit %d, %s", code, errs)
	}
	if code, _, _ := runCLI(addr, "fleet", "reboot-fleet", "--options.batch-size", "many"); code != exitUsage {
		t.Fatalf("a bad number: exit %d", code)
	}
	for c, want := range map[codes.Code]int{codes.OK: 0, codes.Unknown: 12, codes.PermissionDenied: 17, codes.Unauthenticated: 26} {
		var err error
		if c != codes.OK {
			err = status.Error(c, "x")
		}
		if got := exitCode(err); got != want {
			t.Errorf("exitCode(%s) = %d, want %d", c, got, want)
		}
	}
	if codeName(codes.Canceled) != "CANCELLED" || codeName(codes.DeadlineExceeded) != "DEADLINE_EXCEEDED" {
		t.Fatal("code names are not the gRPC spelling")
	}
}

func TestNames(t *testing.T) {
	if kebab("ListInstances") != "list-instances" || kebab("page_no") != "page-no" {
		t.Fatal("kebab")
	}
	if got := firstLine("Reads phones (KooPhone X). More here.\nLine two"); got != "Reads phones (KooPhone X)." {
		t.Fatalf("firstLine = %q", got)
	}
	if got := oneLine("acct\ncache\r\nsys\n"); got != `acct\ncache\nsys` {
		t.Fatalf("oneLine = %q", got)
	}
	if got := firstLine("letters, digits, _ . @ -)."); got != "letters, digits, _ . @ -)." {
		t.Fatalf("firstLine = %q", got)
	}
}

// instances answers OpenSession and WatchPrepareProgress with a phone that waits behind two others in the queue.
type instances struct {
	pb.UnimplementedInstanceServiceServer
}

func queueSteps(ready bool) []*pb.ShowProgressResponse {
	steps := []*pb.ShowProgressResponse{
		{Status: pb.ProgressStatus_PROGRESS_STATUS_QUEUED, WaitingCount: 2},
		{Status: pb.ProgressStatus_PROGRESS_STATUS_QUEUED, WaitingCount: 1},
		{Status: pb.ProgressStatus_PROGRESS_STATUS_RESTORING},
	}
	if ready {
		steps = append(steps, &pb.ShowProgressResponse{Status: pb.ProgressStatus_PROGRESS_STATUS_READY})
	}
	return steps
}

func (instances) OpenSession(_ *pb.OpenSessionRequest, s grpc.ServerStreamingServer[pb.OpenSessionResponse]) error {
	_ = s.Send(&pb.OpenSessionResponse{Step: &pb.OpenSessionResponse_Prepared{Prepared: &pb.PrepareStatusResult{InstanceId: "a1"}}})
	for _, st := range queueSteps(true) {
		_ = s.Send(&pb.OpenSessionResponse{Step: &pb.OpenSessionResponse_Progress{Progress: st}})
	}
	return s.Send(&pb.OpenSessionResponse{Step: &pb.OpenSessionResponse_Session{Session: &pb.GetDeviceTokenResponse{}}})
}

func (instances) WatchPrepareProgress(_ *pb.WatchPrepareProgressRequest, s grpc.ServerStreamingServer[pb.WatchPrepareProgressResponse]) error {
	for _, st := range queueSteps(false) {
		_ = s.Send(&pb.WatchPrepareProgressResponse{Status: st.GetStatus(), WaitingCount: st.GetWaitingCount()})
	}
	return s.Send(&pb.WatchPrepareProgressResponse{Status: pb.ProgressStatus_PROGRESS_STATUS_READY, Terminal: true})
}

// OpenSession and WatchPrepareProgress show a line per step and a bar of the queue ahead of the phone, filled once
// the phone is ready.
func TestQueueProgress(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterInstanceServiceServer(srv, instances{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()

	code, out, errs := runCLI(addr, "--progress", "always", "instance", "open-session", "--user-id", "u1", "--instance-id", "a1")
	if code != 0 || !strings.Contains(out, "prepared: instance_id=a1") || strings.Count(out, "progress: ") != 4 || !strings.Contains(out, "session: ") {
		t.Fatalf("open-session: exit %d\nstdout %s\nstderr %q", code, out, errs)
	}
	// Two ahead and the phone: three places; the bar starts empty and ends full.
	if !strings.Contains(errs, "session") || !strings.Contains(errs, "(0/3)") || !strings.Contains(errs, "(3/3)") {
		t.Fatalf("open-session: no queue bar from 0/3 to 3/3 on stderr: %q", errs)
	}
	code, out, errs = runCLI(addr, "--progress", "always", "instance", "watch-prepare-progress", "--instance-id", "a1")
	if code != 0 || strings.Count(out, "status=") != 4 || !strings.Contains(errs, "prepare") || !strings.Contains(errs, "(3/3)") {
		t.Fatalf("watch-prepare-progress: exit %d\nstdout %s\nstderr %q", code, out, errs)
	}
	// Into a pipe, with --progress left at auto: the lines, no bar.
	if code, out, errs = runCLI(addr, "instance", "open-session", "--user-id", "u1", "--instance-id", "a1"); code != 0 ||
		!strings.Contains(out, "session: ") || strings.Contains(errs, "(3/3)") {
		t.Fatalf("open-session into a pipe: exit %d\nstdout %s\nstderr %q", code, out, errs)
	}
}

// Every RPC of the contract (the descriptor set the stubs were generated from) is a command, under its service's
// name and kebab-cased; none is written by hand, so none can be missing or left over.
func TestEveryRPCIsACommand(t *testing.T) {
	if documented == nil {
		t.Fatal("contract.binpb does not load")
	}
	root := (&app{}).rootCommand()
	n := 0
	documented.RangeFilesByPackage("koophone.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			svc := fd.Services().Get(i)
			for j := 0; j < svc.Methods().Len(); j++ {
				md := svc.Methods().Get(j)
				n++
				svcName := strings.ToLower(strings.TrimSuffix(string(svc.Name()), "Service"))
				for _, path := range [][]string{{svcName, kebab(string(md.Name()))}, {string(svc.Name()), string(md.Name())}} {
					cmd, rest, err := root.Find(path)
					if err != nil || len(rest) != 0 || cmd.Name() != kebab(string(md.Name())) || cmd.Parent().Name() != svcName {
						t.Errorf("%s: koophonectl %s finds %v (rest %v, err %v)", md.FullName(), strings.Join(path, " "), cmd.CommandPath(), rest, err)
					}
				}
			}
		}
		return true
	})
	commands := 0
	for _, c := range root.Commands() {
		if c.Name() != "exit-codes" && c.Name() != "completion" && c.Name() != "help" {
			commands += len(c.Commands())
		}
	}
	if n == 0 || commands != n {
		t.Fatalf("the contract has %d RPCs, koophonectl %d RPC commands", n, commands)
	}
}
