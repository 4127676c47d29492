package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "google.golang.org/genproto/googleapis/rpc/code"
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// contractSet is what `buf build --as-file-descriptor-set` gives: the contract's files with every import, dependencies
// first. Built here from the descriptors compiled into the Go packages (which keep the options).
func contractSet(t *testing.T) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := 0; i < fd.Imports().Len(); i++ {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	protoregistry.GlobalFiles.RangeFilesByPackage(pb.File_koophone_v1_errors_proto.Package(), func(fd protoreflect.FileDescriptor) bool {
		add(fd)
		return true
	})
	for _, name := range []string{"google/rpc/status.proto", "google/rpc/error_details.proto", "google/rpc/code.proto"} {
		fd, err := protoregistry.GlobalFiles.FindFileByPath(name)
		if err != nil {
			t.Fatal(err)
		}
		add(fd)
	}
	return set
}

func TestStripLeavesASelfContainedOptionFreeContract(t *testing.T) {
	in := contractSet(t)
	hadValidate := false
	for _, f := range in.GetFile() {
		hadValidate = hadValidate || f.GetName() == "buf/validate/validate.proto"
	}
	if !hadValidate {
		t.Fatal("the input does not import buf/validate: nothing to strip")
	}
	b, _ := proto.Marshal(in)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.binpb"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(filepath.Join(dir, "in.binpb"), filepath.Join(dir, "out.binpb")); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "out.binpb"))
	var out descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range out.GetFile() {
		names[f.GetName()] = true
		if strings.HasPrefix(f.GetName(), "buf/") || strings.HasPrefix(f.GetName(), "google/api/") ||
			strings.HasPrefix(f.GetName(), "protoc-gen-openapiv2/") || f.GetName() == "google/protobuf/descriptor.proto" {
			t.Errorf("%s is still in the set", f.GetName())
		}
	}
	for _, want := range []string{"koophone/v1/instance_service.proto", "koophone/v1/errors.proto", "google/rpc/status.proto",
		"google/rpc/error_details.proto", "google/rpc/code.proto", "google/protobuf/any.proto"} {
		if !names[want] {
			t.Errorf("%s is missing", want)
		}
	}
	// Self-contained and valid: the set builds into a registry, and no option carries an extension.
	files, err := protodesc.NewFiles(&out)
	if err != nil {
		t.Fatalf("the stripped set does not resolve: %v", err)
	}
	sd, err := files.FindDescriptorByName("koophone.v1.InstanceService")
	if err != nil {
		t.Fatal(err)
	}
	m := sd.(protoreflect.ServiceDescriptor).Methods().ByName("ListInstances")
	if lvl := m.Options().(*descriptorpb.MethodOptions).GetIdempotencyLevel(); lvl != descriptorpb.MethodOptions_NO_SIDE_EFFECTS {
		t.Errorf("ListInstances idempotency_level %v: descriptor.proto's own options must stay", lvl)
	}
	for _, f := range out.GetFile() {
		if !strings.HasPrefix(f.GetName(), "koophone/") {
			continue
		}
		for _, msg := range f.GetMessageType() {
			for _, fd := range msg.GetField() {
				if fd.GetOptions() != nil && len(fd.GetOptions().ProtoReflect().GetUnknown()) > 0 {
					t.Errorf("%s.%s keeps an option", msg.GetName(), fd.GetName())
				}
				hasExt := false
				fd.GetOptions().ProtoReflect().Range(func(x protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
					hasExt = hasExt || x.IsExtension()
					return true
				})
				if hasExt {
					t.Errorf("%s.%s keeps an extension option", msg.GetName(), fd.GetName())
				}
			}
		}
		if f.GetOptions().GetJavaPackage() != "com.koophone.gateway.v1" {
			t.Errorf("%s lost java_package", f.GetName())
		}
	}
}
