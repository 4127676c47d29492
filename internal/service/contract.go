package service

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// The one list of services is the contract itself: the koophone.v1 services gen/ registers. Health names,
// validation's request messages, the authorization table's coverage test and RetrySafe are read from it; gRPC and
// REST registration take Bindings, whose rows are checked against it. A new service is its proto, its handler and
// its row in Bindings (Go needs the typed registration functions), nothing else.

// Contract returns the services of the koophone.v1 contract, sorted by full name.
func Contract() []protoreflect.ServiceDescriptor {
	var out []protoreflect.ServiceDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage(pb.File_koophone_v1_instance_service_proto.Package(),
		func(fd protoreflect.FileDescriptor) bool {
			for i := range fd.Services().Len() {
				out = append(out, fd.Services().Get(i))
			}
			return true
		})
	slices.SortFunc(out, func(a, b protoreflect.ServiceDescriptor) int {
		return cmp.Compare(a.FullName(), b.FullName())
	})
	return out
}

// ServiceNames are the contract's service names ("koophone.v1.InstanceService"…), as health reports on them.
func ServiceNames() []string {
	var out []string
	for _, sd := range Contract() {
		out = append(out, string(sd.FullName()))
	}
	return out
}

// requestMessages returns an empty request message of every RPC of the contract.
func requestMessages() []proto.Message {
	var out []proto.Message
	seen := map[protoreflect.FullName]bool{}
	for _, sd := range Contract() {
		for i := range sd.Methods().Len() {
			name := sd.Methods().Get(i).Input().FullName()
			if seen[name] {
				continue
			}
			seen[name] = true
			mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
			if err != nil {
				panic(fmt.Sprintf("the contract's request message %s has no Go type: %v", name, err)) // gen/ is stale
			}
			out = append(out, mt.New().Interface())
		}
	}
	return out
}

// Binding ties one service of the contract to its implementation and to its REST handlers.
type Binding struct {
	Desc *grpc.ServiceDesc
	Impl any
	// REST registers the service's grpc-gateway handlers on mux; they call the service through conn.
	REST func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error
}

// Bindings has one row per service of the contract; Register refuses to start when a row is missing.
func (s *Services) Bindings() []Binding {
	return []Binding{
		{&pb.InstanceService_ServiceDesc, s.Instance, restOf(pb.RegisterInstanceServiceHandlerClient, pb.NewInstanceServiceClient)},
		{&pb.OrderService_ServiceDesc, s.Order, restOf(pb.RegisterOrderServiceHandlerClient, pb.NewOrderServiceClient)},
		{&pb.AppService_ServiceDesc, s.App, restOf(pb.RegisterAppServiceHandlerClient, pb.NewAppServiceClient)},
		{&pb.FleetService_ServiceDesc, s.Fleet, restOf(pb.RegisterFleetServiceHandlerClient, pb.NewFleetServiceClient)},
	}
}

func restOf[C any](register func(context.Context, *runtime.ServeMux, C) error, client func(grpc.ClientConnInterface) C) func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error {
	return func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
		return register(ctx, mux, client(conn))
	}
}

// Register registers every service of the contract on r.
func (s *Services) Register(r grpc.ServiceRegistrar) error {
	bs := s.Bindings()
	if err := checkBindings(bs); err != nil {
		return err
	}
	for _, b := range bs {
		r.RegisterService(b.Desc, b.Impl)
	}
	return nil
}

// RegisterREST registers the REST handlers of every service of the contract on mux, calling them through conn.
func (s *Services) RegisterREST(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
	bs := s.Bindings()
	if err := checkBindings(bs); err != nil {
		return err
	}
	for _, b := range bs {
		if err := b.REST(ctx, mux, conn); err != nil {
			return fmt.Errorf("register REST handlers of %s: %w", b.Desc.ServiceName, err)
		}
	}
	return nil
}

// checkBindings reports a service of the contract without a row in bs, or a row that is not in the contract.
func checkBindings(bs []Binding) error {
	bound := map[string]bool{}
	for _, b := range bs {
		bound[b.Desc.ServiceName] = true
	}
	names := ServiceNames()
	for _, name := range names {
		if !bound[name] {
			return fmt.Errorf("service %s of the contract has no row in service.Bindings", name)
		}
	}
	if len(bound) != len(names) {
		return fmt.Errorf("service.Bindings has %d rows for the contract's %d services", len(bound), len(names))
	}
	return nil
}
