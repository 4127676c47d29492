package koophone

import (
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// NewRequestID returns a new request id (a random UUID). Make one per write you intend, and send the same one again
// when you repeat that write: the gateway then answers the first outcome instead of doing it twice (for 24 hours).
func NewRequestID() string { return uuid.NewString() }

// SetRequestID gives a write request a new request_id unless it has one, and returns the request's id. Requests
// without a request_id field (reads) are left alone and "" is returned.
func SetRequestID(req proto.Message) string {
	m := req.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("request_id")
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return ""
	}
	if id := m.Get(fd).String(); id != "" {
		return id
	}
	id := NewRequestID()
	m.Set(fd, protoreflect.ValueOfString(id))
	return id
}
