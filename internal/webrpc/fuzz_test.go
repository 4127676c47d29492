package webrpc

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// Whatever a caller sends to a Connect path (method, content type, encodings, body), the handler answers without
// panicking and without a server error: a call, or a refusal with a status.
func FuzzHandler(f *testing.F) {
	e := start(f, Config{MaxBodyBytes: 4096, CORSOrigins: []string{"http://page.test"}}, nil)
	f.Add("POST", "ListInstances", "application/json", "1", "", []byte(`{"pageNo":1}`))
	f.Add("POST", "ListInstances", "application/proto", "1", "", []byte{0x08, 0x01})
	f.Add("POST", "WatchTask", "application/connect+json", "", "", []byte("\x00\x00\x00\x00\x02{}"))
	f.Add("POST", "ListInstances", "application/grpc-web+proto", "", "", []byte("\x00\x00\x00\x00\x00"))
	f.Add("POST", "ListInstances", "application/grpc-web+proto", "", "gzip", []byte("\x01\x00\x00\x00\x01x"))
	f.Add("GET", "ListInstances?connect=v1&encoding=json&message=%7B%7D", "", "", "", []byte(nil))
	f.Add("POST", "NoSuch", "application/json", "1", "", []byte(`{`))
	f.Add("PUT", "ListInstances", "text/plain", "", "", []byte(`x`))
	f.Fuzz(func(t *testing.T, method, rest, contentType, version, encoding string, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, e.url+"/koophone.v1.InstanceService/"+rest, bytes.NewReader(body))
		if err != nil {
			return // not a request net/http can send
		}
		for k, v := range map[string]string{"Content-Type": contentType, "Connect-Protocol-Version": version, "Grpc-Encoding": encoding} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return // refused by net/http on either side (a header value it will not send, say)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode >= 500 && res.StatusCode != http.StatusNotImplemented && res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s %s (%q, version %q, encoding %q, %d bytes): HTTP %d", method, rest, contentType, version, encoding, len(body), res.StatusCode)
		}
	})
}
