package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The browser attack from the issue: a page on another origin posts text/plain (no preflight needed) to reset
// phones. It is refused, as is a cross-origin JSON write and a form, and KooPhone never hears of any of them.
func TestCrossOriginAndTextPlainNeverReachKooPhone(t *testing.T) {
	e := newSecureEnv(t, secureOpts{args: []string{"--cors-origins=https://console.example"}})
	phone := e.sim.InstanceIDs()[0]
	body := fmt.Sprintf(`{"instance_ids":[%q]}`, phone)
	hc := http.DefaultClient
	for _, c := range []struct {
		name   string
		header []string
		want   int
	}{
		{"cross-origin text/plain", []string{"Origin", "http://evil.example", "Content-Type", "text/plain"}, http.StatusForbidden},
		{"same-origin text/plain", []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"form", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"cross-origin JSON", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"no content type", []string{"Content-Type", ""}, http.StatusUnsupportedMediaType},
	} {
		code, res := e.rest(hc, http.MethodPost, "/v1/instances/batch-reset", body, "", c.header...)
		if code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, res, c.want)
		}
		var body struct {
			Error map[string]any `json:"error"`
		}
		if err := json.Unmarshal([]byte(res), &body); err != nil || body.Error["message"] == nil {
			t.Errorf("%s: error body is not the mirror's {\"error\": status}: %q", c.name, res)
		}
	}
	if n := e.sim.Calls("BatchReset"); n != 0 {
		t.Fatalf("%d refused resets reached KooPhone", n)
	}
	// The allowed origin gets CORS answers and its JSON write goes through.
	req, _ := http.NewRequest(http.MethodOptions, e.base+"/v1/instances/batch-reset", nil)
	req.Header.Set("Origin", "https://console.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.Header.Get("Access-Control-Allow-Origin") != "https://console.example" {
		t.Errorf("preflight from the allowed origin: %d %v", res.StatusCode, res.Header)
	}
	if code, res := e.rest(hc, http.MethodPost, "/v1/instances/batch-reset", body, "", "Origin", "https://console.example", "Content-Type", "application/json; charset=utf-8"); code != http.StatusOK {
		t.Errorf("JSON from the allowed origin: %d %s", code, res)
	}
	if e.sim.Calls("BatchReset") != 1 {
		t.Error("the allowed reset did not reach KooPhone")
	}
}

// With a Host allow-list, a request for another name (DNS rebinding) is refused; health checks still answer.
func TestHostAllowList(t *testing.T) {
	e := newSecureEnv(t, secureOpts{args: []string{"--http-allowed-hosts=gateway.internal"}})
	if code, res := e.rest(http.DefaultClient, http.MethodGet, listPath, "", ""); code != http.StatusMisdirectedRequest {
		t.Errorf("Host 127.0.0.1: %d %s", code, res)
	}
	if code, res := e.rest(http.DefaultClient, http.MethodGet, listPath, "", "", "Host", "gateway.internal"); code != http.StatusOK {
		t.Errorf("Host gateway.internal: %d %s", code, res)
	}
	if code, _ := e.rest(http.DefaultClient, http.MethodGet, "/healthz", "", ""); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
}

// A handful of clients that send headers and then trickle nothing of the promised body are cut off by the body
// deadline; calls from others go on meanwhile.
func TestSlowBodiesCutOff(t *testing.T) {
	e := newSecureEnv(t, secureOpts{args: []string{"--http-body-timeout=300ms"}})
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", e.srv.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		if _, err := fmt.Fprintf(c, "POST /v1/instances/batch-query-status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"inst"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if code, res := e.rest(http.DefaultClient, http.MethodGet, listPath, "", ""); code != http.StatusOK {
		t.Errorf("a normal call while slow bodies hang: %d %s", code, res)
	}
	for i, c := range conns {
		// This bound only keeps a broken server from hanging the test; the server cuts the body after 300ms.
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(c)
		status, _ := r.ReadString('\n')
		var err error
		for err == nil {
			_, err = r.ReadString('\n')
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("slow body %d: the server still holds the connection (status line %q)", i, status)
		}
		if strings.HasPrefix(status, "HTTP/1.1 200") {
			t.Errorf("slow body %d answered 200", i)
		}
	}
	if e.sim.Calls("BatchQueryStatus") != 0 {
		t.Error("a cut-off body reached KooPhone")
	}
}
