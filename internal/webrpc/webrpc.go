// Package webrpc serves the contract's services over the Connect protocol and gRPC-web on the REST port, at
// /koophone.v1.<Service>/<Method>, so a browser calls them with @connectrpc/connect-web (unary calls and server
// streams over fetch) and reads errors with their google.rpc.Status details, as a gRPC caller does.
//
// Each call is transcoded to gRPC by connectrpc.com/vanguard and handed to the *grpc.Server's ServeHTTP: it runs
// through the server's whole interceptor chain (request id, telemetry, authentication, policy, limits,
// validation, idempotency, call log) like any gRPC call. ServeHTTP gives the chain the HTTP caller's address
// (peer.Addr) and TLS state (peer.AuthInfo, with the verified client certificate under mTLS); the Authorization
// header arrives as the authorization metadata. Nothing here decides who may call.
//
// The REST edge's rules hold here too, answered in the caller's protocol (connect.ErrorWriter) so a Connect
// client reads the reason (an ErrorInfo whose reason is a koophone.v1.ErrorReason): a Host allow-list, CORS for
// the listed origins (with the headers Connect and gRPC-web need), cross-origin writes from other origins
// refused, a cap on the body and a deadline for reading it. Plain gRPC is refused here: the gRPC port serves it
// with its own transport limits (header size, streams per connection, keepalive), which ServeHTTP bypasses.
package webrpc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	connectcors "connectrpc.com/cors"
	"connectrpc.com/vanguard"
	"github.com/rs/cors"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
	"github.com/koophone-gateway/koophone-gateway/internal/rest"
)

// Prefix starts the full name of every service served: the contract's, not health or reflection (those are the
// gRPC port's, for probes and tools, not for pages).
const Prefix = "koophone.v1."

// maxMessageBytes bounds a message vanguard buffers: the REST mirror's cap on an answer it reads from gRPC.
const maxMessageBytes = 64 << 20

// Config is what the handler enforces besides the gRPC chain; the REST mirror's settings.
type Config struct {
	// CORSOrigins are the browser origins allowed to call; empty: no CORS headers, cross-origin writes refused.
	CORSOrigins []string
	// Hosts are the Host header values (without port) accepted; empty: any.
	Hosts []string
	// MaxBodyBytes caps a request body; 0: no cap.
	MaxBodyBytes int64
	// BodyTimeout bounds reading a request's whole body; 0: no bound.
	BodyTimeout time.Duration
}

// Mount serves srv's contract services on mux, one pattern per service ("/koophone.v1.InstanceService/"), so
// every other path stays the mux's (the REST mirror's /v1/..., probes, docs).
func Mount(mux *http.ServeMux, cfg Config, srv *grpc.Server) error {
	h, services, err := New(cfg, srv)
	if err != nil {
		return err
	}
	for _, s := range services {
		mux.Handle("/"+s+"/", h)
	}
	return nil
}

// New returns the handler for srv's services under Prefix and their names, sorted.
func New(cfg Config, srv *grpc.Server) (http.Handler, []string, error) {
	var names []string
	for name := range srv.GetServiceInfo() {
		if strings.HasPrefix(name, Prefix) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, nil, errors.New("webrpc: no " + Prefix + "* service registered on the gRPC server")
	}
	slices.Sort(names)
	services := make([]*vanguard.Service, 0, len(names))
	for _, name := range names {
		// To gRPC in the proto codec, uncompressed: the server needs no codec or compressor it lacks.
		services = append(services, vanguard.NewService(name, srv,
			vanguard.WithTargetProtocols(vanguard.ProtocolGRPC),
			vanguard.WithTargetCodecs(vanguard.CodecProto),
			vanguard.WithNoTargetCompression(),
			// A message vanguard holds whole (a unary answer it reframes) is bounded as the REST mirror's answers
			// are, not by its 4 GiB default.
			vanguard.WithMaxMessageBufferBytes(maxMessageBytes)))
	}
	tc, err := vanguard.NewTranscoder(services, vanguard.WithCodec(newStrictJSON))
	if err != nil {
		return nil, nil, fmt.Errorf("webrpc: %w", err)
	}
	h := readBody(cfg.MaxBodyBytes, cfg.BodyTimeout, noMirrorHeaders(tc))
	h = protocols(h)
	cop := http.NewCrossOriginProtection()
	for _, o := range cfg.CORSOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, nil, fmt.Errorf("CORS origin %q: %w", o, err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var md map[string]string
		if o := r.Header.Get("Origin"); o != "" {
			md = map[string]string{"origin": o}
		}
		refuse(w, r, connect.CodePermissionDenied, pb.ErrorReason_CROSS_ORIGIN_REFUSED, md,
			"cross-origin request refused: the origin is not in the gateway's CORS allow-list (--cors-origins)")
	}))
	h = cop.Handler(h)
	if len(cfg.CORSOrigins) > 0 {
		h = cors.New(cors.Options{
			AllowedOrigins: cfg.CORSOrigins,
			AllowedMethods: connectcors.AllowedMethods(),
			// Connect's and gRPC-web's own headers, and the gateway's: the API key, the request id, the
			// idempotency key.
			AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization", "X-Request-Id", "Idempotency-Key"),
			ExposedHeaders: append(connectcors.ExposedHeaders(), "X-Request-Id"),
			MaxAge:         600,
		}).Handler(h)
	}
	if len(cfg.Hosts) > 0 {
		h = hosts(cfg.Hosts, h)
	}
	return h, names, nil
}

// strictJSON is vanguard's JSON codec for Connect's JSON requests, as strict as the REST mirror: an unknown field is
// an error (a misspelt field is not a silently ignored setting), and an unreadable body is the caller's fault
// (INVALID_ARGUMENT with a BadRequest naming the rule), not the UNKNOWN vanguard would answer.
type strictJSON struct{ *vanguard.JSONCodec }

func newStrictJSON(res vanguard.TypeResolver) vanguard.Codec {
	c := vanguard.NewJSONCodec(res)
	c.UnmarshalOptions.DiscardUnknown = false
	return strictJSON{c}
}

var unknownFieldRe = regexp.MustCompile(`unknown field "([^"]+)"`)

func (c strictJSON) Unmarshal(data []byte, msg proto.Message) error {
	err := c.JSONCodec.Unmarshal(data, msg)
	if err == nil {
		return nil
	}
	v := &errdetails.BadRequest_FieldViolation{Reason: "body.invalid", Description: strings.TrimPrefix(err.Error(), "proto: ")}
	if m := unknownFieldRe.FindStringSubmatch(err.Error()); m != nil {
		v = &errdetails.BadRequest_FieldViolation{Field: m[1], Reason: "body.unknown_field", Description: "no such field in this request"}
	}
	ce := connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("request body: %s", v.GetDescription()))
	if d, derr := connect.NewErrorDetail(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{v}}); derr == nil {
		ce.AddDetail(d)
	}
	return ce
}

// errorWriter writes an error in the request's protocol: Connect (unary JSON or an end-of-stream message),
// gRPC-web (trailers) or gRPC. Requiring Connect-Protocol-Version on unary Connect calls (connect-web always
// sends it) tells them apart from a stray JSON POST, which gets the refusal below instead.
var errorWriter = connect.NewErrorWriter(connect.WithRequireConnectProtocolHeader())

// protocols lets through Connect and gRPC-web calls only; plain gRPC is pointed at the gRPC port and anything
// else gets 415 naming what is spoken here.
func protocols(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := strings.ToLower(r.Header.Get("Content-Type"))
		switch {
		case len(r.Header.Values("Content-Type")) > 1:
		case ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") || strings.HasPrefix(ct, "application/grpc;"):
			refuse(w, r, connect.CodeUnimplemented, pb.ErrorReason_HTTP_UNSUPPORTED_MEDIA_TYPE, map[string]string{"content_type": ct},
				"plain gRPC is served on the gateway's gRPC port (--grpc-addr), not on the REST port; here: Connect and gRPC-web")
			return
		case errorWriter.IsSupported(r):
			if enc := requestEncoding(r.Header); enc != "" {
				// The body cap counts compressed bytes: a small gzip body could inflate to gigabytes before
				// any limit saw it. Browsers' Connect clients send requests uncompressed.
				refuse(w, r, connect.CodeUnimplemented, pb.ErrorReason_HTTP_UNSUPPORTED_MEDIA_TYPE, map[string]string{"content_encoding": enc},
					fmt.Sprintf("compressed requests (%s) are not accepted here: send the request uncompressed (answers may still be compressed)", enc))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		sent := r.Header.Get("Content-Type")
		if sent == "" {
			sent = "none"
		}
		refuse(withStatus{w, http.StatusUnsupportedMediaType}, r, connect.CodeInvalidArgument, pb.ErrorReason_HTTP_UNSUPPORTED_MEDIA_TYPE, map[string]string{"content_type": sent},
			fmt.Sprintf("Content-Type %q with %s is not an RPC spoken here: /koophone.v1.<Service>/<Method> serves the Connect protocol "+
				"(application/proto or application/json with Connect-Protocol-Version: 1; application/connect+proto or +json for streams) "+
				"and gRPC-web (application/grpc-web+proto); the REST mirror is under /v1/", sent, r.Method))
	})
}

// requestEncoding is the compression a request body says it uses ("" for none or identity): Content-Encoding
// (Connect unary), Connect-Content-Encoding (Connect streams) or Grpc-Encoding (gRPC-web).
func requestEncoding(h http.Header) string {
	for _, k := range []string{"Content-Encoding", "Connect-Content-Encoding", "Grpc-Encoding"} {
		if v := strings.ToLower(strings.TrimSpace(h.Get(k))); v != "" && v != "identity" {
			return v
		}
	}
	return ""
}

// withStatus sends its own status instead of the one the Connect error would map to (400 for invalid_argument).
type withStatus struct {
	http.ResponseWriter
	status int
}

func (w withStatus) WriteHeader(int) { w.ResponseWriter.WriteHeader(w.status) }

// refuse answers an error with the gateway's ErrorInfo in the request's protocol, and an X-Request-Id (the
// caller's when valid, else a new one), since no gRPC call will give this request one.
func refuse(w http.ResponseWriter, r *http.Request, code connect.Code, reason pb.ErrorReason, md map[string]string, msg string) {
	e := connect.NewError(code, errors.New(msg))
	if d, err := connect.NewErrorDetail(errcat.Info(reason, md)); err == nil {
		e.AddDetail(d)
	}
	w.Header().Set(requestIDHeader, requestid.Caller(r.Header.Get(requestIDHeader)))
	_ = errorWriter.Write(w, r, e)
}

const requestIDHeader = "X-Request-Id"

// noMirrorHeaders drops headers that would reach the chain as the REST mirror's vouched-for metadata (ServeHTTP
// turns every header into metadata). They count only with the mirror's secret; dropping them keeps it that way.
func noMirrorHeaders(next http.Handler) http.Handler {
	allowed := auth.MirrorHeaderMatcher(func(k string) (string, bool) { return k, true })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k := range r.Header {
			if _, ok := allowed(k); !ok {
				r.Header.Del(k)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hosts refuses requests for a Host outside the list, as the REST mirror does.
func hosts(allowed []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, unserved := rest.UnservedHost(allowed, r); unserved {
			refuse(w, r, connect.CodePermissionDenied, pb.ErrorReason_HTTP_HOST_NOT_SERVED, map[string]string{"host": host},
				fmt.Sprintf("host %q is not served here (--http-allowed-hosts)", host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readBody reads the whole request body before the call (the contract has no client streams: every request is
// one message) under a cap and a deadline, so a body too large or too slow gets its reason, as on the REST mirror,
// instead of a cancelled call: a declared length over limit is refused at once, a longer body is cut off there; the
// connection's read deadline lasts while the body is read, and not while a server stream answers.
func readBody(limit int64, timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tooLarge := func() {
			refuse(w, r, connect.CodeInvalidArgument, pb.ErrorReason_HTTP_BODY_TOO_LARGE,
				map[string]string{"max_body_bytes": strconv.FormatInt(limit, 10)},
				fmt.Sprintf("request body larger than %d bytes (--http-max-body-bytes)", limit))
		}
		if limit > 0 && r.ContentLength > limit {
			tooLarge()
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body := r.Body
		if limit > 0 {
			body = http.MaxBytesReader(w, body, limit)
		}
		rc := http.NewResponseController(w)
		// A socket deadline is wall-clock time by nature; there is no clock to inject here.
		deadline := timeout > 0 && rc.SetReadDeadline(time.Now().Add(timeout)) == nil
		b, err := io.ReadAll(body)
		if deadline && err == nil {
			// Lifted only once the body is in: after a failed read it stays, or net/http, finishing the
			// request, would wait without end for the rest of a stalled body before answering.
			_ = rc.SetReadDeadline(time.Time{})
		}
		var tooBig *http.MaxBytesError
		var netErr net.Error
		switch {
		case errors.As(err, &tooBig):
			tooLarge()
			return
		case errors.As(err, &netErr) && netErr.Timeout():
			refuseBody(w, r, "body.timeout", "the body did not arrive within the time allowed (--http-body-timeout)")
			return
		case err != nil:
			refuseBody(w, r, "body.unreadable", "the body could not be read: "+err.Error())
			return
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		next.ServeHTTP(w, r)
	})
}

// refuseBody answers INVALID_ARGUMENT with a BadRequest naming the body's rule, as the REST mirror does.
func refuseBody(w http.ResponseWriter, r *http.Request, rule, msg string) {
	e := connect.NewError(connect.CodeInvalidArgument, errors.New("request body: "+msg))
	if d, err := connect.NewErrorDetail(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Reason: rule, Description: msg}}}); err == nil {
		e.AddDetail(d)
	}
	w.Header().Set(requestIDHeader, requestid.Caller(r.Header.Get(requestIDHeader)))
	_ = errorWriter.Write(w, r, e)
}
