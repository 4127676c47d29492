package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldFlags turns a request's fields into flags: scalars, enums (by name) and lists of them, nested messages with
// dotted names (--selector.filter.pool-name) up to a few levels deep. What flags cannot express (lists of
// messages, maps) goes in the JSON body (-d).
type fieldFlags struct {
	fields    []fieldFlag
	shortcuts []shortcut
}

type fieldFlag struct {
	flag string
	path []protoreflect.FieldDescriptor
}

// shortcut is a convenience flag for a field many requests share under different paths.
type shortcut struct {
	flag  string
	value *string
	all   *bool
	path  []protoreflect.FieldDescriptor
}

const maxDepth = 3

func (f *fieldFlags) register(cmd *cobra.Command, md protoreflect.MessageDescriptor) {
	f.add(cmd, md, nil, "")
	// --ids and --all: the phones to act on, whether the request takes instance_ids or a fleet selector.
	for _, path := range [][]string{{"instance_ids"}, {"selector", "instance_ids"}} {
		if p := resolve(md, path); p != nil {
			s := shortcut{flag: "ids", value: new(string), path: p}
			cmd.Flags().StringVar(s.value, "ids", "", "the phones (comma-separated ids): sets "+strings.Join(path, "."))
			f.shortcuts = append(f.shortcuts, s)
			break
		}
	}
	if p := resolve(md, []string{"selector", "filter", "all"}); p != nil {
		s := shortcut{flag: "all", all: new(bool), path: p}
		cmd.Flags().BoolVar(s.all, "all", false, "every phone of the tenant: sets selector.filter.all")
		f.shortcuts = append(f.shortcuts, s)
	}
}

func resolve(md protoreflect.MessageDescriptor, names []string) []protoreflect.FieldDescriptor {
	var path []protoreflect.FieldDescriptor
	for i, n := range names {
		fd := md.Fields().ByName(protoreflect.Name(n))
		if fd == nil {
			return nil
		}
		path = append(path, fd)
		if i < len(names)-1 {
			if fd.Message() == nil || fd.IsList() {
				return nil
			}
			md = fd.Message()
		}
	}
	return path
}

func (f *fieldFlags) add(cmd *cobra.Command, md protoreflect.MessageDescriptor, parent []protoreflect.FieldDescriptor, prefix string) {
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		name := prefix + kebab(string(fd.Name()))
		path := append(append([]protoreflect.FieldDescriptor{}, parent...), fd)
		if fd.IsMap() {
			continue
		}
		if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
			if !fd.IsList() && len(path) < maxDepth && !strings.HasPrefix(string(fd.Message().FullName()), "google.") {
				f.add(cmd, fd.Message(), path, name+".")
			}
			continue
		}
		if fd.Kind() == protoreflect.BytesKind {
			continue
		}
		usage := kindName(fd)
		switch {
		case fd.Kind() == protoreflect.BoolKind && !fd.IsList():
			cmd.Flags().Bool(name, false, "")
		case fd.IsList():
			cmd.Flags().StringSlice(name, nil, "")
			usage = "list of " + usage + " (comma-separated, or the flag repeated)"
		default:
			cmd.Flags().String(name, "", "")
		}
		cmd.Flags().Lookup(name).Usage = firstLine(fieldComment(fd)) + " (" + usage + ")"
		if fd.Enum() != nil {
			vals := enumNames(fd.Enum())
			_ = cmd.RegisterFlagCompletionFunc(name, fixedCompletion(vals...))
		}
		f.fields = append(f.fields, fieldFlag{flag: name, path: path})
	}
}

// fieldComment is the field's comment in the contract, else its name.
func fieldComment(fd protoreflect.FieldDescriptor) string {
	if c := comment(fd); c != string(fd.FullName()) {
		return c
	}
	return string(fd.Name())
}

func fieldPath(path []protoreflect.FieldDescriptor) []string {
	var out []string
	for _, fd := range path {
		out = append(out, string(fd.Name()))
	}
	return out
}

func kindName(fd protoreflect.FieldDescriptor) string {
	if fd.Enum() != nil {
		return "one of " + strings.Join(enumNames(fd.Enum()), ", ")
	}
	return fd.Kind().String()
}

// enumNames are an enum's values without the type's prefix and without *_UNSPECIFIED: RUNNING_STATUS_RUNNING is
// offered as RUNNING (the full name is accepted too).
func enumNames(ed protoreflect.EnumDescriptor) []string {
	var out []string
	for i := 0; i < ed.Values().Len(); i++ {
		if v := ed.Values().Get(i); v.Number() != 0 {
			out = append(out, shortEnum(ed, string(v.Name())))
		}
	}
	return out
}

func shortEnum(ed protoreflect.EnumDescriptor, name string) string {
	prefix := strings.ToUpper(kebab(string(ed.Name())))
	prefix = strings.ReplaceAll(prefix, "-", "_") + "_"
	if s := strings.TrimPrefix(name, prefix); s != "" {
		return s
	}
	return name
}

// apply sets the fields of every flag that was given (flags not given leave the body's values alone).
func (f *fieldFlags) apply(m protoreflect.Message, fs *pflag.FlagSet) error {
	for _, s := range f.shortcuts {
		switch {
		case s.all != nil && *s.all:
			set(m, s.path, protoreflect.ValueOfBool(true))
		case s.value != nil && *s.value != "":
			list := mutableList(m, s.path)
			for _, id := range strings.Split(*s.value, ",") {
				if id = strings.TrimSpace(id); id != "" {
					list.Append(protoreflect.ValueOfString(id))
				}
			}
		}
	}
	for _, ff := range f.fields {
		if !fs.Changed(ff.flag) {
			continue
		}
		fd := ff.path[len(ff.path)-1]
		if fd.IsList() {
			vals, _ := fs.GetStringSlice(ff.flag)
			list := mutableList(m, ff.path)
			for _, s := range vals {
				v, err := parseScalar(fd, s)
				if err != nil {
					return usagef("--%s: %v", ff.flag, err)
				}
				list.Append(v)
			}
			continue
		}
		s := fs.Lookup(ff.flag).Value.String()
		v, err := parseScalar(fd, s)
		if err != nil {
			return usagef("--%s: %v", ff.flag, err)
		}
		set(m, ff.path, v)
	}
	return nil
}

// mutableList returns the list at path, creating the messages on the way.
func mutableList(m protoreflect.Message, path []protoreflect.FieldDescriptor) protoreflect.List {
	for _, fd := range path[:len(path)-1] {
		m = m.Mutable(fd).Message()
	}
	return m.Mutable(path[len(path)-1]).List()
}

func set(m protoreflect.Message, path []protoreflect.FieldDescriptor, v protoreflect.Value) {
	for _, fd := range path[:len(path)-1] {
		m = m.Mutable(fd).Message()
	}
	m.Set(path[len(path)-1], v)
}

func parseScalar(fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		return protoreflect.ValueOfBool(b), err
	case protoreflect.EnumKind:
		ed := fd.Enum()
		up := strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
		for _, name := range []string{up, strings.ToUpper(strings.ReplaceAll(kebab(string(ed.Name())), "-", "_")) + "_" + up} {
			if v := ed.Values().ByName(protoreflect.Name(name)); v != nil {
				return protoreflect.ValueOfEnum(v.Number()), nil
			}
		}
		if n, err := strconv.ParseInt(s, 10, 32); err == nil {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil
		}
		return protoreflect.Value{}, fmt.Errorf("%q is not one of %s", s, strings.Join(enumNames(ed), ", "))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		return protoreflect.ValueOfInt32(int32(n)), err
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		return protoreflect.ValueOfInt64(n), err
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(s, 10, 32)
		return protoreflect.ValueOfUint32(uint32(n)), err
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(s, 10, 64)
		return protoreflect.ValueOfUint64(n), err
	case protoreflect.FloatKind:
		n, err := strconv.ParseFloat(s, 32)
		return protoreflect.ValueOfFloat32(float32(n)), err
	case protoreflect.DoubleKind:
		n, err := strconv.ParseFloat(s, 64)
		return protoreflect.ValueOfFloat64(n), err
	}
	return protoreflect.Value{}, fmt.Errorf("%s fields cannot be set by flag: use -d", fd.Kind())
}
