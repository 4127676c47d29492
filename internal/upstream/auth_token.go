package upstream

import (
	"net/http"
	"time"
)

// staticToken sends a fixed IAM token (obtained elsewhere) as X-Auth-Token.
type staticToken struct{ token string }

// NewStaticToken returns an Authenticator that sends token as X-Auth-Token. It cannot refresh, so a rejected
// token is final.
func NewStaticToken(token string) Authenticator { return &staticToken{token: token} }

func (s *staticToken) Authorize(req *http.Request, _ []byte, _ time.Time) error {
	req.Header.Set("X-Auth-Token", s.token)
	return nil
}

func (s *staticToken) Reject(*http.Request) bool { return false }

func (s *staticToken) Principal() string { return "token:" + fingerprint(s.token) }

func (s *staticToken) validate() error {
	if s.token == "" {
		return &Error{Kind: KindAuth, Message: "static token is empty"}
	}
	return nil
}

func (s *staticToken) String() string   { return "upstream.StaticToken{token: REDACTED}" }
func (s *staticToken) GoString() string { return s.String() }
