package upstream

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"
)

// Authenticator puts credentials on outgoing KooPhone requests. Implementations must be safe for concurrent use
// and must never let a secret reach an error, a log line or their String output.
type Authenticator interface {
	// Authorize adds credentials to req, whose body is exactly body; now is the client's clock (AK/SK signs the
	// time). req.Context() is the caller's: waiting for a token ends with it.
	Authorize(req *http.Request, body []byte, now time.Time) error
	// Reject is told that KooPhone refused the credentials req carried (HTTP 401 or KOOPHONE.API.6001). It
	// reports whether sending the call once more can help, i.e. whether a fresh credential can be had.
	Reject(req *http.Request) bool
	// Principal names who the credentials prove, stably and without revealing any secret.
	Principal() string
}

// validator is implemented by authenticators whose configuration can be checked up front (New calls it).
type validator interface{ validate() error }

// closer is implemented by authenticators with background work or connections of their own (Client.Close
// calls it).
type closer interface{ Close() }

// fingerprint is a short, non-reversible name for a secret, so that two clients with the same credentials share
// an Identity without the credential itself being printed anywhere.
func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
