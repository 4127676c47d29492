package rest

import (
	"net/url"
	"sort"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// strictQueryParser is grpc-gateway's DefaultQueryParser, except that a parameter naming no field of the request is
// refused (the default ignores it, so a misspelt filter silently returned an unfiltered list) and a value that does
// not parse is reported by parameter name and expected type.
type strictQueryParser struct{}

func (strictQueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the same parameter first every time
	for _, k := range keys {
		if lookupField(msg.ProtoReflect().Descriptor(), k) == nil {
			return queryError(k, "query.unknown_parameter", "no such parameter for this operation")
		}
	}
	var parser runtime.DefaultQueryParser
	if err := parser.Parse(msg, values, filter); err != nil {
		// Find the parameter at fault, one at a time on a scratch copy, to name it without the parser's wording.
		for _, k := range keys {
			scratch := msg.ProtoReflect().New().Interface()
			if parser.Parse(scratch, url.Values{k: values[k]}, filter) != nil {
				f := lookupField(msg.ProtoReflect().Descriptor(), k)
				return queryError(k, "query.type", "must be "+kindName(f))
			}
		}
		return queryError(strings.Join(keys, ","), "query.invalid", "these parameters cannot be combined")
	}
	return nil
}

// lookupField finds the field a query key names: a dotted path of proto or JSON names, map keys in brackets.
func lookupField(md protoreflect.MessageDescriptor, key string) protoreflect.FieldDescriptor {
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i]
	}
	var fd protoreflect.FieldDescriptor
	for i, name := range strings.Split(key, ".") {
		if md == nil {
			return nil
		}
		fd = md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			fd = md.Fields().ByJSONName(name)
		}
		if fd == nil {
			return nil
		}
		if i < len(strings.Split(key, "."))-1 {
			md = fd.Message()
		}
	}
	return fd
}

func kindName(fd protoreflect.FieldDescriptor) string {
	if fd == nil {
		return "a valid value"
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.EnumKind:
		return "one of the names of " + string(fd.Enum().Name())
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.BytesKind:
		return "base64"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return "a valid " + string(fd.Message().Name())
	}
	return "an integer (" + fd.Kind().String() + ")"
}
