package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustDate(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(sdkDateFormat, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Vectors of github.com/huaweicloud/huaweicloud-sdk-go-v3, core/auth/signer/signer_test.go (TestSigner_Sign),
// commit 1cd70eb6f730ea721771a6ec8d96352bbb801787. Inputs are the SDK test's own: its header maps go through the
// SDK's header selection (no Content-Type, no underscore names), its POST body is what the SDK's json.Encoder
// writes for TestBody{Name: "test", Id: 1}, trailing newline included.
func TestSignSDKVectors(t *testing.T) {
	cases := []struct {
		name    string
		method  string
		url     string
		headers map[string]string
		body    string
		cr      string
		auth    string
	}{
		{
			name: "test1", method: "GET", url: "https://example.huaweicloud.com/path?limit=1",
			headers: map[string]string{"X-Sdk-Date": "20060102T150405Z", "TEST_UNDERSCORE": "TEST_VALUE"},
			cr:      "GET\n/path/\nlimit=1\nx-sdk-date:20060102T150405Z\n\nx-sdk-date\n" + emptySHA256,
			auth: "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, " +
				"Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
		},
		{
			name: "test2", method: "POST", url: "https://example.huaweicloud.com/path?key=value",
			headers: map[string]string{"X-Sdk-Date": "20060102T150405Z", "TEST_UNDERSCORE": "TEST_VALUE",
				"Content-Type": "application/json"},
			body: "{\"Name\":\"test\",\"Id\":1}\n",
			cr: "POST\n/path/\nkey=value\nx-sdk-date:20060102T150405Z\n\nx-sdk-date\n" +
				"a29d7b4c5efd1a22011d69fd7b7aee76fe51e4083c609244228de258afd61289",
			auth: "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, " +
				"Signature=cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := sign("AccessKey", "SecretKey", signInput{
				Method: tc.method, URL: mustURL(t, tc.url), Headers: sdkSignedHeaders(tc.headers),
				Body: []byte(tc.body), Date: mustDate(t, "20060102T150405Z"),
			})
			if s.CanonicalRequest != tc.cr {
				t.Errorf("canonical request\n got %q\nwant %q", s.CanonicalRequest, tc.cr)
			}
			if s.Authorization != tc.auth {
				t.Errorf("authorization\n got %s\nwant %s", s.Authorization, tc.auth)
			}
		})
	}
}

// The worked example of Huawei's APIG signing guide ("AK/SK签名认证算法详解"; English:
// https://support.huaweicloud.com/intl/en-us/devg-apisign/api-sign-algorithm-002.html to -005.html): every
// intermediate value is published.
func TestSignAPIGGuideVector(t *testing.T) {
	s := sign("QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc", signInput{
		Method: "GET",
		URL:    mustURL(t, "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0"),
		Host:   "service.region.example.com",
		Headers: map[string]string{
			"Content-Type": "application/json", "Host": "", "X-Sdk-Date": "20191115T033655Z",
		},
		Date: mustDate(t, "20191115T033655Z"),
	})
	wantCR := "GET\n" +
		"/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n" +
		"limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n" +
		"content-type:application/json\n" +
		"host:service.region.example.com\n" +
		"x-sdk-date:20191115T033655Z\n" +
		"\n" +
		"content-type;host;x-sdk-date\n" +
		emptySHA256
	wantSTS := "SDK-HMAC-SHA256\n20191115T033655Z\nb25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
	wantAuth := "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, " +
		"Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
	if s.CanonicalRequest != wantCR {
		t.Errorf("canonical request\n got %q\nwant %q", s.CanonicalRequest, wantCR)
	}
	if s.StringToSign != wantSTS {
		t.Errorf("string to sign\n got %q\nwant %q", s.StringToSign, wantSTS)
	}
	if s.Authorization != wantAuth {
		t.Errorf("authorization\n got %s\nwant %s", s.Authorization, wantAuth)
	}
}

// The SDK's TestSigner_canonicalQueryString: sorting, repeated keys, and its escaping.
func TestCanonicalQuerySDKVector(t *testing.T) {
	q := url.Values{
		"limit":  {"1"},
		"enable": {"true"},
		"test":   {"一 (&=?!#%.*)"},
		"path":   {"/tmp/123"},
		"multi":  {"3", "1", "2"},
	}
	want := "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
	if got := canonicalQuery(q); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// APIG escaping is not url.QueryEscape nor url.PathEscape.
func TestAPIGEscape(t *testing.T) {
	cases := map[string]string{
		"a b":      "a%20b", // QueryEscape: a+b
		"a*b":      "a%2Ab",
		"~-_.":     "~-_.",
		"a:b@c":    "a%3Ab%40c", // PathEscape keeps ":" and "@"
		"x+y=z&w":  "x%2By%3Dz%26w",
		"é":        "%C3%A9",
		"(!)$,;'/": "%28%21%29%24%2C%3B%27%2F",
	}
	for in, want := range cases {
		if got := apigEscape(in); got != want {
			t.Errorf("apigEscape(%q) = %q, want %q", in, got, want)
		}
	}
	if url.QueryEscape("a b") == apigEscape("a b") || url.PathEscape("a:b") == apigEscape("a:b") {
		t.Error("expected APIG escaping to differ from net/url")
	}
}

func TestCanonicalURI(t *testing.T) {
	cases := map[string]string{
		"https://h":                            "/",
		"https://h/":                           "/",
		"https://h/v1/instances/tasks/RM_1":    "/v1/instances/tasks/RM_1/",
		"https://h/v1/tasks/a%2Fb%20c":         "/v1/tasks/a%2Fb%20c/",
		"https://h/v1/tasks/a:b":               "/v1/tasks/a%3Ab/",
		"https://h/v1/instances/sku?type=0":    "/v1/instances/sku/",
		"https://h/prefix/v1/instances/reboot": "/prefix/v1/instances/reboot/",
	}
	for in, want := range cases {
		if got := canonicalURI(mustURL(t, in)); got != want {
			t.Errorf("canonicalURI(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestSignatureCoversEveryBodyByte(t *testing.T) {
	in := signInput{
		Method: "POST", URL: mustURL(t, "https://koophone.myhuaweicloud.com/v1/instances/create"),
		Host: "koophone.myhuaweicloud.com", Headers: map[string]string{"host": "", "x-sdk-date": "20251120T080000Z"},
		Body: []byte(`{"count":1,"os":"AOSP11"}`), Date: mustDate(t, "20251120T080000Z"),
	}
	base := sign("AK", "SK", in).Authorization
	for i := range in.Body {
		b := append([]byte(nil), in.Body...)
		b[i] ^= 0x01
		changed := in
		changed.Body = b
		if sign("AK", "SK", changed).Authorization == base {
			t.Fatalf("flipping body byte %d did not change the signature", i)
		}
	}
	other := in
	other.Date = in.Date.Add(time.Second)
	if sign("AK", "SK", other).Authorization == base || sign("AK", "SK2", in).Authorization == base {
		t.Fatal("date or key change did not change the signature")
	}
}

// End to end: what the client puts on the wire is exactly what it signed, with the client's clock and project.
func TestAKSKOnTheWire(t *testing.T) {
	const ak, sk = "AKTESTAKTEST", "SK-SECRET-do-not-leak"
	fc := clocktest.NewFake(time.Date(2025, 11, 20, 8, 30, 5, 0, time.UTC))
	var u *fakeUpstream
	u = newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
		rec := u.requests()[n-1]
		if err := verifySignature(r, rec.Body, ak, sk); err != nil {
			reply(w, 401, fmt.Sprintf(`{"error_code":"APIG.0301","error_msg":%q}`, err.Error()))
			return
		}
		reply(w, 200, okBody)
	})
	c := newClient(t, u.URL, func(cfg *Config) { cfg.Auth = NewAKSK(ak, sk, "9d71ec45aef04d84a991c12250227b5c"); cfg.Clock = fc })
	ctx := requestid.With(context.Background(), "rid-1")
	if _, err := c.ListInstances(ctx, ListInstancesRequest{PageNo: 1, PageSize: 10, InstanceName: "a b:c*(d)",
		QueryStartTime: "2024-05-24 17:34:58"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetTask(ctx, "RM_1/2 3"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InstallApp(ctx, InstallAppRequest{InstallPackageURL: "https://o.example.com/a.apk?x=1&y=é"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDeviceToken(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	for _, rec := range u.requests() {
		h := rec.Header
		if h.Get("X-Sdk-Date") != fc.Now().UTC().Format("20060102T150405Z") || h.Get("X-Project-Id") != "9d71ec45aef04d84a991c12250227b5c" {
			t.Errorf("X-Sdk-Date %q X-Project-Id %q", h.Get("X-Sdk-Date"), h.Get("X-Project-Id"))
		}
		if !strings.HasPrefix(h.Get("Authorization"), "SDK-HMAC-SHA256 Access="+ak+", SignedHeaders=host;x-project-id;x-sdk-date, Signature=") {
			t.Errorf("Authorization %q", h.Get("Authorization"))
		}
		if h.Get("X-Auth-Token") != "" {
			t.Error("AK/SK request also carries a token")
		}
	}
}

// verifySignature recomputes the signature from the request as the server received it.
func verifySignature(r *http.Request, body []byte, ak, sk string) error {
	authz := r.Header.Get("Authorization")
	var gotAK, signed, sig string
	if _, err := fmt.Sscanf(strings.ReplaceAll(authz, ",", ""), "SDK-HMAC-SHA256 Access=%s SignedHeaders=%s Signature=%s",
		&gotAK, &signed, &sig); err != nil {
		return fmt.Errorf("malformed Authorization: %v", err)
	}
	if gotAK != ak {
		return fmt.Errorf("unknown access key")
	}
	headers := map[string]string{}
	for _, name := range strings.Split(signed, ";") {
		headers[name] = r.Header.Get(name)
	}
	date, err := time.Parse(sdkDateFormat, r.Header.Get("X-Sdk-Date"))
	if err != nil {
		return err
	}
	want := sign(ak, sk, signInput{Method: r.Method, URL: r.URL, Host: r.Host, Headers: headers, Body: body, Date: date})
	if want.Authorization != authz {
		return fmt.Errorf("signature mismatch; server canonical request %q", want.CanonicalRequest)
	}
	return nil
}
