package rest

import (
	"net/url"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// FuzzBodyDecoder: any body either decodes or fails with the mirror's own readable error, never a panic.
func FuzzBodyDecoder(f *testing.F) {
	for _, s := range []string{`{"command":"ls","instance_ids":["a"]}`, `{"bogus":1}`, `{"command":5}`, `{`, `x`, `[]`, `{"instance_ids":[1]}`, ``} {
		f.Add(s)
	}
	base := &runtime.JSONPb{UnmarshalOptions: protojson.UnmarshalOptions{}}
	f.Fuzz(func(t *testing.T, body string) {
		err := newBodyDecoder(base, strings.NewReader(body)).Decode(&pb.SyncCommandRequest{})
		if err != nil && err.Error() != "EOF" {
			if !fieldErrorRe.MatchString(err.Error()) {
				t.Fatalf("unreadable error %q", err)
			}
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
