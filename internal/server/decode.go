package server

import (
	"bytes"
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// grpc-go answers a request message that does not parse with INTERNAL, and sends that status itself before any
// handler or interceptor can change it. It is the caller's error, so the server's codec does not fail: it leaves
// the message empty and marked (an unknown field no sender can produce by accident), and validation answers
// INVALID_ARGUMENT and logs it, on unary and streaming RPCs alike.

// malformedMark is the marker: field 536870911 (the largest field number), bytes "malformed".
var malformedMark = protowire.AppendBytes(protowire.AppendTag(nil, protowire.MaxValidNumber, protowire.BytesType), []byte("malformed"))

// markingCodec is the proto codec with Unmarshal marking instead of failing.
type markingCodec struct{ encoding.CodecV2 }

func newMarkingCodec() grpc.ServerOption {
	return grpc.ForceServerCodecV2(markingCodec{encoding.GetCodecV2("proto")})
}

func (c markingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if err == nil || !ok {
		return err
	}
	proto.Reset(m)
	m.ProtoReflect().SetUnknown(malformedMark)
	return nil
}

// malformed reports a message the codec could not parse, and logs it.
func malformed(ctx context.Context, log *slog.Logger, m proto.Message) error {
	if !bytes.Equal(m.ProtoReflect().GetUnknown(), malformedMark) {
		return nil
	}
	method, _ := grpc.Method(ctx)
	log.WarnContext(ctx, "malformed request message", "grpc.method", method)
	return status.Error(codes.InvalidArgument, "the request message is not valid protobuf for "+method)
}
