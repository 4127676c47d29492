package rest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// The mirror's marshaler as internal/server builds it.
func benchBase() runtime.Marshaler {
	return &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// BenchmarkBodyDecode is a BatchQueryStatus body of 10 ids, decoded through JSONPb.Unmarshal (any marshaler) and
// straight by protojson (grpc-gateway's JSONPb, the mirror's).
func BenchmarkBodyDecode(b *testing.B) {
	ids := make([]string, 10)
	for i := range ids {
		ids[i] = fmt.Sprintf("phone-%08d", i)
	}
	body := `{"instance_ids":["` + strings.Join(ids, `","`) + `"]}`
	base := benchBase()
	for _, c := range []struct {
		name string
		pb   *runtime.JSONPb
	}{{"JSONPb", nil}, {"direct", jsonPB(base)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := newBodyDecoder(base, c.pb, strings.NewReader(body)).Decode(&pb.BatchQueryStatusRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMarshal is a BatchQueryStatus answer of 10 phones, marshalled by JSONPb and straight by protojson.
func BenchmarkMarshal(b *testing.B) {
	res := &pb.BatchQueryStatusResponse{}
	for i := range 10 {
		res.StatusResults = append(res.StatusResults, &pb.StatusResult{InstanceId: fmt.Sprintf("phone-%08d", i), RawStatus: 2})
	}
	base := benchBase()
	want, err := base.Marshal(res)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pb   *runtime.JSONPb
	}{{"JSONPb", nil}, {"direct", jsonPB(base)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := marshal(base, c.pb, res)
				if err != nil || !bytes.Equal(got, want) {
					b.Fatalf("%s %v", got, err)
				}
			}
		})
	}
}

// BenchmarkRouteMiddlewares is the mirror's own middlewares (streams, then query refusal) on a unary route of
// grpc-gateway's mux, the handler doing nothing.
func BenchmarkRouteMiddlewares(b *testing.B) {
	mux := runtime.NewServeMux(Options(benchBase()))
	if err := mux.HandlePath(http.MethodPost, "/v1/instances/batch-query-status", func(http.ResponseWriter, *http.Request, map[string]string) {}); err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/instances/batch-query-status", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		mux.ServeHTTP(w, req)
	}
}
