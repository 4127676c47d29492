// Package httpguard keeps the REST mirror from being a side door: request bodies only as application/json,
// cross-origin browser writes refused (with an optional CORS allow-list), an optional allow-list of Host names,
// and a deadline for reading each request body. It knows nothing of gRPC; errors are JSON in the mirror's shape.
package httpguard

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/cors"
)

// Config is what the guard enforces. The zero value checks content types and cross-origin writes only.
type Config struct {
	// CORSOrigins are the browser origins (scheme://host[:port]) allowed to call the API; empty: no CORS headers,
	// and cross-origin writes are refused.
	CORSOrigins []string
	// Hosts are the Host header values (without port) accepted; empty: any.
	Hosts []string
	// BodyTimeout bounds reading a request's whole body; 0: no bound.
	BodyTimeout time.Duration
}

// gRPC codes as the mirror's JSON errors carry them.
const (
	codeInvalidArgument  = 3
	codePermissionDenied = 7
)

// Wrap returns next behind the guard. Order, outermost first: Host check (a rebinding attack's request is refused
// before anything else), CORS (answers preflights), cross-origin write refusal, content type, body deadline.
func Wrap(cfg Config, next http.Handler) (http.Handler, error) {
	h := bodyDeadline(cfg.BodyTimeout, next)
	h = jsonBodies(h)
	cop := http.NewCrossOriginProtection()
	for _, o := range cfg.CORSOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("CORS origin %q: %w", o, err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusForbidden, codePermissionDenied, "cross-origin request refused: the origin is not in the CORS allow-list")
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
				writeError(w, http.StatusUnsupportedMediaType, codeInvalidArgument,
					fmt.Sprintf("request bodies must be application/json, not %q", ct))
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
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, host) }) {
			writeError(w, http.StatusMisdirectedRequest, codePermissionDenied, fmt.Sprintf("host %q is not served here", host))
			return
		}
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

func writeError(w http.ResponseWriter, httpStatus, code int, msg string) {
	// The mirror's one error shape (see internal/rest): {"error": google.rpc.Status}.
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "details": []any{}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(append(b, '\n'))
}
