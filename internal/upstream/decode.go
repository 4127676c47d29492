package upstream

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// envelope is the frame of every KooPhone answer. The fields are raw so that an unexpected type in one of them
// (a numeric error_code, an object as error_msg) degrades to text instead of failing the whole decode. The seed's
// own example repeats "error_code"; encoding/json keeps the last one, which is what we want.
type envelope struct {
	ErrorCode json.RawMessage `json:"error_code"`
	ErrorMsg  json.RawMessage `json:"error_msg"`
	ErrorInfo json.RawMessage `json:"error_info"` // some 400/500 answers name the message this way
	Data      json.RawMessage `json:"data"`
}

// code returns the envelope's error code and whether it has one.
func (e *envelope) code() (string, bool) {
	c := rawText(e.ErrorCode)
	return c, c != ""
}

func (e *envelope) message() string {
	if m := rawText(e.ErrorMsg); m != "" {
		return m
	}
	return rawText(e.ErrorInfo)
}

// rawText renders a JSON value as text: strings unquoted, null and absent as "", anything else verbatim (bounded,
// since it ends up in error messages).
func rawText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	if raw[0] == '"' {
		if s, ok := plainString(raw); ok {
			return s
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	const limit = 200
	if len(raw) > limit {
		return string(raw[:limit]) + "…"
	}
	return string(raw)
}

// plainString unquotes a JSON string that needs no decoding (no escapes, no control characters, valid UTF-8),
// as encoding/json would, without its machinery: the error_code and error_msg of every answer ("0", "ok").
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	for _, c := range in {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// decodeResponse turns one HTTP answer into either out (filled from the envelope's data) or an *Error carrying
// Kind, Code, Message and HTTPStatus; the caller adds the call's identity (Op, RequestID, Attempts).
//
// Success is error_code "0" and nothing else, whatever the HTTP status: the seed returns many errors with 200.
// With codeInData, an error_code inside data counts as well (ListInstances documents it there, its example at the
// top level); a non-"0" code at either level is an error.
func decodeResponse(status int, body []byte, codeInData bool, out any) *Error {
	if !codeInData && out != nil {
		return decodeInto(status, body, out)
	}
	return decodeTwoPass(status, body, codeInData, out)
}

// decodeTwoPass keeps data raw, then decodes it: for codes inside data, and for answers without a result.
func decodeTwoPass(status int, body []byte, codeInData bool, out any) *Error {
	success := status >= 200 && status < 300
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		if success {
			return &Error{Kind: KindDecode, HTTPStatus: status, Message: "answer is not a JSON envelope", Err: err}
		}
		return &Error{Kind: KindHTTP, HTTPStatus: status, Message: http.StatusText(status)}
	}
	code, hasCode := env.code()
	msg := env.message()
	if codeInData && isObject(env.Data) {
		var inner envelope
		if json.Unmarshal(env.Data, &inner) == nil {
			if c, ok := inner.code(); ok && (!hasCode || (code == "0" && c != "0")) {
				code, msg, hasCode = c, inner.message(), true
			}
		}
	}
	if e := frameVerdict(status, code, hasCode, msg); e != nil {
		return e
	}
	if out == nil || len(env.Data) == 0 || bytes.Equal(bytes.TrimSpace(env.Data), []byte("null")) {
		return nil // no data is an empty result, not an error (DeleteInstance sends "data": null)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return &Error{Kind: KindDecode, HTTPStatus: status, Message: "data does not have the documented shape", Err: err}
	}
	return nil
}

// decodeInto is decodeResponse for answers whose code sits at the top level only, in one pass: data is decoded
// straight into out instead of being kept raw and decoded again (the envelope's double decode was ~9% of the
// gateway's CPU on a 10-phone BatchQueryStatus).
func decodeInto(status int, body []byte, out any) *Error {
	// encoding/json decodes into the non-nil pointer an interface field holds, so data lands in out directly.
	env := struct {
		ErrorCode json.RawMessage `json:"error_code"`
		ErrorMsg  json.RawMessage `json:"error_msg"`
		ErrorInfo json.RawMessage `json:"error_info"`
		Data      any             `json:"data"`
	}{Data: out}
	err := json.Unmarshal(body, &env)
	if err != nil {
		// A malformed answer, rare: decode it again the careful way, so its verdict is exactly decodeTwoPass's
		// (an error inside data can stop the decoder before it reads error_code).
		reflect.ValueOf(out).Elem().SetZero()
		return decodeTwoPass(status, body, false, out)
	}
	frame := envelope{ErrorCode: env.ErrorCode, ErrorMsg: env.ErrorMsg, ErrorInfo: env.ErrorInfo}
	code, hasCode := frame.code()
	return frameVerdict(status, code, hasCode, frame.message())
}

// frameVerdict is the error an envelope's code makes, or nil for success: "0" and nothing else, whatever the HTTP
// status.
func frameVerdict(status int, code string, hasCode bool, msg string) *Error {
	success := status >= 200 && status < 300
	switch {
	case !hasCode && success:
		return &Error{Kind: KindDecode, HTTPStatus: status, Message: "answer has no error_code"}
	case !hasCode:
		return &Error{Kind: KindHTTP, HTTPStatus: status, Message: http.StatusText(status)}
	case code != "0":
		return &Error{Kind: KindAPI, Code: code, Message: msg, HTTPStatus: status}
	}
	return nil
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// installAppData accepts both shapes the seed gives InstallApp's result: data{task_id, cmd_jobs} (its example)
// and data.data{task_id, cmd_jobs} (its table).
type installAppData struct {
	Task
	Data *Task `json:"data"`
}

func (d *installAppData) task() *Task {
	if d.Data != nil && d.TaskID == "" && len(d.CmdJobs) == 0 {
		return d.Data
	}
	return &d.Task
}

// parseRetryAfter reads a Retry-After header: delta-seconds or an HTTP date (relative to now). Anything
// unparsable, or in the past, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		const maxSeconds = int64(24 * time.Hour / time.Second) // guards the multiplication below
		return time.Duration(min(n, maxSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
