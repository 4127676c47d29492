package main

import (
	_ "embed"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// contract.binpb is the contract as the stubs were generated from it, with its comments (make client-go writes it;
// make lint fails when it is stale). The generated Go keeps no comments at run time; the help text comes from here.
//
//go:embed contract.binpb
var contractSet []byte

var documented = loadComments()

func loadComments() *protoregistry.Files {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(contractSet, &set); err != nil {
		return nil
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil
	}
	return files
}

// comment is a descriptor's leading comment in the contract, or its full name when there is none.
func comment(d protoreflect.Descriptor) string {
	if documented != nil {
		if dd, err := documented.FindDescriptorByName(d.FullName()); err == nil {
			var lines []string
			for _, l := range strings.Split(dd.ParentFile().SourceLocations().ByDescriptor(dd).LeadingComments, "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "buf:lint:") {
					lines = append(lines, l)
				}
			}
			if len(lines) > 0 {
				return strings.Join(lines, "\n")
			}
		}
	}
	return string(d.FullName())
}
