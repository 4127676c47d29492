package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// Every enum a caller sends carries KooPhone's own numbers, so a REST caller (or grpcurl -d) who writes the number
// KooPhone documents means what KooPhone documents. Each case sends the number on both transports and reads what
// reached the simulator.
func TestRequestEnumsCarryKooPhonesNumbers(t *testing.T) {
	e := newEnv(t)
	defer e.close()

	sentImage := func(t *testing.T) (any, bool) {
		t.Helper()
		last, ok := e.sim.Last("CreateInstance")
		if !ok {
			t.Fatal("no CreateInstance reached the simulator")
		}
		var sent map[string]any
		if err := json.Unmarshal(last.Body, &sent); err != nil {
			t.Fatal(err)
		}
		v, ok := sent["customImageType"]
		return v, ok
	}
	withImage := func(json string) string {
		return strings.TrimSuffix(createBody(goodSku, 1), "}") + `,"custom_image_type":` + json + `,"custom_image_id":42}`
	}

	for _, tc := range []struct {
		name   string
		grpc   *pb.CustomImageType // nil: not set
		rest   string              // the JSON value; "" leaves the field out
		want   float64
		absent bool
	}{
		{name: "KooPhone 1, a custom image", grpc: pb.CustomImageType_CUSTOM_IMAGE_TYPE_CUSTOM.Enum(), rest: "1", want: 1},
		{name: "KooPhone 2, a private image", grpc: pb.CustomImageType_CUSTOM_IMAGE_TYPE_PRIVATE.Enum(), rest: "2", want: 2},
		{name: "KooPhone 0, the system image, is sent", grpc: pb.CustomImageType_CUSTOM_IMAGE_TYPE_SYSTEM.Enum(), rest: "0", want: 0},
		{name: "by name", grpc: pb.CustomImageType_CUSTOM_IMAGE_TYPE_CUSTOM.Enum(), rest: `"CUSTOM_IMAGE_TYPE_CUSTOM"`, want: 1},
		{name: "absent is not sent", absent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := createReq(goodSku, 1)
			req.CustomImageType, req.CustomImageId = tc.grpc, 42
			if _, err := e.order.CreateInstance(e.ctx(), req); err != nil {
				t.Fatalf("gRPC: %v", err)
			}
			check := func(transport string) {
				v, ok := sentImage(t)
				switch {
				case tc.absent && ok:
					t.Errorf("%s: customImageType sent as %v, want it left out", transport, v)
				case !tc.absent && (!ok || v != tc.want):
					t.Errorf("%s: customImageType sent as %v (present %v), want %v", transport, v, ok, tc.want)
				}
			}
			check("gRPC")

			body := createBody(goodSku, 1)
			if tc.rest != "" {
				body = withImage(tc.rest)
			}
			if res := e.rest("POST", "/v1/instances/create", body); res.status != 200 {
				t.Fatalf("REST: HTTP %d %s", res.status, res.raw)
			}
			check("REST")
		})
	}

	t.Run("numbers KooPhone does not document are refused", func(t *testing.T) {
		for _, v := range []string{"3", "-1"} {
			res := e.rest("POST", "/v1/instances/create", withImage(v))
			if res.status != 400 || !strings.Contains(res.raw, "custom_image_type") {
				t.Errorf("custom_image_type %s: HTTP %d %s", v, res.status, res.raw)
			}
		}
	})

	// The other enums callers send already carried KooPhone's numbers; these hold them there.
	t.Run("app_type and stream_type as numbers", func(t *testing.T) {
		p := e.phone()
		if res := e.rest("GET", "/v1/instances/"+p+"/app-list?page_no=1&page_size=10&app_type=2", ""); res.status != 200 {
			t.Fatalf("app-list: HTTP %d %s", res.status, res.raw)
		}
		if last, _ := e.sim.Last("ListInstanceApp"); last.Query.Get("app_type") != "2" {
			t.Errorf("app_type 2 sent as %q", last.Query.Get("app_type"))
		}
		e.rest("POST", "/v1/instances/"+p+"/auth?stream_type=1", "")
		if last, _ := e.sim.Last("GetDeviceToken"); last.Query.Get("stream_type") != "1" {
			t.Errorf("stream_type 1 sent as %q", last.Query.Get("stream_type"))
		}
	})
}

// A client built from the contract before custom_image_type was renumbered sends field 10. Dropping it silently
// would order the default image; the gateway refuses any field number the contract does not know, naming it.
func TestUnknownRequestFieldsAreRefused(t *testing.T) {
	e := newEnv(t)
	defer e.close()

	req := createReq(goodSku, 1)
	old := protowire.AppendTag(nil, 10, protowire.VarintType)
	old = protowire.AppendVarint(old, 2) // the old CUSTOM_IMAGE_TYPE_CUSTOM
	req.ProtoReflect().SetUnknown(old)
	req.ChargeParam.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))

	before := e.sim.Calls("CreateInstance")
	_, err := e.order.CreateInstance(e.ctx(), req)
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	fields := map[string]bool{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields[v.GetField()] = true
			}
		}
	}
	if !fields["10"] || !fields["charge_param.99"] {
		t.Errorf("violations name %v, want 10 and charge_param.99 (status %v)", fields, st.Message())
	}
	if n := e.sim.Calls("CreateInstance"); n != before {
		t.Errorf("the request reached KooPhone (%d calls, %d before)", n, before)
	}
}

// The fleet filter's running_status takes the names ListInstances answers with, never a number: KooPhone's numbers
// and the RunningStatus enum's differ by one, and a mistaken number would pick the wrong phones for a reset.
func TestFleetRunningStatusByNameOnly(t *testing.T) {
	e := newEnv(t)
	defer e.close()

	// list runs ListAllInstances over REST (NDJSON) and returns the HTTP status, how many phones matched, the body.
	list := func(filter string) (int, int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(e.ctx(), "POST", e.base+"/v1/fleet/instances/list",
			strings.NewReader(`{"selector":{"filter":{"running_status":`+filter+`}}}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, strings.Count(string(b), `"instance_id"`), string(b)
	}
	code, running, body := list(`"RUNNING_STATUS_RUNNING"`)
	if code != 200 || running == 0 || strings.Contains(body, `"running_status":"RUNNING_STATUS_STOPPED"`) {
		t.Fatalf("RUNNING_STATUS_RUNNING: HTTP %d, %d phones, %.300s", code, running, body)
	}
	// The simulator's phones all run: naming another state matches none.
	if code, n, body := list(`"RUNNING_STATUS_STOPPED"`); code != 200 || n != 0 {
		t.Errorf("RUNNING_STATUS_STOPPED: HTTP %d, %d phones, %.300s", code, n, body)
	}
	for _, bad := range []string{"2", `"RUNNING"`} {
		if code, _, body := list(bad); code != 400 || !strings.Contains(strings.ToLower(strings.ReplaceAll(body, "_", "")), "runningstatus") {
			t.Errorf("running_status %s: HTTP %d %.300s", bad, code, body)
		}
	}

	// A client built before the change sends the old enum as field 5 of the filter: refused, not dropped (which
	// would have widened the selection to every phone).
	f := &pb.FleetFilter{}
	f.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 5, protowire.VarintType), 3))
	s, err := pb.NewFleetServiceClient(e.conn).ListAllInstances(e.ctx(), &pb.ListAllInstancesRequest{Selector: &pb.FleetSelector{Filter: f}})
	if err == nil {
		_, err = s.Recv()
	}
	named := false
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				named = named || (v.GetField() == "selector.filter.5" && v.GetReason() == "field.unknown")
			}
		}
	}
	if status.Code(err) != codes.InvalidArgument || !named {
		t.Errorf("old field 5: %v (named in BadRequest: %v)", err, named)
	}
}
