package rest

import (
	"context"
	"net"
	"strings"
	"sync"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// InProcRegistrar registers services on a *grpc.Server and also keeps their unary handlers, so an InProcChannel can
// call them without any transport. Register the services the mirror reaches through it instead of through the server.
type InProcRegistrar struct {
	srv     *grpc.Server
	methods map[string]unaryMethod
}

type unaryMethod struct {
	impl    any
	handler grpc.MethodHandler
}

var _ grpc.ServiceRegistrar = (*InProcRegistrar)(nil)

// NewInProcRegistrar returns an InProcRegistrar in front of srv.
func NewInProcRegistrar(srv *grpc.Server) *InProcRegistrar {
	return &InProcRegistrar{srv: srv, methods: map[string]unaryMethod{}}
}

// RegisterService registers the service on the server and keeps its unary methods.
func (r *InProcRegistrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	r.srv.RegisterService(desc, impl)
	for _, m := range desc.Methods {
		r.methods["/"+desc.ServiceName+"/"+m.MethodName] = unaryMethod{impl: impl, handler: m.Handler}
	}
}

// InProcChannel is a grpc.ClientConnInterface whose unary calls run the registered handler in the caller's goroutine,
// through the same interceptor chain the server runs, with no HTTP/2 framing, no serialisation and no connection
// to share: the request is copied with proto.Merge and the answer moved into the reply (move). Streams go over the
// in-memory connections (streams need their flow control, and their per-message cost is not per call).
//
// What a call sees matches a call over the server: the outgoing metadata arrives as incoming metadata, grpc.Method
// and grpc.SetHeader/SetTrailer work and reach the caller's grpc.Header/grpc.Trailer options, the peer is an
// in-process address, and a handler's non-status error becomes a status the way grpc-go makes it one. What it
// skips is the server's transport-level machinery: stats handlers (WithTracerProvider makes the span otelgrpc's
// would), MaxRecvMsgSize and MaxConcurrentStreams (the HTTP server bounds its callers).
type InProcChannel struct {
	methods map[string]unaryMethod
	chain   grpc.UnaryServerInterceptor
	streams grpc.ClientConnInterface
	peer    *peer.Peer
	tracer  trace.Tracer // nil: no spans
}

var _ grpc.ClientConnInterface = (*InProcChannel)(nil)

// InProcChannelOption adjusts an InProcChannel.
type InProcChannelOption func(*InProcChannel)

// WithTracerProvider makes each unary call a server span of tp's, like the one otelgrpc's server stats handler
// makes for a call over a connection: without it a REST call's trace would jump from the REST span to KooPhone,
// skipping the gRPC handler. Nil tp: no spans (what a gateway exporting no traces wants).
func WithTracerProvider(tp trace.TracerProvider) InProcChannelOption {
	return func(c *InProcChannel) {
		if tp != nil {
			c.tracer = tp.Tracer("github.com/koophone-gateway/koophone-gateway/internal/rest")
		}
	}
}

// NewInProcChannel returns an InProcChannel for r's unary methods, running interceptors (outermost first, as in
// grpc.ChainUnaryInterceptor), and opening streams on streams.
func NewInProcChannel(r *InProcRegistrar, interceptors []grpc.UnaryServerInterceptor, streams grpc.ClientConnInterface, opts ...InProcChannelOption) *InProcChannel {
	c := &InProcChannel{
		methods: r.methods,
		chain:   chainUnary(interceptors),
		streams: streams,
		peer:    &peer.Peer{Addr: inprocAddr{}},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Invoke runs a unary call in process.
func (c *InProcChannel) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) (err error) {
	if c.tracer != nil {
		var span trace.Span
		ctx, span = c.startSpan(ctx, method)
		defer func() { endSpan(span, err) }()
	}
	m, ok := c.methods[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	in, ok := args.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process call: request %T is not a proto message", args)
	}
	out, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process call: reply %T is not a proto message", reply)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	ctx = metadata.NewOutgoingContext(ctx, nil) // the caller's outgoing metadata is not the handler's
	ctx = metadata.NewIncomingContext(ctx, md)
	ts := &transportStream{method: method}
	ctx = grpc.NewContextWithServerTransportStream(ctx, ts)
	ctx = peer.NewContext(ctx, c.peer)

	dec := func(v any) error {
		dst, ok := v.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "in-process call: handler request %T is not a proto message", v)
		}
		proto.Merge(dst, in)
		return nil
	}
	resp, err := m.handler(m.impl, ctx, dec, c.chain)
	ts.deliver(opts)
	if err != nil {
		return asStatus(err)
	}
	msg, ok := resp.(proto.Message)
	if !ok || msg == nil {
		return status.Errorf(codes.Internal, "in-process call: handler answered %T", resp)
	}
	move(out, msg)
	return nil
}

// move makes dst what a client's reply holds after a call over a connection (reset, then src's fields), sharing
// src's lists and sub-messages rather than copying them: the handler's answer is not used after the call, and a
// deep copy (proto.Merge) allocated every element of every list again (16 allocations for 10 phones, against 3).
func move(dst, src proto.Message) {
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	if d.Descriptor() != s.Descriptor() {
		proto.Merge(dst, src) // panics, naming the types, as a mismatched reply always has
		return
	}
	proto.Reset(dst)
	s.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		d.Set(fd, v)
		return true
	})
	if u := s.GetUnknown(); len(u) > 0 {
		d.SetUnknown(u)
	}
}

// NewStream opens a stream over the stream connections.
func (c *InProcChannel) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.streams.NewStream(ctx, desc, method, opts...)
}

// startSpan starts the server span of a call as otelgrpc names it (package.Service/Method) with its attributes:
// rpc.system.name and rpc.method (the full name) of the semantic conventions otelgrpc follows, and rpc.system and
// rpc.service of the older ones, which many backends still group by.
func (c *InProcChannel) startSpan(ctx context.Context, method string) (context.Context, trace.Span) {
	name := strings.TrimPrefix(method, "/")
	service, _, _ := strings.Cut(name, "/")
	return c.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		semconv.RPCSystemNameGRPC,
		semconv.RPCMethod(name),
		attribute.String("rpc.system", "grpc"),
		attribute.String("rpc.service", service),
	))
}

// endSpan records the call's gRPC code, and marks the span failed for the codes otelgrpc counts as a server's
// failure (a caller's mistake, NOT_FOUND say, is not the server's).
func endSpan(span trace.Span, err error) {
	st := status.Convert(err)
	span.SetAttributes(semconv.RPCResponseStatusCode(codeName(st.Code())))
	switch st.Code() {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		span.SetStatus(otelcodes.Error, st.Message())
	}
	span.End()
}

// codeName is a code's canonical name (NOT_FOUND), as otelgrpc records it; codes.Code's String is NotFound.
func codeName(c codes.Code) string {
	var b strings.Builder
	prev := ' '
	for _, r := range c.String() {
		if unicode.IsUpper(r) && unicode.IsLower(prev) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
		prev = r
	}
	return b.String()
}

// asStatus turns a handler's error into what a client of grpc-go's server would receive: a status error as it is,
// a context error as CANCELED or DEADLINE_EXCEEDED, anything else as UNKNOWN.
func asStatus(err error) error {
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.FromContextError(err).Err()
}

// chainUnary composes interceptors, the first outermost, as grpc.ChainUnaryInterceptor does.
func chainUnary(interceptors []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	switch len(interceptors) {
	case 0:
		return nil
	case 1:
		return interceptors[0]
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return interceptors[0](ctx, req, info, chainNext(interceptors, 1, info, handler))
	}
}

func chainNext(interceptors []grpc.UnaryServerInterceptor, i int, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) grpc.UnaryHandler {
	if i == len(interceptors) {
		return final
	}
	return func(ctx context.Context, req any) (any, error) {
		return interceptors[i](ctx, req, info, chainNext(interceptors, i+1, info, final))
	}
}

// transportStream is the grpc.ServerTransportStream of an in-process call: it keeps the headers and trailers the
// handler sets, for the caller's grpc.Header and grpc.Trailer options.
type transportStream struct {
	method string

	mu      sync.Mutex
	header  metadata.MD
	trailer metadata.MD
	sent    bool
}

func (s *transportStream) Method() string { return s.method }

func (s *transportStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return status.Error(codes.Internal, "transport: the stream is done or WriteHeader was already called")
	}
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *transportStream) SendHeader(md metadata.MD) error {
	if err := s.SetHeader(md); err != nil {
		return err
	}
	s.mu.Lock()
	s.sent = true
	s.mu.Unlock()
	return nil
}

func (s *transportStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// deliver hands the headers and trailers to the call options that asked for them.
func (s *transportStream) deliver(opts []grpc.CallOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = true
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption: // what grpc.Header returns
			*o.HeaderAddr = s.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = s.trailer
		}
	}
}

// inprocAddr is the peer address of in-process calls.
type inprocAddr struct{}

func (inprocAddr) Network() string { return "inproc" }
func (inprocAddr) String() string  { return "in-process" }

var _ net.Addr = inprocAddr{}
