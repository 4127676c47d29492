// Package httprule reads an RPC's google.api.http binding: its HTTP verb and path template. The REST mirror's route
// table and the tests that walk the contract read the same switch. It imports the annotations only, never the
// contract's generated code, so any test may link it (cmd/loadbench links the public client's copy of the contract,
// and two copies of koophone/v1 in one binary panic at start).
package httprule

import (
	"net/http"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Binding returns the HTTP verb and path template of a rule ("" and "" for none or a custom verb). Additional
// bindings are the caller's to walk.
func Binding(rule *annotations.HttpRule) (method, path string) {
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	}
	return "", ""
}

// Rule is md's google.api.http rule, nil without one.
func Rule(md protoreflect.MethodDescriptor) *annotations.HttpRule {
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	return rule
}

// Of returns the HTTP verb and path template of md's binding ("" and "" without one).
func Of(md protoreflect.MethodDescriptor) (method, path string) { return Binding(Rule(md)) }
