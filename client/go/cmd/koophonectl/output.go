package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Human output: a message's scalar fields as "name: value" lines (nested ones with dotted names), and each list of
// messages as a table. Enums are shown without their type's prefix (RUNNING, not RUNNING_STATUS_RUNNING); secrets
// (device tokens) are never shown in tables, only in -o json.

const defaultColumns = 8

func (p *printer) unary(res proto.Message) error {
	if p.json {
		b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(res)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.a.stdout, "%s\n", b)
		return err
	}
	m := res.ProtoReflect()
	var lists []protoreflect.FieldDescriptor
	for _, kv := range flatten(m, "") {
		_, _ = fmt.Fprintf(p.a.stdout, "%s: %s\n", kv[0], kv[1])
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.IsList() && fd.Message() != nil && m.Get(fd).List().Len() > 0 {
			lists = append(lists, fd)
		}
	}
	for _, fd := range lists {
		list := m.Get(fd).List()
		rows := make([]protoreflect.Message, list.Len())
		for i := range rows {
			rows[i] = list.Get(i).Message()
		}
		if len(lists) > 1 {
			_, _ = fmt.Fprintf(p.a.stdout, "\n%s:\n", fd.Name())
		}
		if err := p.table(rows); err != nil {
			return err
		}
	}
	return nil
}

// flatten lists the set scalar fields of m (and of its singular nested messages) as name, value pairs; lists of
// scalars are joined with commas; lists of messages are left to tables.
func flatten(m protoreflect.Message, prefix string) [][2]string {
	var out [][2]string
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) || isRawTwin(m.Descriptor(), fd) {
			continue
		}
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			continue
		case fd.IsList() && fd.Message() != nil:
			continue
		case fd.IsList():
			var vals []string
			list := m.Get(fd).List()
			for j := 0; j < list.Len(); j++ {
				vals = append(vals, format(fd, list.Get(j)))
			}
			out = append(out, [2]string{name, strings.Join(vals, ",")})
		case fd.Message() != nil:
			out = append(out, flatten(m.Get(fd).Message(), name+".")...)
		default:
			out = append(out, [2]string{name, format(fd, m.Get(fd))})
		}
	}
	return out
}

// isRawTwin: raw_status beside status (the upstream integer kept for the record) is noise in a table.
func isRawTwin(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor) bool {
	name := string(fd.Name())
	if !strings.HasPrefix(name, "raw_") {
		return false
	}
	twin := md.Fields().ByName(protoreflect.Name(strings.TrimPrefix(name, "raw_")))
	return twin != nil && twin.Enum() != nil
}

func isSecret(fd protoreflect.FieldDescriptor) bool {
	n := string(fd.Name())
	return strings.Contains(n, "token") || strings.Contains(n, "password")
}

func format(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch {
	case isSecret(fd) && fd.Kind() == protoreflect.StringKind:
		return fmt.Sprintf("(%d characters, not shown)", len(v.String()))
	case fd.Enum() != nil:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return shortEnum(fd.Enum(), string(ev.Name()))
		}
		return strconv.Itoa(int(v.Enum()))
	case fd.Kind() == protoreflect.StringKind:
		return strings.ReplaceAll(strings.TrimRight(v.String(), "\n"), "\n", `\n`)
	}
	return fmt.Sprint(v.Interface())
}

// table writes rows of one message type with a column per field that has a value in some row (the first 8 by
// default; --columns chooses).
func (p *printer) table(rows []protoreflect.Message) error {
	if len(rows) == 0 {
		return nil
	}
	md := rows[0].Descriptor()
	var cols []protoreflect.FieldDescriptor
	switch want := p.a.global.columns; want {
	case "", "all":
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			if fd.Message() != nil || fd.IsMap() || isRawTwin(md, fd) {
				continue
			}
			for _, r := range rows {
				if r.Has(fd) {
					cols = append(cols, fd)
					break
				}
			}
		}
		if want == "" && len(cols) > defaultColumns {
			cols = cols[:defaultColumns]
		}
	default:
		for _, name := range strings.Split(want, ",") {
			fd := md.Fields().ByName(protoreflect.Name(strings.TrimSpace(name)))
			if fd == nil {
				return usagef("--columns: %s has no field %q", md.Name(), name)
			}
			cols = append(cols, fd)
		}
	}
	tw := tabwriter.NewWriter(p.a.stdout, 0, 0, 2, ' ', 0)
	var head []string
	for _, fd := range cols {
		head = append(head, strings.ToUpper(string(fd.Name())))
	}
	_, _ = fmt.Fprintln(tw, strings.Join(head, "\t")) // tabwriter buffers: a failed write surfaces at Flush
	for _, r := range rows {
		var cells []string
		for _, fd := range cols {
			v := r.Get(fd)
			switch {
			case fd.IsList():
				var vals []string
				for j := 0; j < v.List().Len(); j++ {
					vals = append(vals, format(fd, v.List().Get(j)))
				}
				cells = append(cells, strings.Join(vals, ","))
			case !r.Has(fd):
				cells = append(cells, "-")
			default:
				cells = append(cells, format(fd, v))
			}
		}
		_, _ = fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// line writes one message of a stream on one line: name=value pairs.
func line(w io.Writer, prefix string, m protoreflect.Message) {
	var parts []string
	for _, kv := range flatten(m, "") {
		parts = append(parts, kv[0]+"="+kv[1])
	}
	_, _ = fmt.Fprintln(w, prefix+strings.Join(parts, " "))
}
