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
		"--selector.filter.running-status", "running")
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
	if got := firstLine("letters, digits, _ . @ -)."); got != "letters, digits, _ . @ -)." {
		t.Fatalf("firstLine = %q", got)
	}
}
