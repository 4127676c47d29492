package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	koophonegateway "github.com/koophone-gateway/koophone-gateway"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing is on only when an OTLP endpoint is configured; otherwise the provider is a no-op and costs nothing
// (a caller's traceparent still flows through, so its trace id still reaches the logs).
func newTracerProvider(ctx context.Context, getenv func(string) string) (trace.TracerProvider, func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return noop.NewTracerProvider(), nil, nil
	}
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp *otlptrace.Exporter
	var err error
	// The exporters read the rest of OTEL_EXPORTER_OTLP_* (endpoint, headers, TLS, timeout) themselves.
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(newResource(getenv)))
	otel.SetTracerProvider(tp) // the KooPhone client's otelhttp transport uses the global provider
	return tp, tp.Shutdown, nil
}

// newResource describes this process in spans: the SDK's defaults and OTEL_RESOURCE_ATTRIBUTES, then service.name
// "koophone-gateway" and service.version (VERSION) where the operator's variables set neither.
func newResource(getenv func(string) string) *resource.Resource {
	// (resource.Default reads the environment once per process; Environment reads it now.)
	res, err := resource.Merge(resource.Default(), resource.Environment())
	if err != nil {
		res = resource.Default()
	}
	attrs := getenv("OTEL_RESOURCE_ATTRIBUTES")
	var ours []attribute.KeyValue
	if getenv("OTEL_SERVICE_NAME") == "" && !strings.Contains(attrs, "service.name=") {
		ours = append(ours, attribute.String("service.name", "koophone-gateway"))
	}
	if !strings.Contains(attrs, "service.version=") {
		ours = append(ours, attribute.String("service.version", koophonegateway.Version))
	}
	if merged, err := resource.Merge(res, resource.NewSchemaless(ours...)); err == nil {
		res = merged
	}
	return res
}

// notHealth keeps health checks out of traces: load balancers call them every few seconds.
var notHealth = filters.Not(filters.HealthCheck())

// ServerHandler is the gRPC server's stats handler when spans are exported: one span per call, joined to the
// caller's trace. Without an exporter the server needs only the caller's trace context (ExtractTrace), not a
// handler that builds attribute sets and events for spans nobody receives (~3% of a cheap call's CPU and ~550 B
// of every open stream).
func (t *Telemetry) ServerHandler() stats.Handler {
	return otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(t.Tracer), otelgrpc.WithFilter(notHealth),
		otelgrpc.WithMeterProvider(noopMeter))
}

// ClientHandler is the stats handler of the REST mirror's connection to the gRPC server, so a REST call and its
// gRPC hop are one trace.
func (t *Telemetry) ClientHandler() stats.Handler {
	return otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(t.Tracer), otelgrpc.WithFilter(notHealth),
		otelgrpc.WithMeterProvider(noopMeter))
}

// Exporting is the tracer provider when spans are exported, nil otherwise: for parts that skip building spans
// nobody receives (the REST mirror's in-process gRPC hop).
func (t *Telemetry) Exporting() trace.TracerProvider {
	if !t.Tracing() {
		return nil
	}
	return t.Tracer
}

// ExtractTrace returns ctx joined to the trace context the caller sent in the call's metadata (W3C traceparent,
// tracestate, baggage), if any: what the stats handler would have done with tracing off, so the caller's trace id
// still reaches the logs. A ctx already carrying a span keeps it when the metadata has none.
func ExtractTrace(ctx context.Context) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, incomingCarrier{ctx})
}

// ExtractHTTPTrace is ExtractTrace for HTTP requests: the handler sees the caller's trace context from its
// headers, without otelhttp building span attributes nobody receives.
func ExtractHTTPTrace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The propagator returns the same ctx when the request carries none of its headers: no copy then.
		if ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header)); ctx != r.Context() {
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(w, r)
	})
}

// incomingCarrier reads a propagator's keys from the incoming metadata, one key at a time.
type incomingCarrier struct{ ctx context.Context }

func (c incomingCarrier) Get(key string) string {
	if v := metadata.ValueFromIncomingContext(c.ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (incomingCarrier) Set(string, string) {}
func (c incomingCarrier) Keys() []string {
	md, _ := metadata.FromIncomingContext(c.ctx)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}

// LogHandler adds trace_id and span_id to every record logged with a context that carries a valid span.
func LogHandler(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
