package service

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

const serviceConfigPath = "../../docs/service-config.json"

// The service config shipped to clients parses with grpc-go and lists exactly the RPCs the code calls safe.
func TestServiceConfigMatchesRetrySafe(t *testing.T) {
	raw, err := os.ReadFile(serviceConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	// grpc.NewClient validates a default service config and refuses an invalid one.
	conn, err := grpc.NewClient("passthrough:///127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(string(raw)))
	if err != nil {
		t.Fatalf("grpc-go refuses %s: %v", serviceConfigPath, err)
	}
	_ = conn.Close()

	var sc struct {
		MethodConfig []struct {
			Name []struct {
				Service, Method string
			}
			RetryPolicy *struct {
				RetryableStatusCodes []string
			}
		}
	}
	if err := json.Unmarshal(raw, &sc); err != nil {
		t.Fatal(err)
	}
	var retried []string
	for _, mc := range sc.MethodConfig {
		if mc.RetryPolicy == nil {
			continue
		}
		if slices.Contains(mc.RetryPolicy.RetryableStatusCodes, "UNKNOWN") {
			t.Fatal("UNKNOWN (outcome unknown) must never be retried blindly")
		}
		for _, n := range mc.Name {
			if n.Method == "" {
				t.Fatalf("a whole service (%s) is retried: writes would be too", n.Service)
			}
			retried = append(retried, "/"+n.Service+"/"+n.Method)
		}
	}
	slices.Sort(retried)
	want := slices.Sorted(slices.Values(RetrySafe))
	if !slices.Equal(retried, want) {
		t.Fatalf("service config retries %v\ncode says retry-safe %v", retried, want)
	}
	// Every name is a real RPC.
	var all []string
	for _, d := range []grpc.ServiceDesc{pb.InstanceService_ServiceDesc, pb.OrderService_ServiceDesc, pb.AppService_ServiceDesc, pb.FleetService_ServiceDesc} {
		for _, m := range d.Methods {
			all = append(all, "/"+d.ServiceName+"/"+m.MethodName)
		}
		for _, s := range d.Streams {
			all = append(all, "/"+d.ServiceName+"/"+s.StreamName)
		}
	}
	for _, m := range RetrySafe {
		if !slices.Contains(all, m) {
			t.Fatalf("%s is not an RPC", m)
		}
	}
}
