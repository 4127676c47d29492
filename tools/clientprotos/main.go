// Command clientprotos prepares the contract for client code generators in other languages: it reads the
// FileDescriptorSet that `buf build` writes, strips every custom option (protovalidate rules, google.api.http
// bindings, OpenAPI annotations) from the koophone.v1 files together with the imports that only those options
// needed, and writes a self-contained FileDescriptorSet with the koophone.v1 files, google/rpc (status, error
// details, codes: what the gateway's errors carry) and the well-known types they use.
//
// Why strip: the rules are enforced by the gateway and documented in the comments, which are kept; a client only
// needs the messages and services. Without the options, generated TypeScript and Python import nothing but their
// protobuf runtime and each other.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	in := flag.String("in", "", "FileDescriptorSet from `buf build --as-file-descriptor-set` (with imports and source info)")
	out := flag.String("out", "", "where to write the stripped FileDescriptorSet")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "clientprotos:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	raw, err := os.ReadFile(in) //nolint:gosec // G304: the descriptor set the build names; reading it is the point
	if err != nil {
		return err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return fmt.Errorf("read %s: %w", in, err)
	}
	stripped, err := strip(&set)
	if err != nil {
		return err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(stripped)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644) //nolint:gosec // G306: a committed build output, readable like the source
}

// roots are the files a client gets; everything they still import after stripping comes along.
func isRoot(name string) bool {
	return strings.HasPrefix(name, "koophone/") || strings.HasPrefix(name, "google/rpc/")
}

func strip(set *descriptorpb.FileDescriptorSet) (*descriptorpb.FileDescriptorSet, error) {
	byName := map[string]*descriptorpb.FileDescriptorProto{}
	for _, f := range set.GetFile() {
		byName[f.GetName()] = f
	}
	for _, name := range []string{"google/rpc/status.proto", "google/rpc/error_details.proto", "google/rpc/code.proto"} {
		if byName[name] == nil {
			return nil, fmt.Errorf("%s is not in the input: import it from the contract or add it to the build", name)
		}
	}
	index := indexTypes(set.GetFile())
	for _, f := range set.GetFile() {
		if strings.HasPrefix(f.GetName(), "koophone/") {
			stripFile(f, index)
		}
	}
	// Keep the roots and what they import, in the input's order (dependencies first, as buf writes them).
	keep := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		if keep[name] {
			return
		}
		keep[name] = true
		for _, dep := range byName[name].GetDependency() {
			visit(dep)
		}
	}
	for _, f := range set.GetFile() {
		if isRoot(f.GetName()) {
			visit(f.GetName())
		}
	}
	outSet := &descriptorpb.FileDescriptorSet{}
	for _, f := range set.GetFile() {
		if keep[f.GetName()] {
			outSet.File = append(outSet.File, f)
		}
	}
	return outSet, nil
}

// stripFile removes every extension option and the imports no longer used by any type reference.
func stripFile(f *descriptorpb.FileDescriptorProto, index map[string]string) {
	clearExtensions(f.GetOptions())
	for _, s := range f.GetService() {
		clearExtensions(s.GetOptions())
		for _, m := range s.GetMethod() {
			clearExtensions(m.GetOptions())
		}
	}
	for _, e := range f.GetEnumType() {
		stripEnum(e)
	}
	for _, m := range f.GetMessageType() {
		stripMessage(m)
	}
	used := map[string]bool{}
	collectTypeRefs(f, index, used)
	var deps []string
	for _, d := range f.GetDependency() {
		if used[d] {
			deps = append(deps, d)
		}
	}
	f.Dependency = deps
	f.PublicDependency, f.WeakDependency = nil, nil
}

func stripMessage(m *descriptorpb.DescriptorProto) {
	clearExtensions(m.GetOptions())
	for _, fd := range m.GetField() {
		clearExtensions(fd.GetOptions())
	}
	for _, o := range m.GetOneofDecl() {
		clearExtensions(o.GetOptions())
	}
	for _, e := range m.GetEnumType() {
		stripEnum(e)
	}
	for _, n := range m.GetNestedType() {
		stripMessage(n)
	}
}

func stripEnum(e *descriptorpb.EnumDescriptorProto) {
	clearExtensions(e.GetOptions())
	for _, v := range e.GetValue() {
		clearExtensions(v.GetOptions())
	}
}

// clearExtensions drops extension fields (known or not) and unknown fields, keeping descriptor.proto's own options
// (java_package, idempotency_level, deprecated, …).
func clearExtensions(opts proto.Message) {
	if opts == nil || !opts.ProtoReflect().IsValid() {
		return
	}
	m := opts.ProtoReflect()
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.IsExtension() {
			m.Clear(fd)
		}
		return true
	})
	m.SetUnknown(nil)
}

// collectTypeRefs marks the files f needs for its message, enum and service type references.
func collectTypeRefs(f *descriptorpb.FileDescriptorProto, index map[string]string, used map[string]bool) {
	var refs []string
	var walk func(m *descriptorpb.DescriptorProto)
	walk = func(m *descriptorpb.DescriptorProto) {
		for _, fd := range m.GetField() {
			if fd.GetTypeName() != "" {
				refs = append(refs, fd.GetTypeName())
			}
		}
		for _, n := range m.GetNestedType() {
			walk(n)
		}
	}
	for _, m := range f.GetMessageType() {
		walk(m)
	}
	for _, s := range f.GetService() {
		for _, m := range s.GetMethod() {
			refs = append(refs, m.GetInputType(), m.GetOutputType())
		}
	}
	for _, ref := range refs {
		used[index[ref]] = true
	}
}

// indexTypes maps each fully qualified type name (".google.rpc.Status") to the file that declares it.
func indexTypes(files []*descriptorpb.FileDescriptorProto) map[string]string {
	index := map[string]string{}
	for _, f := range files {
		prefix := "." + f.GetPackage()
		var walk func(scope string, m *descriptorpb.DescriptorProto)
		walk = func(scope string, m *descriptorpb.DescriptorProto) {
			name := scope + "." + m.GetName()
			index[name] = f.GetName()
			for _, e := range m.GetEnumType() {
				index[name+"."+e.GetName()] = f.GetName()
			}
			for _, n := range m.GetNestedType() {
				walk(name, n)
			}
		}
		for _, m := range f.GetMessageType() {
			walk(prefix, m)
		}
		for _, e := range f.GetEnumType() {
			index[prefix+"."+e.GetName()] = f.GetName()
		}
	}
	return index
}
