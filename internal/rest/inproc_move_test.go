package rest

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

func statusAnswer(n int) *pb.BatchQueryStatusResponse {
	res := &pb.BatchQueryStatusResponse{}
	for i := range n {
		res.StatusResults = append(res.StatusResults, &pb.StatusResult{InstanceId: fmt.Sprintf("phone-%08d", i), RawStatus: int32(i)})
	}
	return res
}

// TestMove: the reply after move equals a reset reply merged from the answer (what a call over a connection
// leaves in it), for lists, maps, oneofs and unknown fields, whatever the reply held before.
func TestMove(t *testing.T) {
	withUnknown := statusAnswer(3)
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 7))
	st, err := structpb.NewStruct(map[string]any{"a": []any{1.0, "x", map[string]any{"b": true}}, "c": nil})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		src, stale proto.Message
	}{
		{"lists of messages", statusAnswer(10), &pb.BatchQueryStatusResponse{}},
		{"empty answer", &pb.BatchQueryStatusResponse{}, &pb.BatchQueryStatusResponse{}},
		{"unknown fields", withUnknown, &pb.BatchQueryStatusResponse{}},
		{"reply not empty", statusAnswer(2), statusAnswer(5)},
		{"maps and oneofs", st, &structpb.Struct{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := proto.Clone(c.stale)
			proto.Reset(want)
			proto.Merge(want, c.src)
			got := c.stale
			move(got, c.src)
			if !proto.Equal(got, want) {
				t.Fatalf("moved %v, want %v", got, want)
			}
			if string(got.ProtoReflect().GetUnknown()) != string(want.ProtoReflect().GetUnknown()) {
				t.Fatalf("unknown fields %x, want %x", got.ProtoReflect().GetUnknown(), want.ProtoReflect().GetUnknown())
			}
		})
	}
}

// BenchmarkAnswerCopy: a 10-phone BatchQueryStatus answer into the caller's reply, deep-copied (proto.Merge, as
// before) and moved.
func BenchmarkAnswerCopy(b *testing.B) {
	src := statusAnswer(10)
	for _, c := range []struct {
		name string
		fn   func(dst, src proto.Message)
	}{{"Merge", proto.Merge}, {"move", move}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.fn(&pb.BatchQueryStatusResponse{}, src)
			}
		})
	}
}
