package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/service"
)

// Every service of the contract (read from its descriptors) is served on gRPC and on REST, reported by health,
// validated and covered by the authorization table: a new service needs nothing but its proto, its handler and its
// row in service.Bindings.
func TestEveryServiceOfTheContractIsWired(t *testing.T) {
	e := newEnv(t)
	grpcServices := e.srv.grpc.GetServiceInfo()
	v, err := service.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	contract := service.Contract()
	if len(contract) < 4 {
		t.Fatalf("the contract has %d services", len(contract))
	}
	for _, sd := range contract {
		name := string(sd.FullName())
		if _, ok := grpcServices[name]; !ok {
			t.Errorf("%s is not registered on gRPC", name)
		}
		if res, err := e.srv.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name}); err != nil ||
			res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %s: %v %v", name, res, err)
		}
		for i := range sd.Methods().Len() {
			m := sd.Methods().Get(i)
			full := "/" + name + "/" + string(m.Name())
			if _, ok := auth.Rules[full]; !ok {
				t.Errorf("%s has no row in auth.Rules", full)
			}
			if err := v.Validate(emptyRequest(t, m)); err != nil && !strings.Contains(err.Error(), "invalid request") {
				t.Errorf("%s: the validator does not know its request: %v", full, err)
			}
			if rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule); rule == nil {
				t.Errorf("%s has no REST binding", full)
				continue
			}
			checkRESTRoute(t, e, m)
		}
	}
}

func emptyRequest(t *testing.T, m protoreflect.MethodDescriptor) proto.Message {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
	if err != nil {
		t.Fatalf("%s: %v", m.FullName(), err)
	}
	return mt.New().Interface()
}

// checkRESTRoute sends the RPC's REST binding (restCall) with a field the request does not have. A registered
// route answers from the chain (400 for the unknown field, or the handler's own answer); a path no route matches
// gets the mux's bare 404 "Not Found" or 405.
func checkRESTRoute(t *testing.T, e *env, md protoreflect.MethodDescriptor) {
	t.Helper()
	verb, path, body := restCall(md)
	var req *http.Request
	if body == "" {
		req, _ = http.NewRequest(verb, e.base+path+"?no_such_field_in_the_contract=1", nil)
	} else {
		req, _ = http.NewRequest(verb, e.base+path, strings.NewReader(`{"no_such_field_in_the_contract":1}`))
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.http.Do(req)
	if err != nil {
		t.Errorf("%s over REST: %v", md.FullName(), err)
		return
	}
	defer func() { _ = res.Body.Close() }()
	var answer struct{ Error struct{ Message string } }
	_ = json.NewDecoder(res.Body).Decode(&answer)
	if res.StatusCode == http.StatusMethodNotAllowed || (res.StatusCode == http.StatusNotFound && answer.Error.Message == "Not Found") {
		t.Errorf("%s: %s %s has no route (HTTP %d %q)", md.FullName(), verb, path, res.StatusCode, answer.Error.Message)
	}
}
