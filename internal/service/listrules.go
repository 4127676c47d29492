package service

import (
	"reflect"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// listRules checks the contract's rules on lists of strings (instance ids, mostly) in plain Go.
//
// Why: protovalidate v1.4 evaluates its standard rules natively only on singular fields; the `items` rules of a
// repeated field go to CEL, one program run per item, which made validation ~12% of the gateway's CPU on a
// 10-phone BatchQueryStatus. Here the same rules, read from the same annotations at start-up, are a loop over
// the strings; protovalidate is told (through its Filter) to leave those fields alone.
//
// Only the verdict comes from here. When a list breaks a rule, Validate runs protovalidate again on the whole
// message without the filter, so every error keeps protovalidate's exact field paths, rule ids and messages.
// A field is taken over only if every rule on it is one this file implements exactly; anything else (CEL,
// `required`, `ignore`, other string rules, predefined extensions) stays with protovalidate.
type listRules struct {
	fields map[protoreflect.FieldDescriptor]*listRule // covered fields of the top-level request messages
	byType map[reflect.Type][]*listRule               // by the request's Go type (a pointer to its struct)
}

// listRule is one covered `repeated string` field.
type listRule struct {
	fd                 protoreflect.FieldDescriptor
	goField            int // index of the []string in the generated struct: protoreflect's List.Get allocates per item
	minItems, maxItems uint64
	hasMax, unique     bool
	item               stringRule
}

// stringRule is the subset of protovalidate's string rules implemented here.
type stringRule struct {
	minLen, maxLen, minBytes, maxBytes uint64
	hasMaxLen, hasMaxBytes             bool
	pattern                            *regexp.Regexp
	// bytes, when set, is what pattern says in the contract's usual shape ^[class]*$ or ^[class]+$ with an ASCII
	// class: every byte in the set (and at least one with plus). It gives pattern's verdict on any string (a byte
	// outside ASCII is outside the class, whatever rune it starts) without the regexp engine, which was most of
	// the cost of checking a list of phone ids.
	bytes *byteClass
}

// byteClass is a set of ASCII bytes, for patterns of the shape ^[class]*$ and ^[class]+$.
type byteClass struct {
	in       [256]bool
	nonEmpty bool // + rather than *
}

// asciiClass returns the byteClass of pattern, or nil when pattern is not of that shape (then the regexp decides).
func asciiClass(pattern string) *byteClass {
	re, err := syntax.Parse(pattern, syntax.Perl) // the flags regexp.Compile uses
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) != 3 ||
		re.Sub[0].Op != syntax.OpBeginText || re.Sub[2].Op != syntax.OpEndText {
		return nil
	}
	rep := re.Sub[1]
	if (rep.Op != syntax.OpStar && rep.Op != syntax.OpPlus) || len(rep.Sub) != 1 {
		return nil
	}
	class := rep.Sub[0]
	c := &byteClass{nonEmpty: rep.Op == syntax.OpPlus}
	switch class.Op {
	case syntax.OpCharClass:
		for i := 0; i+1 < len(class.Rune); i += 2 {
			lo, hi := class.Rune[i], class.Rune[i+1]
			if hi >= utf8.RuneSelf {
				return nil
			}
			for r := lo; r <= hi; r++ {
				c.in[r] = true
			}
		}
	case syntax.OpLiteral:
		if class.Flags&syntax.FoldCase != 0 {
			return nil
		}
		for _, r := range class.Rune {
			if r >= utf8.RuneSelf {
				return nil
			}
			c.in[r] = true
		}
		if len(class.Rune) != 1 {
			return nil
		}
	default:
		return nil
	}
	return c
}

func (c *byteClass) matches(s string) bool {
	if c.nonEmpty && s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !c.in[s[i]] {
			return false
		}
	}
	return true
}

func newListRules(msgs []proto.Message) *listRules {
	lr := &listRules{fields: map[protoreflect.FieldDescriptor]*listRule{}, byType: map[reflect.Type][]*listRule{}}
	// A request type that also appears inside another message would have its fields skipped there too, where this
	// file does not look: such types are not taken over.
	nested := map[protoreflect.FullName]bool{}
	for _, m := range msgs {
		collectNested(m.ProtoReflect().Descriptor(), nested, map[protoreflect.FullName]bool{})
	}
	for _, m := range msgs {
		md := m.ProtoReflect().Descriptor()
		if nested[md.FullName()] {
			continue
		}
		t := reflect.TypeOf(m)
		fields := md.Fields()
		for i := range fields.Len() {
			r := compileListRule(fields.Get(i))
			if r == nil {
				continue
			}
			if r.goField = structField(t, r.fd); r.goField < 0 {
				continue
			}
			lr.fields[r.fd] = r
			lr.byType[t] = append(lr.byType[t], r)
		}
	}
	return lr
}

// structField finds the generated struct field of fd (a []string) from its protobuf tag, or returns -1.
func structField(t reflect.Type, fd protoreflect.FieldDescriptor) int {
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return -1
	}
	st := t.Elem()
	for i := range st.NumField() {
		f := st.Field(i)
		if f.Type == reflect.TypeFor[[]string]() && strings.Contains(f.Tag.Get("protobuf")+",", ",name="+string(fd.Name())+",") {
			return i
		}
	}
	return -1
}

// collectNested marks every message type found in a field of md, at any depth.
func collectNested(md protoreflect.MessageDescriptor, out, seen map[protoreflect.FullName]bool) {
	if seen[md.FullName()] {
		return
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		sub := fd.Message()
		if fd.IsMap() {
			sub = fd.MapValue().Message()
		}
		if sub != nil {
			out[sub.FullName()] = true
			collectNested(sub, out, seen)
		}
	}
}

// onlyFields reports whether m sets no fields but the named ones, and no unknown fields (predefined rules).
func onlyFields(m protoreflect.Message, allowed ...protoreflect.Name) bool {
	if len(m.GetUnknown()) > 0 {
		return false
	}
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		ok = !fd.IsExtension() && contains(allowed, fd.Name())
		return ok
	})
	return ok
}

func contains(names []protoreflect.Name, n protoreflect.Name) bool {
	for _, a := range names {
		if a == n {
			return true
		}
	}
	return false
}

// compileListRule returns the rule of a `repeated string` field whose annotations this file fully implements.
func compileListRule(fd protoreflect.FieldDescriptor) *listRule {
	if !fd.IsList() || fd.Kind() != protoreflect.StringKind {
		return nil
	}
	rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
	if rules == nil || !onlyFields(rules.ProtoReflect(), "repeated") {
		return nil
	}
	rep := rules.GetRepeated()
	if !onlyFields(rep.ProtoReflect(), "min_items", "max_items", "unique", "items") {
		return nil
	}
	r := &listRule{fd: fd, minItems: rep.GetMinItems(), maxItems: rep.GetMaxItems(), hasMax: rep.HasMaxItems(), unique: rep.GetUnique()}
	if items := rep.GetItems(); items != nil {
		if !onlyFields(items.ProtoReflect(), "string") {
			return nil
		}
		s := items.GetString()
		if !onlyFields(s.ProtoReflect(), "min_len", "max_len", "min_bytes", "max_bytes", "pattern") {
			return nil
		}
		r.item = stringRule{minLen: s.GetMinLen(), maxLen: s.GetMaxLen(), hasMaxLen: s.HasMaxLen(),
			minBytes: s.GetMinBytes(), maxBytes: s.GetMaxBytes(), hasMaxBytes: s.HasMaxBytes()}
		if s.HasPattern() {
			re, err := regexp.Compile(s.GetPattern())
			if err != nil {
				return nil // protovalidate reports the broken rule at start-up
			}
			r.item.pattern = re
			r.item.bytes = asciiClass(s.GetPattern())
		}
	}
	return r
}

// filter is the protovalidate Filter that skips the covered fields.
func (lr *listRules) filter() protovalidate.Filter {
	return protovalidate.FilterFunc(func(_ protoreflect.Message, d protoreflect.Descriptor) bool {
		fd, ok := d.(protoreflect.FieldDescriptor)
		return !ok || lr.fields[fd] == nil
	})
}

// covers reports whether m has lists checked here (otherwise the filter would only cost an option per call).
func (lr *listRules) covers(m proto.Message) bool { return len(lr.byType[reflect.TypeOf(m)]) > 0 }

// valid reports whether every covered list of m keeps its rules.
func (lr *listRules) valid(m proto.Message) bool {
	rules := lr.byType[reflect.TypeOf(m)]
	if len(rules) == 0 {
		return true
	}
	v := reflect.ValueOf(m).Elem()
	for _, r := range rules {
		if !r.valid(v.Field(r.goField)) {
			return false
		}
	}
	return true
}

func (r *listRule) valid(l reflect.Value) bool {
	n := uint64(l.Len()) //nolint:gosec // G115: a length is never negative
	if n < r.minItems || (r.hasMax && n > r.maxItems) {
		return false
	}
	var seen map[string]bool
	if r.unique && l.Len() > 16 {
		seen = make(map[string]bool, l.Len())
	}
	for i := range l.Len() {
		s := l.Index(i).String()
		if !r.item.valid(s) {
			return false
		}
		switch {
		case seen != nil:
			if seen[s] {
				return false
			}
			seen[s] = true
		case r.unique:
			for j := range i { // a short list: cheaper than a map
				if l.Index(j).String() == s {
					return false
				}
			}
		}
	}
	return true
}

func (r *stringRule) valid(s string) bool {
	b := uint64(len(s)) //nolint:gosec // G115: a length is never negative
	if b < r.minBytes || (r.hasMaxBytes && b > r.maxBytes) {
		return false
	}
	if r.minLen > 0 || r.hasMaxLen {
		n := uint64(utf8.RuneCountInString(s)) //nolint:gosec // G115: a count is never negative
		if n < r.minLen || (r.hasMaxLen && n > r.maxLen) {
			return false
		}
	}
	if r.bytes != nil {
		return r.bytes.matches(s)
	}
	return r.pattern == nil || r.pattern.MatchString(s)
}
