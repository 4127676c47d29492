package sim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"time"
)

// iamTimeFormat is how IAM writes expires_at and issued_at: UTC with six fraction digits.
const iamTimeFormat = "2006-01-02T15:04:05.000000Z"

// keystoneRequest is the part of a Keystone v3 password-auth body the simulator reads. IAM tolerates fields it
// does not use, so unknown fields are ignored here, unlike on the KooPhone operations.
type keystoneRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User struct {
					Name     string `json:"name"`
					Password string `json:"password"`
					Domain   struct {
						Name string `json:"name"`
					} `json:"domain"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
		Scope *struct {
			Project *struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"project"`
		} `json:"scope"`
	} `json:"auth"`
}

// serveIAM is POST /v3/auth/tokens: a project-scoped token for a known user, in X-Subject-Token, status 201.
func (s *Server) serveIAM(w http.ResponseWriter, r *http.Request, body []byte) {
	var req keystoneRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeIAMError(w, http.StatusBadRequest, "Bad Request", "The request body is not valid JSON.")
		return
	}
	id := req.Auth.Identity
	if !slices.Contains(id.Methods, "password") || id.Password == nil {
		writeIAMError(w, http.StatusBadRequest, "Bad Request", "Only the password method is supported.")
		return
	}
	u := id.Password.User
	known := false
	for _, k := range s.cfg.IAMUsers {
		if k.User == u.Name && k.Password == u.Password && k.Domain == u.Domain.Name {
			known = true
			break
		}
	}
	if !known {
		writeIAMError(w, http.StatusUnauthorized, "Unauthorized", "The username or password is wrong.")
		return
	}
	sc := req.Auth.Scope
	if sc == nil || sc.Project == nil || (sc.Project.ID == "" && sc.Project.Name == "") {
		// KooPhone needs a project-scoped token (seed 3.2); a domain token would be useless to the caller.
		writeIAMError(w, http.StatusBadRequest, "Bad Request", "The request must be scoped to a project.")
		return
	}
	p := s.cfg.Project
	if (sc.Project.ID != "" && sc.Project.ID != p.ID) || (sc.Project.Name != "" && sc.Project.Name != p.Name) {
		writeIAMError(w, http.StatusBadRequest, "Bad Request", "The project in the scope does not exist.")
		return
	}

	now := s.clock.Now().UTC()
	exp := now.Add(s.cfg.TokenTTL)
	tok := s.issueToken(now, exp)

	out := map[string]any{"token": map[string]any{
		"expires_at": exp.Format(iamTimeFormat),
		"issued_at":  now.Format(iamTimeFormat),
		"methods":    []string{"password"},
		"project":    map[string]any{"id": p.ID, "name": p.Name, "domain": map[string]string{"name": u.Domain.Name}},
		"user":       map[string]any{"name": u.Name, "domain": map[string]string{"name": u.Domain.Name}},
	}}
	w.Header().Set("X-Subject-Token", tok)
	writeJSON(w, http.StatusCreated, out)
}

// issueToken makes an opaque token about as long as IAM's (PKI tokens run to kilobytes) and remembers it.
func (s *Server) issueToken(now, exp time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw := make([]byte, 1200)
	for i := range raw {
		raw[i] = byte(s.rng.Uint32()) //nolint:gosec // G115: keeping the low byte is the point
	}
	tok := "MII" + base64.RawURLEncoding.EncodeToString(raw)
	s.tokens[tok] = exp
	// Sweep now and then, so a long load test that logs in often keeps a bounded map.
	if s.tokenSeen++; s.tokenSeen >= 1000 {
		s.tokenSeen = 0
		for t, e := range s.tokens {
			if !now.Before(e) {
				delete(s.tokens, t)
			}
		}
	}
	return tok
}

// writeIAMError answers in IAM's error shape.
func writeIAMError(w http.ResponseWriter, status int, title, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "title": title}})
}
