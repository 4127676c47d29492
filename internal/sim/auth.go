package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// AK/SK verification, written from Huawei's published algorithm and checked against its reference signer:
//   - "API签名指南" (API Request Signing Guide), chapter "AK/SK签名认证算法详解":
//     https://support.huaweicloud.com/devg-apisign/api-sign-algorithm-001.html and the pages after it
//     (构造规范请求, 创建待签字符串, 计算签名, 添加签名信息到请求头), including the worked example whose string to
//     sign (20191115T033655Z, b25362e6…) gives signature 7be66680… with SK MFyfvK41…; the tests pin it.
//   - github.com/huaweicloud/huaweicloud-sdk-go-v3 core/auth/signer/signer.go (Signer.Sign, canonicalRequest,
//     canonicalURI, canonicalQueryString, canonicalHeaders, escape) and signer_test.go, whose two vectors
//     (GET and POST on /path with AK "AccessKey", SK "SecretKey") the tests also pin.
//
// CanonicalRequest = method \n CanonicalURI \n CanonicalQueryString \n CanonicalHeaders \n SignedHeaders \n
// HexEncode(SHA256(body)), where the URI is every path segment escaped and always ends with "/", the query is
// sorted by key then value with both escaped, the headers are the signed ones as lowercase "name:trimmed value"
// lines each ending in \n. StringToSign = "SDK-HMAC-SHA256" \n X-Sdk-Date \n HexEncode(SHA256(CanonicalRequest)).
// Signature = HexEncode(HMAC-SHA256(SK, StringToSign)).

const (
	signAlgorithm  = "SDK-HMAC-SHA256"
	sdkDateFormat  = "20060102T150405Z"
	sdkDateSkew    = 15 * time.Minute // APIG rejects requests whose X-Sdk-Date is further off
	unsignedBody   = "UNSIGNED-PAYLOAD"
	hdrContentHash = "X-Sdk-Content-Sha256"
)

// authenticate accepts an AK/SK signature or a token issued by this simulator's IAM, and answers the failure
// itself: APIG's 401 APIGW.0301 for a bad signature, KooPhone's 401 KOOPHONE.API.6001 for a bad or missing token.
func (s *Server) authenticate(c *call) bool {
	if a := c.r.Header.Get("Authorization"); strings.HasPrefix(a, signAlgorithm) {
		if err := s.verifySignature(c.r, c.body, c.now); err != nil {
			writeJSON(c.w, http.StatusUnauthorized, envelope{ErrorCode: codeAPIGWAuth,
				ErrorMsg: ptr("Incorrect IAM authentication information: " + err.Error())})
			return false
		}
		return true
	}
	if tok := c.r.Header.Get("X-Auth-Token"); tok != "" && s.tokenValid(tok, c.now) {
		return true
	}
	c.fail(codeAuthFailed)
	return false
}

func (s *Server) tokenValid(tok string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && now.Before(exp)
}

// verifySignature checks an APIG SDK-HMAC-SHA256 signature against the request as received.
func (s *Server) verifySignature(r *http.Request, body []byte, now time.Time) error {
	ak, signed, sig, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	var sk string
	for _, k := range s.cfg.AccessKeys {
		if k.AK == ak {
			sk = k.SK
			break
		}
	}
	if sk == "" {
		return errors.New("ak " + ak + " not exist")
	}
	date := r.Header.Get("X-Sdk-Date")
	t, err := time.Parse(sdkDateFormat, date)
	if err != nil {
		return errors.New("x-sdk-date missing or not in the format YYYYMMDDTHHMMSSZ")
	}
	if d := now.Sub(t); d > sdkDateSkew || d < -sdkDateSkew {
		return errors.New("x-sdk-date expired")
	}
	if !slices.Contains(signed, "x-sdk-date") {
		return errors.New("x-sdk-date must be signed")
	}
	cr, err := canonicalRequest(r, signed, body)
	if err != nil {
		return err
	}
	want := signString(sk, stringToSign(cr, date))
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(sig))) != 1 {
		return errors.New("verify aksk signature fail")
	}
	return nil
}

// parseAuthorization splits "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex".
func parseAuthorization(h string) (ak string, signed []string, sig string, err error) {
	rest, ok := strings.CutPrefix(h, signAlgorithm+" ")
	if !ok {
		return "", nil, "", errors.New("invalid Authorization header")
	}
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Access":
			ak = v
		case "SignedHeaders":
			signed = strings.Split(v, ";")
		case "Signature":
			sig = v
		}
	}
	if ak == "" || len(signed) == 0 || sig == "" {
		return "", nil, "", errors.New("invalid Authorization header")
	}
	for _, name := range signed {
		if name == "" || name != strings.ToLower(name) {
			return "", nil, "", errors.New("invalid SignedHeaders")
		}
	}
	return ak, signed, sig, nil
}

// canonicalRequest rebuilds the canonical request of r, signing the headers named in signed.
func canonicalRequest(r *http.Request, signed []string, body []byte) (string, error) {
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	hash := hashHex(body)
	if h := r.Header.Get(hdrContentHash); h != "" {
		// The SDK signs this header's value instead of hashing the body; accept it only when it tells the truth.
		if h != unsignedBody && !strings.EqualFold(h, hash) {
			return "", errors.New(hdrContentHash + " does not match the body")
		}
		hash = h
	}
	return r.Method + "\n" +
		canonicalURI(r.URL.Path) + "\n" +
		query + "\n" +
		canonicalHeaders(r, signed) + "\n" +
		strings.Join(signed, ";") + "\n" +
		hash, nil
}

func canonicalURI(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = apigEscape(s)
	}
	p := strings.Join(segs, "/")
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

func canonicalQuery(raw string) (string, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "", errors.New("invalid query string")
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vals := append([]string(nil), q[k]...)
		sort.Strings(vals)
		for _, v := range vals {
			parts = append(parts, apigEscape(k)+"="+apigEscape(v))
		}
	}
	return strings.Join(parts, "&"), nil
}

// canonicalHeaders lists each signed header as "name:value\n", values sorted and trimmed. Host lives in r.Host on
// the server side. A signed header the request lacks contributes no line, as in the SDK.
func canonicalHeaders(r *http.Request, signed []string) string {
	var b strings.Builder
	for _, name := range signed {
		var vals []string
		if name == "host" {
			vals = []string{r.Host}
		} else {
			vals = append(vals, r.Header.Values(name)...)
		}
		sort.Strings(vals)
		for _, v := range vals {
			b.WriteString(name + ":" + strings.TrimSpace(v) + "\n")
		}
	}
	return b.String()
}

func stringToSign(canonical, date string) string {
	return signAlgorithm + "\n" + date + "\n" + hashHex([]byte(canonical))
}

func signString(sk, sts string) string {
	m := hmac.New(sha256.New, []byte(sk))
	m.Write([]byte(sts))
	return hex.EncodeToString(m.Sum(nil))
}

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// apigEscape percent-encodes everything but RFC 3986's unreserved characters, in upper-case hex (space is %20).
func apigEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '~' || c == '.' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}
