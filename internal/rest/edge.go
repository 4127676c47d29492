package rest

// The edge's checks keep the REST mirror from being a side door: request bodies only as application/json and no
// larger than a limit, cross-origin browser writes refused (with an optional CORS allow-list), an optional
// allow-list of Host names, and a deadline for reading each request body. They run before grpc-gateway sees the
// request and know nothing of gRPC calls; what they refuse they answer themselves in the mirror's one error shape
// ({"error": google.rpc.Status} with an ErrorInfo whose reason is a koophone.v1.ErrorReason) and with an
// X-Request-Id, like every other answer of the mirror.

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/cors"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
)

// EdgeConfig is what the edge's checks enforce. The zero value checks content types and cross-origin writes only.
type EdgeConfig struct {
	// CORSOrigins are the browser origins (scheme://host[:port]) allowed to call the API; empty: no CORS headers,
	// and cross-origin writes are refused.
	CORSOrigins []string
	// Hosts are the Host header values (without port) accepted; empty: any.
	Hosts []string
	// BodyTimeout bounds reading a request's whole body; 0: no bound.
	BodyTimeout time.Duration
	// MaxBodyBytes caps a request body: a declared length over it is refused at once with 413, and a body that
	// turns out longer is cut off there (the mirror's JSON decoder then answers 400); 0: no cap.
	MaxBodyBytes int64
}

// FixContentType is what a refused body's answer tells the caller to send.
const FixContentType = `-H 'Content-Type: application/json'`

// gRPC codes as the mirror's JSON errors carry them.
const (
	codeInvalidArgument  = 3
	codePermissionDenied = 7
)

// Edge returns next behind the edge's checks. Order, outermost first: Host check (a rebinding attack's request is refused
// before anything else), CORS (answers preflights), cross-origin write refusal, content type, body size, body
// deadline.
func Edge(cfg EdgeConfig, next http.Handler) (http.Handler, error) {
	h := bodyDeadline(cfg.BodyTimeout, next)
	h = limitBody(cfg.MaxBodyBytes, h)
	h = jsonBodies(h)
	cop := http.NewCrossOriginProtection()
	for _, o := range cfg.CORSOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("CORS origin %q: %w", o, err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		var md map[string]string
		if origin != "" {
			md = map[string]string{"origin": origin}
		}
		writeRefusal(w, r, http.StatusForbidden, codePermissionDenied, pb.ErrorReason_CROSS_ORIGIN_REFUSED, md,
			"cross-origin request refused: the origin is not in the gateway's CORS allow-list (--cors-origins)")
	}))
	h = cop.Handler(h)
	if len(cfg.CORSOrigins) > 0 {
		h = cors.New(cors.Options{
			AllowedOrigins: cfg.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete},
			AllowedHeaders: []string{"Authorization", "Content-Type", "X-Request-Id"},
			ExposedHeaders: []string{"X-Request-Id"},
			MaxAge:         600,
		}).Handler(h)
	}
	if len(cfg.Hosts) > 0 {
		h = hosts(cfg.Hosts, h)
	}
	return h, nil
}

// jsonBodies refuses a request that carries, or says it carries, a body other than JSON: a browser can send
// text/plain or a form across origins without a preflight, and the mirror would otherwise parse it as JSON.
func jsonBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := r.Header.Get("Content-Type")
		hasBody := r.ContentLength != 0 // -1: chunked, length unknown
		if ct != "" || hasBody {
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || mt != "application/json" {
				sent := ct
				if sent == "" {
					sent = "none"
				}
				writeRefusal(w, r, http.StatusUnsupportedMediaType, codeInvalidArgument, pb.ErrorReason_HTTP_UNSUPPORTED_MEDIA_TYPE,
					map[string]string{"content_type": sent},
					fmt.Sprintf("request bodies must be JSON sent as application/json, not %q: send %s (curl -d alone sends a form)", sent, FixContentType))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hosts refuses requests for a Host outside the list (DNS rebinding turns a browser against a loopback gateway
// by giving a hostile name the gateway's address).
func hosts(allowed []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, unserved := UnservedHost(allowed, r); unserved {
			writeRefusal(w, r, http.StatusMisdirectedRequest, codePermissionDenied, pb.ErrorReason_HTTP_HOST_NOT_SERVED,
				map[string]string{"host": host}, fmt.Sprintf("host %q is not served here (--http-allowed-hosts)", host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// UnservedHost returns r's Host without its port, and whether allowed (host names, any case) leaves it out. The
// REST mirror and the Connect/gRPC-web endpoints (internal/webrpc) refuse the same hosts, each in its protocol.
func UnservedHost(allowed []string, r *http.Request) (host string, unserved bool) {
	host = r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host, !slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, host) })
}

// limitBody caps request bodies: a declared length over limit is refused at once, and a body that turns out longer
// is cut off by http.MaxBytesReader.
func limitBody(limit int64, next http.Handler) http.Handler {
	if limit <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			writeRefusal(w, r, http.StatusRequestEntityTooLarge, codeInvalidArgument, pb.ErrorReason_HTTP_BODY_TOO_LARGE,
				map[string]string{"max_body_bytes": strconv.FormatInt(limit, 10)},
				fmt.Sprintf("request body larger than %d bytes (--http-max-body-bytes)", limit))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// bodyDeadline gives the connection a read deadline while the request body is read, and lifts it once the body
// has been read, so a slow or stalled body is cut off while a long response stream (which reads nothing more) is
// not. ReadHeaderTimeout on the server bounds the headers.
func bodyDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d <= 0 || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		// A socket deadline is wall-clock time by nature; there is no clock to inject here.
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			next.ServeHTTP(w, r)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		next.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	once sync.Once
	lift func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.lift)
	}
	return n, err
}

// errorJSON marshals like the mirror's JSON (proto field names), so a refusal of the edge reads as an answer of the
// mirror.
var errorJSON = protojson.MarshalOptions{UseProtoNames: true}

// writeRefusal answers in the mirror's one error shape (errors.go): {"error": google.rpc.Status} whose
// details hold the gateway's ErrorInfo, and the X-Request-Id header (the caller's, when valid, else a new one),
// since no gRPC call will give this request one.
func writeRefusal(w http.ResponseWriter, r *http.Request, httpStatus int, code int32, reason pb.ErrorReason, md map[string]string, msg string) {
	st := &status.Status{Code: code, Message: msg}
	if info, err := anypb.New(errcat.Info(reason, md)); err == nil {
		st.Details = []*anypb.Any{info}
	}
	b, err := errorJSON.Marshal(st)
	if err != nil { // cannot happen for these messages; keep the shape regardless
		b, _ = json.Marshal(map[string]any{"code": code, "message": msg})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(requestIDHeader, requestid.Caller(r.Header.Get(requestIDHeader)))
	w.WriteHeader(httpStatus)
	_, _ = w.Write(append(append([]byte(`{"error":`), b...), "}\n"...))
}
