package rest

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// FuzzBodyDecoder: any body either decodes or fails with the mirror's own readable error, never a panic; and
// protojson straight from the body (the decoder's path for grpc-gateway's JSONPb) gives the same message or the
// same error as going through JSONPb.Unmarshal (its path for any other marshaler).
func FuzzBodyDecoder(f *testing.F) {
	for _, s := range []string{`{"command":"ls","instance_ids":["a"]}`, `{"bogus":1}`, `{"command":5}`, `{`, `x`, `[]`, `{"instance_ids":[1]}`, ``} {
		f.Add(s)
	}
	base := &runtime.JSONPb{UnmarshalOptions: protojson.UnmarshalOptions{}}
	f.Fuzz(func(t *testing.T, body string) {
		got := &pb.SyncCommandRequest{}
		err := newBodyDecoder(base, jsonPB(base), strings.NewReader(body)).Decode(got)
		if err != nil && err.Error() != "EOF" {
			if !fieldErrorRe.MatchString(err.Error()) {
				t.Fatalf("unreadable error %q", err)
			}
		}
		want := &pb.SyncCommandRequest{}
		wantErr := newBodyDecoder(base, nil, strings.NewReader(body)).Decode(want)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || !proto.Equal(got, want) {
			t.Fatalf("direct: %v %v; through JSONPb: %v %v", got, err, want, wantErr)
		}
	})
}

// FuzzQueryParser: any query either parses or is refused with a readable error naming a parameter.
func FuzzQueryParser(f *testing.F) {
	for _, s := range []string{"page_no=1&page_size=2", "bogus=1", "page_no=x", "pool_scene_tag=CLOUD_APP", "page_no=1&pageNo=2", "a[b]=c", "result.instance_id=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		values, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		err = strictQueryParser{}.Parse(&pb.ListInstancesRequest{}, values, &utilities.DoubleArray{})
		if err != nil && !fieldErrorRe.MatchString(err.Error()) {
			t.Fatalf("unreadable error %q", err)
		}
	})
}
