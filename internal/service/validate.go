package service

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// Validator checks every request before any upstream call. Most rules live in the contract as protovalidate
// annotations (so every language's stubs see them); the few that span several fields or need real parsing live in
// crossFieldRules below, the one hand-written place. Either way a bad request gets INVALID_ARGUMENT with a
// google.rpc.BadRequest holding one violation per bad field.
type Validator struct {
	pv        protovalidate.Validator
	lists     *listRules                     // rules on lists of strings, checked in Go (listrules.go)
	skipLists protovalidate.ValidationOption // protovalidate without those fields
}

// NewValidator compiles the contract's rules for every request message up front, so a broken rule fails at start-up
// rather than on a caller's request.
func NewValidator() (*Validator, error) {
	msgs := requestMessages()
	pv, err := protovalidate.New(protovalidate.WithMessages(msgs...))
	if err != nil {
		return nil, fmt.Errorf("compile validation rules: %w", err)
	}
	lists := newListRules(msgs)
	return &Validator{pv: pv, lists: lists, skipLists: protovalidate.WithFilter(lists.filter())}, nil
}

// Validate returns nil for a good request and an INVALID_ARGUMENT status with a BadRequest otherwise.
func (v *Validator) Validate(msg proto.Message) error {
	var violations []*errdetails.BadRequest_FieldViolation
	var err error
	if v.lists.covers(msg) && v.lists.valid(msg) {
		err = v.pv.Validate(msg, v.skipLists)
	} else {
		// No list to skip, or a bad one: protovalidate checks (and names) everything.
		err = v.pv.Validate(msg)
	}
	if err != nil {
		var ve *protovalidate.ValidationError
		if !errors.As(err, &ve) {
			// A rule that does not compile is our bug, not the caller's.
			return status.Error(codes.Internal, "validation rules failed to evaluate")
		}
		for _, viol := range ve.Violations {
			violations = append(violations, &errdetails.BadRequest_FieldViolation{
				Field:       protovalidate.FieldPathString(viol.Proto.GetField()),
				Description: viol.Proto.GetMessage(),
				Reason:      viol.Proto.GetRuleId(),
			})
		}
	}
	violations = append(violations, crossFieldRules(msg)...)
	if m := msg.ProtoReflect(); hasUnknown(m) {
		violations = unknownFields(m, "", violations)
	}
	if len(violations) == 0 {
		return nil
	}
	st := status.New(codes.InvalidArgument, summarize(violations))
	return withDetails(st, &errdetails.BadRequest{FieldViolations: violations})
}

// summarize makes the status message: the first violation, and how many more there are.
func summarize(vs []*errdetails.BadRequest_FieldViolation) string {
	msg := fmt.Sprintf("invalid request: %s: %s", vs[0].GetField(), vs[0].GetDescription())
	if len(vs) > 1 {
		msg += fmt.Sprintf(" (and %d more violations, see BadRequest details)", len(vs)-1)
	}
	return msg
}

// queryTimeLayout is ListInstances' time format; queryTimeFormat is its shape, as the contract's pattern says.
const queryTimeLayout = "2006-01-02 15:04:05"

var queryTimeFormat = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$`)

// crossFieldRules holds the documented constraints the contract cannot carry field by field: real calendar
// times and their order (ListInstances; KooPhone 5002/5004) and the year-specific period limit (CreateInstance;
// KooPhone 3007, the month limit 1..9 being the field's own rule).
func crossFieldRules(msg proto.Message) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	add := func(field, reason, desc string) {
		out = append(out, &errdetails.BadRequest_FieldViolation{Field: field, Reason: reason, Description: desc})
	}
	switch m := msg.(type) {
	case *pb.ListInstancesRequest:
		start, startOK := parseQueryTime(m.GetQueryStartTime())
		end, endOK := parseQueryTime(m.GetQueryEndTime())
		// The format itself is the contract's pattern rule; this adds only what a pattern cannot see.
		if queryTimeFormat.MatchString(m.GetQueryStartTime()) && !startOK {
			add("query_start_time", "query_time.calendar", "must be a real UTC time formatted YYYY-MM-DD HH:MM:SS")
		}
		if queryTimeFormat.MatchString(m.GetQueryEndTime()) && !endOK {
			add("query_end_time", "query_time.calendar", "must be a real UTC time formatted YYYY-MM-DD HH:MM:SS")
		}
		if startOK && endOK && end.Before(start) {
			add("query_end_time", "query_time.order", "must not be before query_start_time")
		}
	case *pb.CreateInstanceRequest:
		cp := m.GetChargeParam()
		if cp.GetPeriodType() == pb.PeriodType_PERIOD_TYPE_YEAR && (cp.GetPeriodNum() < 1 || cp.GetPeriodNum() > 3) {
			add("charge_param.period_num", "period_num.year_range", "must be 1 to 3 when period_type is PERIOD_TYPE_YEAR")
		}
	}
	return out
}

// parseQueryTime parses a ListInstances time; ok is false for "" and for anything that is not a real time.
func parseQueryTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(queryTimeLayout, s)
	return t, err == nil
}

// hasUnknown reports whether m carries a field number the contract does not know, at any depth. It walks the
// descriptor's message fields without closures or strings, so the common case (none) allocates nothing; unknownFields
// then names them.
func hasUnknown(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil || !m.Has(fd) {
				continue
			}
			found := false
			m.Get(fd).Map().Range(func(_ protoreflect.MapKey, v protoreflect.Value) bool {
				found = hasUnknown(v.Message())
				return !found
			})
			if found {
				return true
			}
		case fd.Message() == nil || !m.Has(fd):
		case fd.IsList():
			for j, l := 0, m.Get(fd).List(); j < l.Len(); j++ {
				if hasUnknown(l.Get(j).Message()) {
					return true
				}
			}
		default:
			if hasUnknown(m.Get(fd).Message()) {
				return true
			}
		}
	}
	return false
}

// unknownFields adds a violation for every field number a request carries that the contract does not know, at any
// depth. A client built from another version of the contract would otherwise have that setting silently dropped:
// a renumbered field (CreateInstanceRequest's old custom_image_type, 10) would order the default image, a filter
// criterion the gateway does not know would widen a fleet reset to more phones. REST already refuses unknown JSON
// fields; this is the same rule for gRPC.
func unknownFields(m protoreflect.Message, prefix string, out []*errdetails.BadRequest_FieldViolation) []*errdetails.BadRequest_FieldViolation {
	for b := m.GetUnknown(); len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if vn := protowire.ConsumeFieldValue(num, typ, b); vn >= 0 {
			b = b[vn:]
		} else {
			b = nil
		}
		out = append(out, &errdetails.BadRequest_FieldViolation{
			Field:       fmt.Sprintf("%s%d", prefix, num),
			Reason:      "field.unknown",
			Description: fmt.Sprintf("field number %d is not in this contract (%s); build the client from the current contract", num, m.Descriptor().FullName()),
		})
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					out = unknownFields(mv.Message(), fmt.Sprintf("%s%s[%v].", prefix, fd.Name(), k.Interface()), out)
					return true
				})
			}
		case fd.Message() == nil:
		case fd.IsList():
			for i, l := 0, v.List(); i < l.Len(); i++ {
				out = unknownFields(l.Get(i).Message(), fmt.Sprintf("%s%s[%d].", prefix, fd.Name(), i), out)
			}
		default:
			out = unknownFields(v.Message(), prefix+string(fd.Name())+".", out)
		}
		return true
	})
	return out
}
