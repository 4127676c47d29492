package upstream

// AK/SK request signing, "SDK-HMAC-SHA256", as Huawei Cloud's API gateway (APIG) verifies it.
//
// Followed:
//   - github.com/huaweicloud/huaweicloud-sdk-go-v3, core/auth/signer/signer.go (Signer.Sign, canonicalRequest,
//     canonicalURI, canonicalQueryString, canonicalHeaders, extractSignedHeaders, escape/shouldEscape) and its
//     signer_test.go, at commit 1cd70eb6f730ea721771a6ec8d96352bbb801787 (2026-03-13);
//   - the APIG guide "AK/SK签名认证算法详解" / "API Signature Authentication Mechanism",
//     https://support.huaweicloud.com/intl/en-us/devg-apisign/api-sign-algorithm-002.html (canonical request)
//     through -005.html (Authorization header), whose worked example is one of our test vectors.
//
// Where the two differ we follow the guide and say so: the guide signs Host (the SDK only signs headers present in
// its own header map, and its canonicalHeaders reads the host value before substituting the endpoint's, so Host
// never makes it in); we sign host, x-sdk-date and x-project-id.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

const (
	signAlgorithm = "SDK-HMAC-SHA256"
	sdkDateFormat = "20060102T150405Z"
	headerSdkDate = "X-Sdk-Date"
	headerProject = "X-Project-Id"
	headerAuthz   = "Authorization"
)

// signInput is everything a signature covers.
type signInput struct {
	Method  string
	URL     *url.URL          // its escaped path and raw query are what goes on the wire
	Host    string            // value signed as "host" when Headers contains "host"
	Headers map[string]string // the headers to sign, any case; each name is signed lowercased
	Body    []byte            // exactly the bytes sent
	Date    time.Time
}

// signature is a signed request's Authorization header with its intermediate steps (kept for tests and debugging;
// none of them contains the SK).
type signature struct {
	CanonicalRequest string
	StringToSign     string
	SignedHeaders    string
	Authorization    string
}

func sign(ak, sk string, in signInput) signature {
	names := make([]string, 0, len(in.Headers))
	values := make(map[string]string, len(in.Headers))
	for k, v := range in.Headers {
		k = strings.ToLower(k)
		if k == "host" && in.Host != "" {
			v = in.Host
		}
		names = append(names, k)
		values[k] = strings.TrimSpace(v)
	}
	sort.Strings(names)
	var canonHeaders strings.Builder
	for _, k := range names {
		canonHeaders.WriteString(k + ":" + values[k] + "\n")
	}
	signed := strings.Join(names, ";")
	bodyHash := sha256.Sum256(in.Body)
	cr := in.Method + "\n" +
		canonicalURI(in.URL) + "\n" +
		canonicalQuery(in.URL.Query()) + "\n" +
		canonHeaders.String() + "\n" +
		signed + "\n" +
		hex.EncodeToString(bodyHash[:])
	crHash := sha256.Sum256([]byte(cr))
	sts := signAlgorithm + "\n" + in.Date.UTC().Format(sdkDateFormat) + "\n" + hex.EncodeToString(crHash[:])
	mac := hmac.New(sha256.New, []byte(sk))
	mac.Write([]byte(sts))
	return signature{
		CanonicalRequest: cr,
		StringToSign:     sts,
		SignedHeaders:    signed,
		Authorization: signAlgorithm + " Access=" + ak + ", SignedHeaders=" + signed +
			", Signature=" + hex.EncodeToString(mac.Sum(nil)),
	}
}

// sdkSignedHeaders keeps the headers the Go SDK would sign out of a request's header map (extractSignedHeaders):
// it leaves out Content-Type and any name with an underscore (gateways and proxies drop those).
func sdkSignedHeaders(h map[string]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if strings.HasPrefix(strings.ToLower(k), "content-type") || strings.Contains(k, "_") {
			continue
		}
		out[k] = v
	}
	return out
}

// canonicalURI escapes each path segment with apigEscape and always ends with "/" (the SDK's canonicalURI). It
// starts from the escaped path so that an escaped "/" inside a segment (a task id, say) stays inside it.
func canonicalURI(u *url.URL) string {
	segs := strings.Split(u.EscapedPath(), "/")
	for i, s := range segs {
		if d, err := url.PathUnescape(s); err == nil {
			s = d
		}
		segs[i] = apigEscape(s)
	}
	p := strings.Join(segs, "/")
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// canonicalQuery sorts by key, then by value, and escapes both with apigEscape (the SDK's canonicalQueryString).
// The client sends its query in exactly this form, so what KooPhone's gateway sees is what was signed.
func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, apigEscape(k)+"="+apigEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

// apigEscape percent-encodes every byte except RFC 3986's unreserved set (A-Z a-z 0-9 - _ . ~), with upper-case
// hex: the SDK's escape/shouldEscape. Unlike url.QueryEscape it writes a space as %20, not "+", and it escapes
// "/", ":", "@", "!", "*", "(", ")" and the like, which url.PathEscape keeps.
func apigEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// akskAuth signs every request with an access key pair.
type akskAuth struct {
	ak, sk, projectID string
}

// NewAKSK returns an Authenticator that signs requests with the access key ak and secret key sk (APIG
// SDK-HMAC-SHA256), sending X-Project-Id when projectID is set. The signing time is the client's clock.
func NewAKSK(ak, sk, projectID string) Authenticator {
	return &akskAuth{ak: ak, sk: sk, projectID: projectID}
}

func (a *akskAuth) Authorize(req *http.Request, body []byte, now time.Time) error {
	date := now.UTC().Format(sdkDateFormat)
	req.Header.Set(headerSdkDate, date)
	headers := map[string]string{"host": "", headerSdkDate: date}
	if a.projectID != "" {
		req.Header.Set(headerProject, a.projectID)
		headers[headerProject] = a.projectID
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	s := sign(a.ak, a.sk, signInput{
		Method: req.Method, URL: req.URL, Host: host, Headers: headers, Body: body, Date: now,
	})
	req.Header.Set(headerAuthz, s.Authorization)
	return nil
}

// Reject: a signature cannot be refreshed; a refusal (wrong key, clock skew) is final.
func (a *akskAuth) Reject(*http.Request) bool { return false }

func (a *akskAuth) Principal() string { return "aksk:" + fingerprint(a.ak) + "/" + a.projectID }

func (a *akskAuth) validate() error {
	if a.ak == "" || a.sk == "" {
		return &Error{Kind: KindAuth, Message: "AK/SK: access key and secret key are required"}
	}
	return nil
}

func (a *akskAuth) String() string {
	return "upstream.AKSK{ak: REDACTED, sk: REDACTED, project: " + a.projectID + "}"
}
func (a *akskAuth) GoString() string { return a.String() }
