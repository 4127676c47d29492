package service

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// Bindings has exactly one row per service of the contract, and checkBindings says which row is missing.
func TestBindingsCoverTheContract(t *testing.T) {
	s := &Services{}
	bs := s.Bindings()
	if err := checkBindings(bs); err != nil {
		t.Fatal(err)
	}
	if err := checkBindings(bs[1:]); err == nil || !strings.Contains(err.Error(), bs[0].Desc.ServiceName) {
		t.Fatalf("a missing row: %v, want an error naming %s", err, bs[0].Desc.ServiceName)
	}
	for _, b := range bs {
		if b.REST == nil {
			t.Errorf("%s has no REST registration", b.Desc.ServiceName)
		}
	}
}

// Validation knows the request of every RPC of the contract.
func TestRequestMessagesAreTheContracts(t *testing.T) {
	have := map[string]bool{}
	for _, m := range requestMessages() {
		have[string(proto.MessageName(m))] = true
	}
	for _, sd := range Contract() {
		for i := range sd.Methods().Len() {
			if in := sd.Methods().Get(i).Input().FullName(); !have[string(in)] {
				t.Errorf("%s: its request %s is not validated", sd.Methods().Get(i).FullName(), in)
			}
		}
	}
	if got := ServiceNames(); len(got) < 4 || got[0] != "koophone.v1.AppService" {
		t.Errorf("service names %v", got)
	}
}
