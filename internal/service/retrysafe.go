package service

import (
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	_ "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1" // registers the contract
)

// RetrySafe lists the RPCs a client may send again on UNAVAILABLE or RESOURCE_EXHAUSTED without asking what
// happened: the contract marks them idempotency_level NO_SIDE_EFFECTS (they only read) or IDEMPOTENT (a repeat
// changes nothing more). Every other RPC changes something (orders and bills phones, runs commands, wipes data);
// retry it only on UNAVAILABLE, which the gateway answers only when nothing was sent, never on UNKNOWN (reason
// OUTCOME_UNKNOWN). It is read off the contract, so a new RPC is classified where it is declared;
// docs/service-config.json, the gRPC service config for clients, lists the same RPCs and a test keeps them equal.
var RetrySafe = retrySafe()

func retrySafe() []string {
	var out []string
	protoregistry.GlobalFiles.RangeFilesByPackage("koophone.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			s := fd.Services().Get(i)
			for j := range s.Methods().Len() {
				m := s.Methods().Get(j)
				opts, _ := m.Options().(*descriptorpb.MethodOptions)
				switch opts.GetIdempotencyLevel() {
				case descriptorpb.MethodOptions_NO_SIDE_EFFECTS, descriptorpb.MethodOptions_IDEMPOTENT:
					out = append(out, "/"+string(s.FullName())+"/"+string(m.Name()))
				}
			}
		}
		return true
	})
	slices.Sort(out)
	return out
}
