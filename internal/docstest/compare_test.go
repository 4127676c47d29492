package docstest

import (
	"strings"
	"testing"
)

// The comparison must catch what a stale page gets wrong, and let through what a page elides.
func TestCompare(t *testing.T) {
	const page = `HTTP/1.1 404 Not Found
Content-Type: application/json
X-Request-Id: 1024fc3b-d501-424e-8862-49742d5cb04c

{"error":{"code":5, "message":"task does not exist", "details":[{"reason":"KOOPHONE.API.1323", "metadata":{"request_id":"1024fc3b-d501-424e-8862-49742d5cb04c"}}]}}`
	const same = `HTTP/1.1 404 Not Found
Content-Type: application/json
X-Request-Id: 0b5b7a2e-1c1d-4f2a-9d55-2a1f0e3c4b5a
Date: Sun, 06 Dec 2026 01:56:06 GMT

{"error":{"code":5,"message":"task does not exist","details":[{"reason":"KOOPHONE.API.1323","metadata":{"request_id":"0b5b7a2e-1c1d-4f2a-9d55-2a1f0e3c4b5a"}}]}}`
	for _, c := range []struct {
		name, want, got string
		ok              bool
	}{
		{"same shape, other ids", page, same, true},
		{"other status", page, strings.Replace(same, "404 Not Found", "415 Unsupported Media Type", 1), false},
		{"missing header", page, strings.Replace(same, "X-Request-Id: 0b5b7a2e-1c1d-4f2a-9d55-2a1f0e3c4b5a\n", "", 1), false},
		{"other reason", page, strings.Replace(same, "KOOPHONE.API.1323", "KOOPHONE.API.1001", 1), false},
		{"other code", page, strings.Replace(same, `"code":5`, `"code":3`, 1), false},
		{"key not on the page", page, strings.Replace(same, `"code":5,`, `"code":5,"extra":1,`, 1), false},
		{"key missing", page, strings.Replace(same, `"message":"task does not exist",`, ``, 1), false},
		{"not a UUID", page, strings.Replace(same, `"request_id":"0b5b7a2e-1c1d-4f2a-9d55-2a1f0e3c4b5a"`, `"request_id":"x"`, 1), false},
		{"elided member and element", `{"result":[{"id":"a", ...}, …], "n":2}`, `{"result":[{"id":"a","b":1},{"id":"c"}],"n":2}`, true},
		{"elided element missing", `{"result":[{"id":"a"}, {"id":"b"}, …]}`, `{"result":[{"id":"a"}]}`, false},
		{"array longer than shown", `{"result":[{"id":"a"}]}`, `{"result":[{"id":"a"},{"id":"b"}]}`, false},
		{"ellipsis in a string", `{"msg":"Current state:\n  AC: true\n ..."}`, `{"msg":"Current state:\n  AC: true\n  USB: false"}`, true},
		{"ellipsis, other start", `{"msg":"Current state:\n ..."}`, `{"msg":"Other"}`, false},
		{"elided id", `{"task_id":"c7e8…"}`, `{"task_id":"0123abcd"}`, true},
		{"cut off", "{\n  \"result\": [\n    {\n      \"id\": \"a\",\n      ...", `{"result":[{"id":"a","b":2}],"n":1}`, true},
		{"text lines", "grpc.health.v1.Health\nkoophone.v1.AppService", "grpc.health.v1.Health\nkoophone.v1.AppService", true},
		{"text line more", "grpc.health.v1.Health", "grpc.health.v1.Health\nkoophone.v1.NewService", false},
		{"grpcurl details", "ERROR:\n  Code: NotFound\n  Details:\n  1)\t{\n    \t  \"reason\": \"X\"\n    \t}",
			"ERROR:\n  Code: NotFound\n  Details:\n  1)\t{\n    \t  \"reason\": \"X\"\n    \t}", true},
		{"grpcurl details differ", "ERROR:\n  Code: NotFound\n  Details:\n  1)\t{\n    \t  \"reason\": \"X\"\n    \t}",
			"ERROR:\n  Code: NotFound\n  Details:\n  1)\t{\n    \t  \"reason\": \"Y\"\n    \t}", false},
		{"NDJSON", "{\"a\":1}\n{\"a\":2}", "{\"a\":1}\n{\"a\":2}\n", true},
		{"NDJSON line missing", "{\"a\":1}\n{\"a\":2}", "{\"a\":1}\n", false},
	} {
		d := Compare(c.want, c.got)
		if (d == "") != c.ok {
			t.Errorf("%s: Compare = %q, want ok=%v", c.name, d, c.ok)
		}
	}
}

// Pages and commands are text from outside the test: no input makes the comparison panic.
func FuzzCompare(f *testing.F) {
	f.Add(`{"a":[1, …], ...`, `{"a":[1,2]}`)
	f.Add("HTTP/1.1 200 OK\nX: y\n\n{\"a\":\"b…\"}", "HTTP/1.1 200 OK\n\n[]")
	f.Fuzz(func(t *testing.T, want, got string) { _ = Compare(want, got) })
}

func TestConsoleCommands(t *testing.T) {
	cmds := ConsoleCommands("$ a \\\n    b\nout 1\n\n$ c\n$ d\nout 2\n")
	if len(cmds) != 3 || cmds[0].Cmd != "a \\\n    b" || cmds[0].Output != "out 1" || cmds[1].Output != "" || cmds[2].Output != "out 2" {
		t.Fatalf("%q", cmds)
	}
}
