package sim

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// Published vectors, checked against the verifier itself (the requests target paths the simulator does not
// route, so they go straight to verifySignature).
func TestSignatureVectors(t *testing.T) {
	for _, tc := range []struct {
		name, ak, sk, method, target, body, date string
		headers                                  map[string]string
		authorization                            string
	}{
		{
			// Huawei "API签名指南", AK/SK签名认证算法详解: the worked example (构造规范请求 → 计算签名 → 添加签名信息到
			// 请求头), whose hashed canonical request is b25362e6… and whose signature is 7be66680….
			name: "APIG guide example", ak: "QTWAOYTTINDUT2QVKYUC", sk: "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",
			method: "GET", target: "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0",
			date:    "20191115T033655Z",
			headers: map[string]string{"Content-Type": "application/json"},
			authorization: "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, " +
				"Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe",
		},
		{
			// huaweicloud-sdk-go-v3 core/auth/signer/signer_test.go, testParam1 (the SDK leaves the header with an
			// underscore out of SignedHeaders).
			name: "SDK test1", ak: "AccessKey", sk: "SecretKey",
			method: "GET", target: "https://example.huaweicloud.com/path?limit=1", date: "20060102T150405Z",
			headers: map[string]string{"TEST_UNDERSCORE": "TEST_VALUE"},
			authorization: "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, " +
				"Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
		},
		{
			// Same file, testParam2: a JSON body as the SDK encodes it (json.Encoder, so with a final newline).
			name: "SDK test2", ak: "AccessKey", sk: "SecretKey",
			method: "POST", target: "https://example.huaweicloud.com/path?key=value", date: "20060102T150405Z",
			body:    "{\"Name\":\"test\",\"Id\":1}\n",
			headers: map[string]string{"TEST_UNDERSCORE": "TEST_VALUE", "Content-Type": "application/json"},
			authorization: "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, " +
				"Signature=cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, _ := time.Parse(sdkDateFormat, tc.date)
			s := New(Config{Clock: clock.NewFake(at.Add(5 * time.Minute)), AccessKeys: []AccessKey{{tc.ak, tc.sk}}})
			r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			r.Header.Set("X-Sdk-Date", tc.date)
			r.Header.Set("Authorization", tc.authorization)
			if err := s.verifySignature(r, []byte(tc.body), s.clock.Now()); err != nil {
				t.Fatalf("published vector rejected: %v", err)
			}
			// One byte of the body, query or signature changed: rejected.
			if tc.body != "" {
				bad := []byte(tc.body)
				bad[2] ^= 1
				if err := s.verifySignature(r, bad, s.clock.Now()); err == nil {
					t.Error("changed body accepted")
				}
			}
			r2 := httptest.NewRequest(tc.method, tc.target+"0", strings.NewReader(tc.body))
			r2.Header = r.Header.Clone()
			if err := s.verifySignature(r2, []byte(tc.body), s.clock.Now()); err == nil {
				t.Error("changed query accepted")
			}
			// Outside the 15-minute window either way.
			if err := s.verifySignature(r, []byte(tc.body), at.Add(16*time.Minute)); err == nil || !strings.Contains(err.Error(), "expired") {
				t.Errorf("stale date: %v", err)
			}
			if err := s.verifySignature(r, []byte(tc.body), at.Add(-16*time.Minute)); err == nil {
				t.Error("date from the future accepted")
			}
		})
	}
}

func TestCanonicalPieces(t *testing.T) {
	if got := canonicalURI("/v1/instances/tasks/RM_ab"); got != "/v1/instances/tasks/RM_ab/" {
		t.Errorf("canonicalURI = %q", got)
	}
	if got := canonicalURI("/"); got != "/" {
		t.Errorf("canonicalURI(/) = %q", got)
	}
	// The SDK's own expectation for its canonical query (signer_test.go TestSigner_canonicalQueryString).
	q, err := canonicalQuery("limit=1&enable=true&test=%E4%B8%80%20(%26%3D%3F!%23%25.*)&path=%2Ftmp%2F123&multi=3&multi=1&multi=2")
	want := "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
	if err != nil || q != want {
		t.Errorf("canonicalQuery = %q, %v\nwant %q", q, err, want)
	}
}
