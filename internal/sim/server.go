package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// maxBody is the largest request body accepted: AK/SK signing stops at 12 MB (seed 3.2), and no KooPhone body
// comes near it.
const maxBody = 12 << 20

// OpIAM names the IAM token endpoint in Calls, faults and logs.
const OpIAM = "IAM"

// requestIDPattern is what x-request-id must look like; anything else is KOOPHONE.API.0003.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// reqIDRule says where an operation's seed table lists x-request-id.
type reqIDRule int

const (
	reqIDOptional reqIDRule = iota // not listed (or listed as optional): validated only when sent
	reqIDHeader                    // required header
	reqIDQuery                     // required query parameter (ListInstances)
)

// operation is one row of the routing table.
type operation struct {
	name   string
	method string
	path   string // "{}" marks a path parameter segment
	reqID  reqIDRule
	okMsg  string // the success error_msg of the seed's example ("ok" or "OK" or longer)
	handle func(*Server, *call)
}

// call is one request on its way through the pipeline.
type call struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	op     *operation
	params []string // path parameters, in order
	body   []byte
	now    time.Time // the sim clock when the request got past its faults
}

// ServeHTTP routes a request to the admin API, the IAM endpoint or a KooPhone operation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	opName := ""
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { // the "drop" fault's way out where it cannot hijack: let net/http see it
				panic(v)
			}
			// Last resort: no input may bring the simulator down, but a panic is a bug the fuzz test looks for.
			s.panics.Add(1)
			s.log.Error("sim: recovered panic", "op", opName, "panic", v, "stack", string(debug.Stack()))
			if !sw.wrote {
				writeJSON(sw, http.StatusInternalServerError, envelope{ErrorCode: codeInternal, ErrorMsg: ptr(codes[codeInternal].msg)})
			}
		}
		s.log.Debug("sim request", "op", opName, "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "request_id", r.Header.Get("X-Request-Id"), "took", time.Since(start))
	}()

	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		opName = "admin"
		s.serveAdmin(sw, r)
		return
	}
	if r.URL.Path == "/v3/auth/tokens" {
		opName = OpIAM
		if r.Method != http.MethodPost {
			writeIAMError(sw, http.StatusMethodNotAllowed, "Method Not Allowed", "The method is not allowed for the requested URL.")
			return
		}
		s.calls[OpIAM].Add(1)
		s.pipeline(sw, r, OpIAM, func(w http.ResponseWriter, body []byte) { s.serveIAM(w, r, body) })
		return
	}
	op, params := route(r.Method, r.URL.Path)
	if op == nil {
		// What APIG answers for a path or method it does not publish.
		writeJSON(sw, http.StatusNotFound, envelope{ErrorCode: codeAPIGWNoAPI,
			ErrorMsg: ptr("The API does not exist or has not been published in the environment")})
		return
	}
	opName = op.name
	s.calls[op.name].Add(1)
	s.load[op.name].enter()
	defer s.load[op.name].leave()
	s.pipeline(sw, r, op.name, func(w http.ResponseWriter, body []byte) {
		s.remember(op.name, r.Header.Get("X-Request-Id"), r.URL.Query(), body)
		c := &call{s: s, w: w, r: r, op: op, params: params, body: body, now: s.clock.Now()}
		c.serve()
	})
}

// pipeline applies the faults of op, reads the body and hands the request to serve. A "truncated" fault lets the
// request run to the end into a buffer and sends half of it; a "done-503" fault lets it run and sends a 503 page.
func (s *Server) pipeline(w http.ResponseWriter, r *http.Request, op string, serve func(http.ResponseWriter, []byte)) {
	// The body is read before any fault: net/http notices a client that goes away only once the body has been
	// read, and a latency fault must end (without running the operation) when its client gives up.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, envelope{ErrorCode: codeBadParam, ErrorMsg: ptr("request body larger than 12 MB")})
			return
		}
		writeJSON(w, http.StatusBadRequest, envelope{ErrorCode: codeBadParam, ErrorMsg: ptr("cannot read request body")})
		return
	}
	f, ok := s.faults.apply(s, w, r, op)
	if !ok {
		return // the fault answered (or the client went away during a latency fault)
	}
	if f != nil && f.Kind == FaultDone503 {
		serve(newRecorder(), body) // the work is done; its answer is lost
		writeHTML(w, http.StatusServiceUnavailable, "503 Service Temporarily Unavailable")
		return
	}
	if f != nil && f.Kind == FaultTruncated {
		rec := newRecorder()
		serve(rec, body)
		half := rec.body.Bytes()[:rec.body.Len()/2]
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(half)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(half)
		return
	}
	serve(w, body)
}

// serve runs the checks every operation shares, in the order a real gateway and backend would: authentication
// (APIG), project, request id, then the operation itself.
func (c *call) serve() {
	reqID, haveReqID := c.requestID()
	if haveReqID && requestIDPattern.MatchString(reqID) {
		c.w.Header().Set("X-Request-Id", reqID)
	}
	if !c.s.authenticate(c) {
		return
	}
	if p := c.r.Header.Get("X-Project-Id"); p != "" && p != c.s.cfg.Project.ID {
		c.fail(codeNoProject)
		return
	}
	switch {
	case haveReqID && !requestIDPattern.MatchString(reqID):
		c.fail(codeBadRequestID)
		return
	case !haveReqID && c.op.reqID != reqIDOptional:
		c.fail(codeNoRequestID)
		return
	}
	c.op.handle(c.s, c)
}

// requestID returns the x-request-id the operation takes (the query parameter for ListInstances, whose table
// lists it there; the header elsewhere) and whether it was sent.
func (c *call) requestID() (string, bool) {
	if c.op.reqID == reqIDQuery {
		id := c.r.URL.Query().Get("x-request-id")
		return id, id != ""
	}
	// An empty header is as good as none: clients that send one meant to send nothing.
	id := c.r.Header.Get("X-Request-Id")
	return id, id != ""
}

// route finds the operation for a method and path; path parameters come back in order.
func route(method, path string) (*operation, []string) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := range operations {
		op := &operations[i]
		if op.method != method {
			continue
		}
		pat := strings.Split(strings.TrimPrefix(op.path, "/"), "/")
		if len(pat) != len(segs) {
			continue
		}
		var params []string
		match := true
		for j, p := range pat {
			switch {
			case p == "{}" && segs[j] != "":
				params = append(params, segs[j])
			case p != segs[j]:
				match = false
			}
			if !match {
				break
			}
		}
		if match {
			return op, params
		}
	}
	return nil, nil
}

// envelope is every KooPhone answer. SyncCommand's 400 and 500 bodies carry error_info instead of error_msg, as
// its tables say.
type envelope struct {
	Data      json.RawMessage `json:"data,omitempty"`
	ErrorCode string          `json:"error_code"`
	ErrorMsg  *string         `json:"error_msg,omitempty"`
	ErrorInfo *string         `json:"error_info,omitempty"`
}

// ok answers success with data (nil: no data member, as SetVideoConfig's example).
func (c *call) ok(data any) {
	env := envelope{ErrorCode: codeOK, ErrorMsg: ptr(c.op.okMsg)}
	if data != nil {
		raw, err := json.Marshal(data)
		if err != nil {
			c.fail(codeInternal)
			return
		}
		env.Data = raw
	}
	writeJSON(c.w, http.StatusOK, env)
}

// fail answers a KooPhone error with the status and message of the seed's table.
func (c *call) fail(code string) { c.failMsg(code, codes[code].msg) }

// failMsg answers a KooPhone error with a specific message.
func (c *call) failMsg(code, msg string) {
	c.s.countAnswer(code)
	status := codeStatus(code)
	env := envelope{ErrorCode: code}
	if c.op.name == "SyncCommand" && (status == http.StatusBadRequest || status >= 500) {
		env.ErrorInfo = &msg
	} else {
		env.ErrorMsg = &msg
	}
	writeJSON(c.w, status, env)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error_code":"KOOPHONE.API.9999","error_msg":"未知错误"}`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func ptr[T any](v T) *T { return &v }

// statusWriter remembers the status for logs and whether anything was written, for the panic handler. Unwrap lets
// http.ResponseController reach the connection for the "drop" fault.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recorder buffers an answer so the "truncated" fault can cut it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, status: http.StatusOK} }

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.status = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
