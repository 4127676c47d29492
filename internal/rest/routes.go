package rest

import (
	"context"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"github.com/koophone-gateway/koophone-gateway/internal/httprule"
)

// route is one google.api.http binding: a path template split into segments ("{x}" matches any one segment).
type route struct {
	method   string
	template string // the path template as the contract writes it, e.g. /v1/instances/tasks/{task_id}/watch
	segments []string
	body     string // the binding's body field: "*" means every field comes from the body or the path
	rpc      string // the full gRPC method name, e.g. /koophone.v1.InstanceService/WatchTask
	stream   bool   // a server-streaming RPC
	// noQuery: no field of the request is left for the query string (the body takes every field, or the path and
	// body together bind all of them), so grpc-gateway never reads the query and a parameter would be ignored.
	noQuery bool
}

// routeTable knows every REST binding of the koophone.v1 services, read from the contract's google.api.http
// options, so a 405 can say which methods the path allows (grpc-gateway's mux does not expose its routes).
type routeTable struct {
	routes []route
	mux    *runtime.ServeMux // the mux the table's middleware runs in, for its marshalers and error handling
	// byPattern remembers matched's answers (so it reads the pattern once, and never runs Template's regexp twice
	// for a route). Only routes found are kept: at most one entry per route.
	mu        sync.RWMutex
	byPattern map[patternKey]*route
}

// patternKey is a method and grpc-gateway's rendering of a pattern (/v1/tasks/{task_id=*}/watch).
type patternKey struct{ method, pattern string }

func newRouteTable() *routeTable {
	t := &routeTable{byPattern: map[patternKey]*route{}}
	pkg := pb.File_koophone_v1_instance_service_proto.Package()
	protoregistry.GlobalFiles.RangeFilesByPackage(pkg, func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			methods := fd.Services().Get(i).Methods()
			for j := 0; j < methods.Len(); j++ {
				m := methods.Get(j)
				t.add(httprule.Rule(m), "/"+string(fd.Services().Get(i).FullName())+"/"+string(m.Name()), m.IsStreamingServer(), m.Input())
			}
		}
		return true
	})
	return t
}

func (t *routeTable) add(rule *annotations.HttpRule, rpc string, stream bool, in protoreflect.MessageDescriptor) {
	if rule == nil {
		return
	}
	if method, path := httprule.Binding(rule); method != "" {
		segs := strings.Split(strings.Trim(path, "/"), "/")
		t.routes = append(t.routes, route{method: method, template: path, segments: segs, body: rule.GetBody(),
			rpc: rpc, stream: stream, noQuery: rule.GetBody() == "*" || !queryFieldsLeft(in, segs, rule.GetBody())})
	}
	for _, extra := range rule.GetAdditionalBindings() {
		t.add(extra, rpc, stream, in)
	}
}

// captureRe matches a capture in grpc-gateway's rendering of a pattern: {task_id=*}.
var captureRe = regexp.MustCompile(`\{([^=}]+)=\*\}`)

// Template turns a grpc-gateway pattern as runtime.Pattern.String renders it (/v1/tasks/{task_id=*}/watch) back
// into the contract's path template (/v1/tasks/{task_id}/watch): the http.route of the request's span.
func Template(pattern string) string { return captureRe.ReplaceAllString(pattern, "{$1}") }

// matched is the route grpc-gateway's mux matched for r (it puts the pattern on r's context before middlewares
// run), or nil.
func (t *routeTable) matched(r *http.Request) *route {
	p, ok := runtime.HTTPPattern(r.Context())
	if !ok {
		return nil
	}
	key := patternKey{r.Method, p.String()}
	t.mu.RLock()
	rt, ok := t.byPattern[key]
	t.mu.RUnlock()
	if ok {
		return rt
	}
	tmpl := Template(key.pattern)
	for i := range t.routes {
		if t.routes[i].method == r.Method && t.routes[i].template == tmpl {
			t.mu.Lock()
			t.byPattern[key] = &t.routes[i]
			t.mu.Unlock()
			return &t.routes[i]
		}
	}
	return nil
}

// allowed lists the methods bound to path, sorted.
func (t *routeTable) allowed(path string) []string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	seen := map[string]bool{}
	var out []string
	for _, r := range t.routes {
		if matches(r.segments, segs) && !seen[r.method] {
			seen[r.method] = true
			out = append(out, r.method)
		}
	}
	sort.Strings(out)
	return out
}

// queryFieldsLeft reports whether the request has a field that neither the path template nor the body field binds.
func queryFieldsLeft(in protoreflect.MessageDescriptor, segs []string, body string) bool {
	bound := map[string]bool{body: true}
	for _, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			name, _, _ := strings.Cut(strings.Trim(s, "{}"), "=")
			bound[name] = true
		}
	}
	for i := 0; i < in.Fields().Len(); i++ {
		if !bound[string(in.Fields().Get(i).Name())] {
			return true
		}
	}
	return false
}

// rejectQueryOnBodyRoutes refuses query parameters on operations that read none: those whose request comes whole
// from the body (body: "*") or whose every field is bound by the path and body. grpc-gateway does not read the
// query there, so a parameter would be silently ignored.
func (t *routeTable) rejectQueryOnBodyRoutes(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
		if r.URL.RawQuery == "" {
			next(w, r, pathParams)
			return
		}
		if rt := t.matched(r); rt != nil && rt.noQuery {
			query := r.URL.Query()
			params := make([]string, 0, len(query))
			for k := range query {
				params = append(params, k)
			}
			sort.Strings(params)
			name := strings.Join(params, ",")
			if name == "" {
				name = r.URL.RawQuery
			}
			desc := "this operation takes no query parameters"
			if rt.body == "*" {
				desc += ": send every field in the JSON body"
			}
			err := queryError(name, "query.unknown_parameter", desc)
			_, outbound := runtime.MarshalerForRequest(t.mux, r)
			errorHandler(r.Context(), t.mux, outbound, w, r, status.Error(codes.InvalidArgument, err.Error()))
			return
		}
		next(w, r, pathParams)
	}
}

func matches(template, segs []string) bool {
	if len(template) != len(segs) {
		return false
	}
	for i, s := range template {
		if (!strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}")) && s != segs[i] {
			return false
		}
	}
	return true
}

// routingErrorHandler answers a path no operation has with 404 and a known path with the wrong verb with 405 and
// an Allow header, both as {"error": status} with the gateway's ErrorInfo.
func (t *routeTable) routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var st *status.Status
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		allow := t.allowed(r.URL.Path)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		st = status.Newf(codes.Unimplemented, "method %s not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))
		st = withInfo(st, pb.ErrorReason_HTTP_METHOD_NOT_ALLOWED, map[string]string{"allow": strings.Join(allow, ", ")})
		errorHandler(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: st.Err()})
		return
	case http.StatusNotFound:
		st = withInfo(status.Newf(codes.NotFound, "no operation at %s", r.URL.Path), pb.ErrorReason_HTTP_PATH_NOT_FOUND, nil)
	default:
		st = status.New(codes.InvalidArgument, http.StatusText(httpStatus))
	}
	errorHandler(ctx, mux, m, w, r, st.Err())
}

func withInfo(st *status.Status, reason pb.ErrorReason, md map[string]string) *status.Status {
	if withD, err := st.WithDetails(errcat.Info(reason, md)); err == nil {
		return withD
	}
	return st
}
