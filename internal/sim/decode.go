package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// apiError is a KooPhone error an operation answers with.
type apiError struct {
	code, msg string
}

func errCode(code string) *apiError { return &apiError{code: code, msg: codes[code].msg} }

func apiErr(code, detail string) *apiError {
	return &apiError{code: code, msg: codes[code].msg + ": " + detail}
}

// badParam is KOOPHONE.API.1000 with a word on what was wrong, so a client's author can tell.
func badParam(format string, args ...any) *apiError {
	return apiErr(codeBadParam, fmt.Sprintf(format, args...))
}

// locked runs f with the state locked and answers with its result once the lock is released, so a slow client
// never holds up the others.
func (c *call) locked(f func() (any, *apiError)) {
	c.s.mu.Lock()
	data, e := f()
	c.s.mu.Unlock()
	c.answer(data, e)
}

func (c *call) answer(data any, e *apiError) {
	if e != nil {
		c.failMsg(e.code, e.msg)
		return
	}
	c.ok(data)
}

// decode parses the body strictly into v: JSON, one value, every member named exactly as documented (json.Unmarshal
// alone would match names case-insensitively and ignore unknown ones), every value of the documented type.
func (c *call) decode(v any) *apiError {
	if err := decodeStrict(c.body, v); err != nil {
		return badParam("%v", err)
	}
	return nil
}

func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("request body is empty")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var generic any
	if err := d.Decode(&generic); err != nil {
		return fmt.Errorf("request body is not JSON: %v", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("request body holds more than one JSON value")
	}
	if err := checkMembers(generic, reflect.TypeOf(v), ""); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s must be a JSON %s", fieldName(te), expected(te.Type))
		}
		return err
	}
	return nil
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// checkMembers walks a decoded JSON value beside the Go type it will be decoded into, and rejects any object
// member that the type does not declare with exactly that name. Type mismatches are left to json.Unmarshal.
func checkMembers(v any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		for name, val := range obj {
			f, ok := fieldByJSONName(t, name)
			if !ok {
				return fmt.Errorf("unknown field %q", join(path, name))
			}
			if err := checkMembers(val, f.Type, join(path, name)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, val := range arr {
			if err := checkMembers(val, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func fieldName(te *json.UnmarshalTypeError) string {
	if te.Field != "" {
		return te.Field
	}
	return "request body"
}

func expected(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "integer"
	case reflect.Float64, reflect.Float32:
		return "number"
	case reflect.Slice:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Bool:
		return "boolean"
	}
	return t.String()
}

// Limits shared by every operation (digest: "instance id ≤ 32 chars, user id ≤ 32 chars, any id list ≤ 100").
const (
	maxIDs    = 100
	maxIDLen  = 32
	maxCmdLen = 1024
)

// checkIDs validates a list of instance ids: 1..100 entries, each 1..32 characters.
func checkIDs(field string, ids []string) *apiError {
	if len(ids) == 0 || len(ids) > maxIDs {
		return badParam("%s must hold 1 to %d instance ids", field, maxIDs)
	}
	for i, id := range ids {
		if id == "" || len(id) > maxIDLen {
			return badParam("%s[%d] must be 1 to %d characters", field, i, maxIDLen)
		}
	}
	return nil
}

// checkID validates one id field (instance or user): 1..32 characters.
func checkID(field, id string) *apiError {
	if id == "" || len(id) > maxIDLen {
		return badParam("%s must be 1 to %d characters", field, maxIDLen)
	}
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }
