// Package rest is the REST edge: everything between a REST caller and the gRPC interceptor chain, in the order a
// request meets it.
//
//   - Edge (edge.go): the checks that keep the mirror from being a side door (JSON bodies only, body size and read
//     deadline, Host allow-list, CORS and cross-origin refusal), answered in the mirror's one error shape.
//   - NewMux (mux.go) and Options (this file): grpc-gateway's ServeMux with the mirror's wire behaviour installed
//     through grpc-gateway's own hooks: streams as newline-delimited JSON (or Server-Sent Events on request), one
//     error body everywhere ({"error": google.rpc.Status} with details and X-Request-Id), request-body and
//     query-parameter errors as google.rpc.BadRequest without Go internals, unknown query parameters refused, and
//     405 with Allow for a wrong verb.
//   - InProcChannel and InProcConns (inproc*.go): the mux's way into the gRPC services in the same process, through
//     the server's own interceptor chain: unary calls run the handler directly, streams over in-memory connections.
//
// It never imports the services: internal/server registers them on the mux with an InProcChannel.
package rest

import (
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// Media types of the mirror's streams.
const (
	MIMENDJSON = "application/x-ndjson"
	MIMESSE    = "text/event-stream"
)

// Options returns one ServeMux option that installs every hook of this package. base is the mirror's JSON
// marshaler (its field naming and unknown-field policy are kept); Options must come after any other
// marshaler or error-handler option so that its hooks win.
func Options(base runtime.Marshaler) runtime.ServeMuxOption {
	routes := newRouteTable()
	ndjson := &ndjsonMarshaler{Marshaler: base, pb: jsonPB(base)}
	opts := []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, ndjson),
		runtime.WithMarshalerOption(MIMENDJSON, ndjson),
		runtime.WithMarshalerOption(MIMESSE, &sseMarshaler{Marshaler: base, pb: jsonPB(base)}),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithStreamErrorHandler(streamErrorHandler),
		runtime.WithRoutingErrorHandler(routes.routingErrorHandler),
		runtime.SetQueryParameterParser(strictQueryParser{}),
		// streams first (outermost): an early refusal of a stream is framed as the stream would be.
		runtime.WithMiddlewares(routes.streams, routes.rejectQueryOnBodyRoutes),
	}
	return func(mux *runtime.ServeMux) {
		routes.mux = mux
		for _, o := range opts {
			o(mux)
		}
	}
}
