package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// ndjsonMarshaler is the mirror's JSON for single answers and newline-delimited JSON for streams: grpc-gateway asks
// a marshaler for StreamContentType before the first stream message, and writes Delimiter after each.
type ndjsonMarshaler struct {
	runtime.Marshaler
	pb *runtime.JSONPb // base's JSON options when base is grpc-gateway's JSONPb (perhaps in an HTTPBodyMarshaler), or nil
}

func (m *ndjsonMarshaler) StreamContentType(any) string { return MIMENDJSON }
func (m *ndjsonMarshaler) Delimiter() []byte            { return []byte("\n") }

// Marshal wraps a bare google.rpc.Status (what grpc-gateway's error handlers marshal) as {"error": status}, the
// one error shape of every REST answer and stream.
func (m *ndjsonMarshaler) Marshal(v any) ([]byte, error) { return marshal(m.Marshaler, m.pb, v) }

func (m *ndjsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return newBodyDecoder(m.Marshaler, m.pb, r)
}

// jsonPB finds grpc-gateway's JSONPb in base, so messages can go straight to protojson with its options.
func jsonPB(base runtime.Marshaler) *runtime.JSONPb {
	if hb, ok := base.(*runtime.HTTPBodyMarshaler); ok {
		base = hb.Marshaler
	}
	pb, _ := base.(*runtime.JSONPb)
	return pb
}

// marshal is base's Marshal of v (a bare status wrapped as {"error": status}), with a message other than an
// HttpBody marshalled by protojson with pb's options directly: the same bytes JSONPb makes, without JSONPb's copy
// of them through a bytes.Buffer (a second allocation of the whole answer on every call).
func marshal(base runtime.Marshaler, pb *runtime.JSONPb, v any) ([]byte, error) {
	v = wrapStatus(v)
	if pb != nil {
		if msg, ok := v.(proto.Message); ok {
			if _, body := msg.(*httpbody.HttpBody); !body {
				// Room for the answer up front: protojson otherwise grows its buffer from nothing, doubling each time
				// (~6 allocations for 1 KB). The mirror's JSON (field names, unpopulated fields) runs ~4.5 × the
				// binary size; a longer answer still grows from there.
				return pb.MarshalAppend(make([]byte, 0, 5*proto.Size(msg)+64), msg) // protojson.MarshalOptions', promoted
			}
		}
	}
	return base.Marshal(v)
}

// sseMarshaler is chosen when the request says Accept: text/event-stream. Single answers stay plain JSON; a stream's
// objects are JSON too, framed as Server-Sent Events by the stream's writer (sse.go), which knows each stream's ids
// and how it ended.
type sseMarshaler struct {
	runtime.Marshaler
	pb *runtime.JSONPb // as ndjsonMarshaler's
}

func (m *sseMarshaler) StreamContentType(any) string { return MIMESSE }

// Delimiter is empty: the stream's writer ends each event itself.
func (m *sseMarshaler) Delimiter() []byte { return nil }

func (m *sseMarshaler) ContentType(v any) string {
	if _, ok := streamChunk(v); ok {
		return MIMESSE
	}
	return m.Marshaler.ContentType(v)
}

func (m *sseMarshaler) Marshal(v any) ([]byte, error) { return marshal(m.Marshaler, m.pb, v) }

func (m *sseMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return newBodyDecoder(m.Marshaler, m.pb, r)
}

// streamChunk tells whether v is one of grpc-gateway's stream chunks ({"result": …} or {"error": …}) and which.
func streamChunk(v any) (string, bool) {
	switch c := v.(type) {
	case map[string]any:
		if _, ok := c["result"]; ok && len(c) == 1 {
			return "result", true
		}
	case map[string]proto.Message:
		if _, ok := c["error"]; ok && len(c) == 1 {
			return "error", true
		}
	}
	return "", false
}

func wrapStatus(v any) any {
	if st, ok := v.(*status.Status); ok {
		return map[string]proto.Message{"error": st}
	}
	return v
}

// bodyDecoder reads a request body as the mirror's JSON and turns a failure into a fieldError that names the field
// and says what is wrong in plain words, instead of the decoder's Go-flavoured message.
type bodyDecoder struct {
	base runtime.Marshaler
	pb   *runtime.JSONPb // base's JSON options (see jsonPB), or nil
	dec  *json.Decoder
}

func newBodyDecoder(base runtime.Marshaler, pb *runtime.JSONPb, r io.Reader) runtime.Decoder {
	return &bodyDecoder{base: base, pb: pb, dec: json.NewDecoder(r)}
}

func (d *bodyDecoder) Decode(v any) error {
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return err // an empty body: grpc-gateway treats it as an empty request
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return bodyError("", "body.too_large", fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit))
		}
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			// The edge's body deadline (--http-body-timeout) cut the body off: say so, not "ended early".
			return bodyError("", "body.timeout", "the body did not arrive within the time allowed (--http-body-timeout)")
		}
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return bodyError("", "body.syntax", fmt.Sprintf("not valid JSON (at byte %d)", syntax.Offset))
		}
		return bodyError("", "body.syntax", "not valid JSON (the body ended early)")
	}
	var err error
	if msg, ok := v.(proto.Message); ok && d.pb != nil {
		// What JSONPb.Unmarshal does with a message, without its second pass of encoding/json over the body (a new
		// Decoder, and a copy of the body it then hands to protojson): raw is already one whole JSON value.
		err = d.pb.UnmarshalOptions.Unmarshal(raw, msg)
	} else {
		err = d.base.Unmarshal(raw, v)
	}
	if err != nil {
		return describeUnmarshalError(err)
	}
	return nil
}

var (
	unknownFieldRe = regexp.MustCompile(`unknown field "([^"]+)"`)
	invalidValueRe = regexp.MustCompile(`invalid value for (\w+) (?:field|type:?) ?(\S*?):? `)
	linePosRe      = regexp.MustCompile(`\(line \d+:\d+\): ?`)
)

// describeUnmarshalError rewords protojson's errors ("proto: (line 1:45): unknown field \"bogus\"").
func describeUnmarshalError(err error) error {
	msg := err.Error()
	if m := unknownFieldRe.FindStringSubmatch(msg); m != nil {
		return bodyError(m[1], "body.unknown_field", "no such field in this request")
	}
	if m := invalidValueRe.FindStringSubmatch(msg); m != nil {
		return bodyError(m[2], "body.type", "must be a JSON value of type "+m[1])
	}
	msg = strings.TrimPrefix(linePosRe.ReplaceAllString(msg, ""), "proto: ")
	return bodyError("", "body.invalid", msg)
}
