package apidocs_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/server/servertest"
)

// TestDocsPageInChromium loads /docs in Debian's headless Chromium: Swagger UI must list the three services and
// every operation of the contract, and "Try it out" on ListInstances must return the simulator's phones. The
// screenshot goes to $KOOPHONE_DOCS_SCREENSHOT (default: koophone-docs.png in the system's temp directory).
func TestDocsPageInChromium(t *testing.T) {
	srv := servertest.Start(t)
	shot := os.Getenv("KOOPHONE_DOCS_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(os.TempDir(), "koophone-docs.png")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "../../tools/npm/docs-check.js", "http://"+srv.HTTPAddr(), shot)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docs-check: %v (run `make npm-deps test-deps`)\n%s", err, out)
	}
	var report struct {
		Title, APITitle                                string
		Services, Operations                           []string
		TryItStatus                                    string
		TryItPhones                                    []string
		ConsoleErrors, OutsideRequests, FailedRequests []string
		Screenshot                                     string
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	t.Logf("report: %+v", report)

	if report.APITitle == "" || !slices.Contains([]string{"KooPhone gateway"}, firstWords(report.APITitle)) {
		t.Errorf("API title %q", report.APITitle)
	}
	services := slices.Clone(report.Services)
	sort.Strings(services)
	if !slices.Equal(services, []string{"AppService", "FleetService", "InstanceService", "OrderService"}) {
		t.Errorf("services %v", report.Services)
	}
	want := contractOperations()
	got := slices.Clone(report.Operations)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("operations shown:\n%v\nwant every RPC of the contract:\n%v", got, want)
	}
	if report.TryItStatus != "200" {
		t.Errorf("try it: status %q", report.TryItStatus)
	}
	if phones := simulatorPhones(t, srv.GRPCAddr()); !slices.Equal(report.TryItPhones, phones) {
		t.Errorf("try it returned %v, the simulator has %v", report.TryItPhones, phones)
	}
	if len(report.OutsideRequests) > 0 || len(report.FailedRequests) > 0 || len(report.ConsoleErrors) > 0 {
		t.Errorf("outside requests %v, failed %v, console errors %v", report.OutsideRequests, report.FailedRequests, report.ConsoleErrors)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
}

// firstWords drops Swagger UI's version badges that follow the title text.
func firstWords(title string) string {
	if len(title) >= len("KooPhone gateway") {
		return title[:len("KooPhone gateway")]
	}
	return title
}

// contractOperations is every RPC with a REST binding, as Swagger UI names it: Service-Service_Method.
func contractOperations() []string {
	var ops []string
	protoregistry.GlobalFiles.RangeFilesByPackage("koophone.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			for j := 0; j < s.Methods().Len(); j++ {
				ops = append(ops, string(s.Name())+"-"+string(s.Name())+"_"+string(s.Methods().Get(j).Name()))
			}
		}
		return true
	})
	sort.Strings(ops)
	return ops
}

// simulatorPhones asks the gateway over gRPC for the page the browser asked for.
func simulatorPhones(t *testing.T, addr string) []string {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	res, err := pb.NewInstanceServiceClient(conn).ListInstances(context.Background(), &pb.ListInstancesRequest{PageNo: 1, PageSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range res.GetResult() {
		ids = append(ids, p.GetInstanceId())
	}
	return ids
}
