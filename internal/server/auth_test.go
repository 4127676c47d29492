package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/httprule"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

// contractRPCs is every RPC of the koophone.v1 contract.
func contractRPCs(t *testing.T) []protoreflect.MethodDescriptor {
	_ = pb.File_koophone_v1_instance_service_proto // make sure the contract is registered
	var out []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("koophone.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				out = append(out, sd.Methods().Get(j))
			}
		}
		return true
	})
	if len(out) < 20 {
		t.Fatalf("only %d RPCs registered", len(out))
	}
	return out
}

func fullMethod(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

// callGRPC calls any RPC with req; for a stream the outcome is that of its first message.
func callGRPC(ctx context.Context, conn *grpc.ClientConn, md protoreflect.MethodDescriptor, req proto.Message) error {
	if req == nil {
		req = dynamicpb.NewMessage(md.Input())
	}
	if md.IsStreamingServer() {
		cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, fullMethod(md))
		if err != nil {
			return err
		}
		if err := cs.SendMsg(req); err != nil {
			return err
		}
		if err := cs.CloseSend(); err != nil {
			return err
		}
		err = cs.RecvMsg(dynamicpb.NewMessage(md.Output()))
		if err == io.EOF {
			return nil
		}
		return err
	}
	return conn.Invoke(ctx, fullMethod(md), req, dynamicpb.NewMessage(md.Output()))
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// restCall is an RPC's REST binding with its path parameters filled in and an empty JSON body where it has one.
func restCall(md protoreflect.MethodDescriptor) (method, path, body string) {
	method, path = httprule.Of(md)
	if httprule.Rule(md).GetBody() != "" {
		body = "{}"
	}
	return method, pathParam.ReplaceAllString(path, "abc1"), body
}

// denial returns the ErrorInfo of an ACTION_DENIED error.
func denial(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == auth.ReasonActionDenied {
			return info
		}
	}
	return nil
}

// restErrorInfo decodes a REST error body: a google.rpc.Status, or a stream's in-band {"error": …}.
func restErrorInfo(t *testing.T, body string) (reason string, meta map[string]string) {
	t.Helper()
	var st struct {
		Error   json.RawMessage `json:"error"`
		Details []struct {
			Type     string            `json:"@type"`
			Reason   string            `json:"reason"`
			Metadata map[string]string `json:"metadata"`
		} `json:"details"`
	}
	first, _, _ := strings.Cut(body, "\n")
	if err := json.Unmarshal([]byte(first), &st); err != nil {
		t.Fatalf("REST error body is not JSON: %q", body)
	}
	if len(st.Error) > 0 {
		return restErrorInfo(t, string(st.Error))
	}
	for _, d := range st.Details {
		if strings.HasSuffix(d.Type, "google.rpc.ErrorInfo") {
			for k, v := range d.Metadata {
				if v == "" { // see checkErrorInfos
					t.Errorf("REST ErrorInfo %s has an empty %q: %v", d.Reason, k, d.Metadata)
				}
			}
			return d.Reason, d.Metadata
		}
	}
	return "", nil
}

// Without credentials, or with a wrong key, every KooPhone RPC is UNAUTHENTICATED (401); health, /healthz and
// /readyz stay open, and reflection is off.
func TestNoCredentialsNoCall(t *testing.T) {
	e := newSecureEnv(t, secureOpts{keys: map[string]string{"right-key": "ops"}})
	conn := e.dial()
	hc := http.DefaultClient
	for _, md := range contractRPCs(t) {
		for _, key := range []string{"", "wrong-key"} {
			if err := callGRPC(e.bearer(key), conn, md, nil); status.Code(err) != codes.Unauthenticated {
				t.Errorf("gRPC %s with key %q: %v, want UNAUTHENTICATED", md.Name(), key, err)
			}
			method, path, body := restCall(md)
			if code, res := e.rest(hc, method, path, body, key); code != http.StatusUnauthorized {
				t.Errorf("REST %s %s with key %q: %d %s, want 401", method, path, key, code, res)
			}
		}
	}
	if n := e.operations(); n != 0 {
		t.Errorf("%d unauthenticated calls reached KooPhone: %v", n, e.sim.AllCalls())
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := e.rest(hc, http.MethodGet, p, "", ""); code != http.StatusOK {
			t.Errorf("%s: %d", p, code)
		}
	}
	if err := reflectionList(e.bearer(""), conn); status.Code(err) != codes.Unimplemented {
		t.Errorf("reflection with authentication on: %v, want UNIMPLEMENTED", err)
	}
	// The right key works on both transports.
	if _, err := pb.NewOrderServiceClient(conn).BatchShowSku(e.bearer("right-key"), &pb.BatchShowSkuRequest{}); err != nil {
		t.Errorf("gRPC with the right key: %v", err)
	}
	if code, res := e.rest(hc, http.MethodGet, "/v1/instances/batch-query?page_no=1&page_size=10", "", "right-key"); code != http.StatusOK {
		t.Errorf("REST with the right key: %d %s", code, res)
	}
}

// operations counts the KooPhone calls the simulator has seen, besides token requests and the readiness probe.
func (e *secureEnv) operations() int64 {
	var n int64
	for op, c := range e.sim.AllCalls() {
		if op != sim.OpIAM && op != "BatchShowSku" {
			n += c
		}
	}
	return n
}

func reflectionList(ctx context.Context, conn *grpc.ClientConn) error {
	st, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return err
	}
	// Send reports io.EOF when the server has already ended the stream; Recv then has the real status.
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
		return err
	}
	_, err = st.Recv()
	_ = st.CloseSend()
	return err
}

// Each RPC needs exactly its KooPhone actions, on both transports: a principal allowed everything but one of them
// is refused with PERMISSION_DENIED (403) naming it, and a principal allowed only the RPC's actions gets past
// authorization (to validation, which an empty request fails).
func TestEachRPCsAction(t *testing.T) {
	rpcs := contractRPCs(t)
	keys := map[string]string{}
	var policy strings.Builder
	policy.WriteString("statements:\n")
	for _, md := range rpcs {
		rule := auth.Rules[fullMethod(md)]
		only := "only-" + string(md.Name())
		keys["key-"+only] = only
		fmt.Fprintf(&policy, "  - {effect: allow, principals: [\"key:%s\"], actions: [%s]}\n", only, strings.Join(rule.Actions, ", "))
		for i, a := range rule.Actions {
			but := fmt.Sprintf("but-%s-%d", md.Name(), i)
			keys["key-"+but] = but
			fmt.Fprintf(&policy, "  - {effect: allow, principals: [\"key:%s\"], actions: [\"koophone:*\"]}\n", but)
			fmt.Fprintf(&policy, "  - {effect: deny, principals: [\"key:%s\"], actions: [%s]}\n", but, a)
		}
	}
	e := newSecureEnv(t, secureOpts{keys: keys, policy: policy.String()})
	conn := e.dial()
	hc := http.DefaultClient
	for _, md := range rpcs {
		rule := auth.Rules[fullMethod(md)]
		method, path, body := restCall(md)
		for i, a := range rule.Actions {
			but := fmt.Sprintf("but-%s-%d", md.Name(), i)
			err := callGRPC(e.bearer("key-"+but), conn, md, nil)
			info := denial(err)
			if status.Code(err) != codes.PermissionDenied || info == nil || info.GetMetadata()["action"] != a || info.GetMetadata()["principal"] != auth.KeyPrefix+but {
				t.Errorf("gRPC %s without %s: %v %v", md.Name(), a, err, info)
			}
			code, res := e.rest(hc, method, path, body, "key-"+but)
			reason, meta := restErrorInfo(t, res)
			if code != http.StatusForbidden || reason != auth.ReasonActionDenied || meta["action"] != a || meta["principal"] != auth.KeyPrefix+but {
				t.Errorf("REST %s %s without %s: %d %s", method, path, a, code, res)
			}
		}
		only := "key-only-" + string(md.Name())
		if err := callGRPC(e.bearer(only), conn, md, nil); err != nil && status.Code(err) != codes.InvalidArgument {
			t.Errorf("gRPC %s with only its actions %v: %v, want success or INVALID_ARGUMENT from validation", md.Name(), rule.Actions, err)
		}
		if code, res := e.rest(hc, method, path, body, only); code == http.StatusForbidden || code == http.StatusUnauthorized {
			t.Errorf("REST %s %s with only its actions: %d %s", method, path, code, res)
		}
	}
}

// OpenSession with assign also needs instanceAssign; without assign it does not.
func TestOpenSessionAssignNeedsAssign(t *testing.T) {
	e := newSecureEnv(t, secureOpts{
		keys: map[string]string{"k": "streamer"},
		policy: `statements:
  - effect: allow
    principals: ["key:streamer"]
    actions: [koophone:cloudphoneResource:instancePrepare, koophone:cloudphoneResource:getInstancePrepareProgress,
              koophone:cloudphoneResource:executeInstanceAuthToken]
`})
	phone := e.sim.InstanceIDs()[0]
	st, err := pb.NewInstanceServiceClient(e.dial()).OpenSession(e.bearer("k"), &pb.OpenSessionRequest{UserId: "u1", InstanceId: phone, Assign: true})
	if err == nil {
		_, err = st.Recv()
	}
	if info := denial(err); info == nil || info.GetMetadata()["action"] != auth.ActionAssign {
		t.Errorf("OpenSession with assign: %v", err)
	}
	code, res := e.rest(http.DefaultClient, http.MethodPost, "/v1/instances/"+phone+"/open-session", `{"user_id":"u1","assign":true}`, "k")
	if reason, meta := restErrorInfo(t, res); reason != auth.ReasonActionDenied || meta["action"] != auth.ActionAssign {
		t.Errorf("REST OpenSession with assign: %d %s", code, res)
	}
	st, err = pb.NewInstanceServiceClient(e.dial()).OpenSession(e.bearer("k"), &pb.OpenSessionRequest{UserId: "u1", InstanceId: phone})
	if err == nil {
		_, err = st.Recv()
	}
	if denial(err) != nil || status.Code(err) == codes.Unauthenticated {
		t.Errorf("OpenSession without assign: %v", err)
	}
	if e.sim.Calls("AssignInstance") != 0 {
		t.Error("a denied assign reached KooPhone")
	}
}
