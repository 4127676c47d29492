package koophone

import (
	"encoding/json"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

// The retry policy for the RPCs that only read (idempotency_level NO_SIDE_EFFECTS or IDEMPOTENT in the contract):
// up to 3 attempts on UNAVAILABLE or RESOURCE_EXHAUSTED, with backoff, and a throttle that stops retrying when most
// calls fail. Writes are never retried by the client: a repeat could order, bill or wipe twice (use a request_id
// and check the state instead). The server repository keeps the same config in docs/service-config.json for other
// languages; a test holds the two equal.
var serviceConfig = buildServiceConfig()

// ServiceConfig returns the gRPC service config (JSON) that Dial applies by default.
func ServiceConfig() string { return serviceConfig }

// RetrySafe returns the full method names ("/koophone.v1.InstanceService/GetTask") that the contract marks safe to
// repeat, sorted.
func RetrySafe() []string {
	var out []string
	eachMethod(func(s protoreflect.ServiceDescriptor, m protoreflect.MethodDescriptor) {
		if retrySafe(m) {
			out = append(out, "/"+string(s.FullName())+"/"+string(m.Name()))
		}
	})
	sort.Strings(out)
	return out
}

// IsWrite reports whether a method changes something (it is not marked NO_SIDE_EFFECTS or IDEMPOTENT): a call
// that deserves a request_id and is never retried blindly. fullMethod is "/package.Service/Method".
func IsWrite(fullMethod string) bool {
	name := protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(fullMethod, "/"), "/", "."))
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return true // unknown: assume the worst
	}
	m, ok := d.(protoreflect.MethodDescriptor)
	return !ok || !retrySafe(m)
}

func retrySafe(m protoreflect.MethodDescriptor) bool {
	opts, _ := m.Options().(*descriptorpb.MethodOptions)
	switch opts.GetIdempotencyLevel() {
	case descriptorpb.MethodOptions_NO_SIDE_EFFECTS, descriptorpb.MethodOptions_IDEMPOTENT:
		return true
	}
	return false
}

// eachMethod calls fn for every method of the contract's services, in declaration order.
func eachMethod(fn func(protoreflect.ServiceDescriptor, protoreflect.MethodDescriptor)) {
	_ = pb.File_koophone_v1_instance_service_proto // the stubs register the contract
	protoregistry.GlobalFiles.RangeFilesByPackage("koophone.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			for j := 0; j < s.Methods().Len(); j++ {
				fn(s, s.Methods().Get(j))
			}
		}
		return true
	})
}

type methodName struct {
	Service string `json:"service"`
	Method  string `json:"method"`
}

func buildServiceConfig() string {
	var names []methodName
	for _, full := range RetrySafe() {
		svc, method, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
		names = append(names, methodName{svc, method})
	}
	sc := map[string]any{
		"methodConfig": []any{map[string]any{
			"name": names,
			"retryPolicy": map[string]any{
				"maxAttempts":          3,
				"initialBackoff":       "0.2s",
				"maxBackoff":           "5s",
				"backoffMultiplier":    2,
				"retryableStatusCodes": []string{"UNAVAILABLE", "RESOURCE_EXHAUSTED"},
			},
		}},
		"retryThrottling": map[string]any{"maxTokens": 10, "tokenRatio": 0.1},
	}
	b, err := json.Marshal(sc)
	if err != nil {
		panic(err) // a literal of maps and strings always marshals
	}
	return string(b)
}
