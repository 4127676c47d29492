package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// FlexString decodes a JSON string, number, boolean or null into a string, for the fields where the seed's
// examples and tables disagree on the type (ports, audio types, pool ids, expiry). null decodes as "".
type FlexString string

// UnmarshalJSON accepts a string, a number, a boolean or null.
func (f *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = FlexString(s)
	case bytes.Equal(b, []byte("true")) || bytes.Equal(b, []byte("false")):
		*f = FlexString(b)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want string or number, got %.20s", b)
		}
		*f = FlexString(n.String())
	}
	return nil
}

// Int returns the value as an integer, and whether it is one.
func (f FlexString) Int() (int64, bool) {
	n, err := strconv.ParseInt(string(f), 10, 64)
	return n, err == nil
}

// NullableString decodes a JSON string where null and the literal string "null" (ListInstances' phone_id) both
// mean "no value".
type NullableString string

// UnmarshalJSON accepts a string or null; "null" becomes "".
func (n *NullableString) UnmarshalJSON(b []byte) error {
	var f FlexString
	if err := f.UnmarshalJSON(b); err != nil {
		return err
	}
	if f == "null" {
		f = ""
	}
	*n = NullableString(f)
	return nil
}
