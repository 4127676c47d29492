package service

import (
	"regexp"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// The lists of phone ids, on the hot path of nearly every RPC, are checked in Go.
func TestListRulesCoverTheIDLists(t *testing.T) {
	lr := newListRules(requestMessages())
	for _, m := range []proto.Message{&pb.BatchQueryStatusRequest{}, &pb.SyncCommandRequest{}, &pb.AsyncCommandRequest{},
		&pb.BatchResetRequest{}, &pb.DeleteInstanceRequest{}} {
		fd := m.ProtoReflect().Descriptor().Fields().ByName("instance_ids")
		if lr.fields[fd] == nil {
			t.Errorf("%T.instance_ids is left to CEL", m)
		}
	}
}

// agree checks that the Go verdict on m's lists is protovalidate's own verdict on them.
func agree(t *testing.T, pv protovalidate.Validator, lr *listRules, m proto.Message) {
	t.Helper()
	goValid := lr.valid(m)
	listViolation := false
	if err := pv.Validate(m); err != nil {
		ve, ok := err.(*protovalidate.ValidationError)
		if !ok {
			t.Fatalf("%T: %v", m, err)
		}
		for _, v := range ve.Violations {
			field := protovalidate.FieldPathString(v.Proto.GetField())
			name, _, _ := strings.Cut(field, "[")
			if fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name)); fd != nil && lr.fields[fd] != nil {
				listViolation = true
			}
		}
	}
	if goValid == listViolation {
		t.Fatalf("%T %v: Go says valid=%v, protovalidate reports a list violation=%v", m, m, goValid, listViolation)
	}
}

func TestListRulesAgreeWithProtovalidate(t *testing.T) {
	pv, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	lr := newListRules(requestMessages())
	for _, tc := range validationCases() {
		agree(t, pv, lr, tc.msg)
	}
	for _, list := range [][]string{nil, {""}, {"a"}, {"a", "a"}, ids(100), ids(101), {strings.Repeat("a", 32)}, {strings.Repeat("a", 33)},
		{"é" + strings.Repeat("a", 31)}, {"ééééé"}, {"a b"}, {"a/b"}, {"\x00"}} {
		for _, m := range []proto.Message{
			&pb.BatchQueryStatusRequest{InstanceIds: list},
			&pb.InstallAppRequest{InstanceIdList: list},
			&pb.BatchPrepareInstancesRequest{UserId: "u", InstanceIds: list},
		} {
			agree(t, pv, lr, m)
		}
	}
}

// FuzzListRules: on any list of strings, the Go verdict is protovalidate's.
func FuzzListRules(f *testing.F) {
	pv, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	lr := newListRules(requestMessages())
	f.Add("iRJEVP96,XvH39QVW", uint8(2))
	f.Add(",", uint8(0))
	f.Add(strings.Repeat("x", 40), uint8(101))
	f.Fuzz(func(t *testing.T, csv string, repeat uint8) {
		list := strings.Split(csv, ",")
		for range int(repeat) % 8 {
			list = append(list, list...)
		}
		for _, m := range requestMessages() {
			m = proto.Clone(m)
			fields := m.ProtoReflect().Descriptor().Fields()
			for i := range fields.Len() {
				fd := fields.Get(i)
				if lr.fields[fd] == nil {
					continue
				}
				l := m.ProtoReflect().Mutable(fd).List()
				for _, s := range list {
					l.Append(protoreflect.ValueOfString(strings.ToValidUTF8(s, "?")))
				}
			}
			agree(t, pv, lr, m)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	v, err := NewValidator()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		msg  proto.Message
	}{
		{"BatchQueryStatus10", &pb.BatchQueryStatusRequest{InstanceIds: ids(10)}},
		{"BatchQueryStatus100", &pb.BatchQueryStatusRequest{InstanceIds: ids(100)}},
		{"AsyncCommand10", &pb.AsyncCommandRequest{Command: "ls /sdcard", InstanceIds: ids(10)}},
		{"CreateInstance", goodCreate()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Validate(bc.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		// What Validate cost before lists were checked in Go: protovalidate alone, items rules in CEL.
		b.Run(bc.name+"/protovalidate-only", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := v.pv.Validate(bc.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// asciiClass takes only the shapes it implements, and then agrees with the regexp on every string. (?i)[a-z] is not
// ASCII: k and s fold to the Kelvin and long-s signs.
func TestASCIIClass(t *testing.T) {
	for _, c := range []struct {
		pattern string
		taken   bool
	}{
		{"^[A-Za-z0-9_-]*$", true}, {"^[A-Za-z0-9_.@-]*$", true}, {"^[a-z]+$", true}, {"^x*$", true},
		{"^[a-z]{1,3}$", false}, {"[a-z]*", false}, {"^[a-zé]*$", false}, {"^[^a-z]*$", false}, {"(?i)^[a-z]*$", false},
		{"^(?i:k)*$", false}, {"^\\w*$", true}, {"^[a-z]*$|^x$", false}, {"^.*$", false},
	} {
		bc := asciiClass(c.pattern)
		if (bc != nil) != c.taken {
			t.Errorf("%s: taken %v, want %v", c.pattern, bc != nil, c.taken)
			continue
		}
		if bc == nil {
			continue
		}
		re := regexp.MustCompile(c.pattern)
		for _, s := range []string{"", "a", "A", "phone-0001_x", "a.b@c", "é", "a\xffb", "ab\n", "\n", "K", "k", "\u212a", "x", "xx", " "} {
			if got, want := bc.matches(s), re.MatchString(s); got != want {
				t.Errorf("%s on %q: %v, the regexp says %v", c.pattern, s, got, want)
			}
		}
	}
}

func FuzzASCIIClass(f *testing.F) {
	for _, s := range []string{"", "phone-1", "a.b@c", "é", "a\xffb", "\u212a"} {
		f.Add(s)
	}
	patterns := []string{"^[A-Za-z0-9_-]*$", "^[A-Za-z0-9_.@-]*$", "^[A-Za-z0-9_.-]*$", "^[A-Za-z0-9_]*$", "^[a-k]+$"}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range patterns {
			if got, want := asciiClass(p).matches(s), regexp.MustCompile(p).MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, the regexp says %v", p, s, got, want)
			}
		}
	})
}
