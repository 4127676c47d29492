// Package rest shapes the REST/JSON mirror's wire behaviour through grpc-gateway's own hooks: streams as
// newline-delimited JSON (or Server-Sent Events on request), one error body everywhere ({"error": google.rpc.Status}
// with details and X-Request-Id), request-body and query-parameter errors as google.rpc.BadRequest without Go
// internals, unknown query parameters refused, and 405 with Allow for a wrong verb.
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
