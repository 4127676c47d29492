package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// rawCodec sends bytes as they are, so a test can send a message that is not valid protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

// A request that is not valid protobuf is the caller's error: INVALID_ARGUMENT, and a log line, on unary and
// streaming RPCs alike.
func TestMalformedProtobufIsInvalidArgument(t *testing.T) {
	e := newFaultEnv(t)
	garbage := []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f} // field 1, length far past the end
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []byte
	err := e.conn.Invoke(ctx, "/koophone.v1.InstanceService/GetTask", garbage, &out, grpc.ForceCodec(rawCodec{}))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unary: %v, want INVALID_ARGUMENT", err)
	}
	s, err := e.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/koophone.v1.InstanceService/WatchTask", grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(garbage); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseSend()
	if err := s.RecvMsg(&out); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("stream: %v, want INVALID_ARGUMENT", err)
	}
	if n := strings.Count(e.log.String(), "malformed request message"); n != 2 {
		t.Fatalf("%d log lines for 2 malformed messages:\n%s", n, e.log.String())
	}
}
