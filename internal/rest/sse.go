package rest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// The framing of a stream asked for as Server-Sent Events, for browsers' EventSource:
//
//	retry: 60000                 (first, once: EventSource's reconnection delay)
//	id: 1                        (results only: 1, 2, … or Last-Event-ID+1, +2, … on a resumed watch)
//	event: result
//	data: {"result": …}
//
//	event: error                 (at most once: the stream failed, before or after its first result)
//	data: {"error": google.rpc.Status}
//
//	event: end                   (always last: the stream is over; a page closes its EventSource here)
//	data: {"code": 0}            (the gRPC code the stream ended with)
//
// The answer is 200 even when the stream fails before its first message: EventSource turns any other status into
// a bare "error" Event without data, so a page could not read why. NDJSON streams keep the error's HTTP status.

// SSERetry is the reconnection delay every SSE stream sends. EventSource reconnects whenever a stream closes, even
// after "end"; a page closes it on "end", and this delay is the safety net for a page that does not (a finished
// watch answers again with its last snapshot and "end", once a minute rather than every three seconds). A
// connection that drops before "end" is resumed after it, with Last-Event-ID.
const SSERetry = time.Minute

// resumable are the streams a Last-Event-ID may resume: watches, which start with the current snapshot anyway.
// Any other stream would run again (a fleet command on every phone), so a Last-Event-ID there is refused.
var resumable = map[string]bool{
	pb.InstanceService_WatchTask_FullMethodName:            true,
	pb.InstanceService_WatchPrepareProgress_FullMethodName: true,
}

// streamState is what the stream's writer and the error handlers share for one streaming request.
type streamState struct {
	sse    bool
	lastID uint64         // the id of the last result event written (or the Last-Event-ID resumed from)
	err    *status.Status // the status the stream fails with, recorded by the error handlers before they write
}

type streamStateKey struct{}

func streamStateFrom(ctx context.Context) *streamState {
	s, _ := ctx.Value(streamStateKey{}).(*streamState)
	return s
}

// recordStreamError tells the stream's writer, if any, which status the next write carries.
func recordStreamError(ctx context.Context, st *status.Status) {
	if s := streamStateFrom(ctx); s != nil {
		s.err = st
	}
}

// streams is a grpc-gateway middleware for the server-streaming routes: it gives the handler a writer that frames
// SSE (ids, retry, end; errors on a 200) and adds Retry-After to an NDJSON stream refused with RetryInfo.
func (t *routeTable) streams(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
		rt := t.matched(r)
		if rt == nil || !rt.stream {
			next(w, r, pathParams)
			return
		}
		_, outbound := runtime.MarshalerForRequest(t.mux, r)
		_, sse := outbound.(*sseMarshaler)
		st := &streamState{sse: sse}
		sw := &streamWriter{ResponseWriter: w, st: st}
		r = r.WithContext(context.WithValue(r.Context(), streamStateKey{}, st))
		if v := r.Header.Get("Last-Event-ID"); v != "" {
			if !resumable[rt.rpc] {
				errorHandler(r.Context(), t.mux, outbound, sw, r, notResumable()) //nolint:contextcheck // r.Context() is the request's, with the stream state added
				sw.finish()
				return
			}
			// An id that is not ours (not a number) resumes as a fresh watch: the first snapshot is id 1.
			st.lastID, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
		next(sw, r, pathParams)
		sw.finish()
	}
}

func notResumable() error {
	const msg = "only WatchTask and WatchPrepareProgress resume from a Last-Event-ID; this stream would run again: follow its task with WatchTask instead"
	st, err := status.New(codes.InvalidArgument, fieldErrorPrefix+"header.Last-Event-ID: "+msg).WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
			Field: "header.Last-Event-ID", Description: msg, Reason: "header.not_resumable",
		}}})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// streamWriter sits between grpc-gateway's stream forwarding (or its error handler) and the connection. grpc-gateway
// writes each marshalled object in one Write ({"result": …} or {"error": …}, JSON) and the marshaler's delimiter in
// another; for SSE the delimiter is empty and this writer frames each object as an event.
type streamWriter struct {
	http.ResponseWriter
	st          *streamState
	wroteHeader bool
	wroteRetry  bool
}

func (s *streamWriter) WriteHeader(code int) {
	if s.wroteHeader {
		return
	}
	s.wroteHeader = true
	h := s.Header()
	if code >= 400 && s.st.err != nil {
		// Refused before the first message. grpc-gateway's stream error path sets no Retry-After of its own.
		if d, ok := retryDelay(s.st.err.Err()); ok && !s.st.sse {
			h.Set("Retry-After", retryAfterSeconds(d))
		}
	}
	if s.st.sse {
		// A page reads the error as an "error" event: EventSource drops the body of any status but 200.
		code = http.StatusOK
		h.Set("Content-Type", MIMESSE)
		h.Del("Content-Length")
		h.Set("Cache-Control", "no-cache")
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if !s.wroteHeader {
		s.WriteHeader(http.StatusOK)
	}
	if !s.st.sse {
		return s.ResponseWriter.Write(p)
	}
	if len(bytes.TrimSpace(p)) == 0 {
		return len(p), nil // the marshaler's (empty) delimiter: each event ends itself
	}
	var b bytes.Buffer
	s.retryField(&b)
	event := "result"
	if s.st.err != nil {
		event = "error"
	} else {
		s.st.lastID++
		fmt.Fprintf(&b, "id: %d\n", s.st.lastID)
	}
	fmt.Fprintf(&b, "event: %s\n", event)
	writeData(&b, p)
	if _, err := s.ResponseWriter.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// finish ends an SSE stream with its "end" event: the handler has returned, so nothing else will be written.
func (s *streamWriter) finish() {
	if !s.st.sse {
		return
	}
	if !s.wroteHeader {
		s.WriteHeader(http.StatusOK) // a stream that ended OK without a message still says so
	}
	code := codes.OK
	if s.st.err != nil {
		code = s.st.err.Code()
	}
	var b bytes.Buffer
	s.retryField(&b)
	fmt.Fprintf(&b, "event: end\ndata: {\"code\":%d}\n\n", code)
	if _, err := s.ResponseWriter.Write(b.Bytes()); err != nil {
		return // the client has gone
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *streamWriter) retryField(b *bytes.Buffer) {
	if !s.wroteRetry {
		s.wroteRetry = true
		fmt.Fprintf(b, "retry: %d\n", SSERetry.Milliseconds())
	}
}

// writeData writes JSON as an event's data, one "data:" line per line, and the blank line that ends the event.
func writeData(b *bytes.Buffer, data []byte) {
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
}

// Flush passes on: the stream forwarding flushes after each message.
func (s *streamWriter) Flush() {
	if !s.wroteHeader {
		s.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (s *streamWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
