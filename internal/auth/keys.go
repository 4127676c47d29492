package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// keysFile is the API keys file (YAML, or JSON, which YAML reads too). It holds each key's SHA-256, never the key.
//
//	keys:
//	  - principal: ci-bot
//	    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//	    groups: [operators]
//	    expires: 2027-06-30T00:00:00Z
//
// "keys: []" is a keys file too: no API key authenticates. A document without a "keys" list is a mistake (or a
// file caught half-written) and does not load.
type keysFile struct {
	Keys *[]keyEntry `yaml:"keys"`
}

type keyEntry struct {
	Principal string    `yaml:"principal"`
	SHA256    string    `yaml:"sha256"`
	Groups    []string  `yaml:"groups"`
	Expires   time.Time `yaml:"expires"`
}

// validName is what principals and groups may be: they end up in logs, errors and policy files.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:/+=-]{0,127}$`)

var validSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// keySet maps a key's SHA-256 (hex) to whom it names.
type keySet map[string]keyEntry

func parseKeys(b []byte) (keySet, error) {
	var f keysFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a keys file (YAML or JSON with a \"keys\" list): %w", err)
	}
	if f.Keys == nil {
		return nil, errors.New(`no "keys" list (write "keys: []" to let no API key in)`)
	}
	set := keySet{}
	for i, k := range *f.Keys {
		// Messages name the entry by position and principal, never by its hash.
		if !validName.MatchString(k.Principal) {
			return nil, fmt.Errorf("keys[%d].principal %q: must be 1-128 letters, digits or ._@:/+=- ", i, k.Principal)
		}
		if !validSHA256.MatchString(k.SHA256) {
			return nil, fmt.Errorf("keys[%d] (%s).sha256: must be 64 lower-case hex digits, the SHA-256 of the key", i, k.Principal)
		}
		for _, g := range k.Groups {
			if !validName.MatchString(g) {
				return nil, fmt.Errorf("keys[%d] (%s).groups: %q is not a valid group name", i, k.Principal, g)
			}
		}
		if _, dup := set[k.SHA256]; dup {
			return nil, fmt.Errorf("keys[%d] (%s): the same key is listed twice", i, k.Principal)
		}
		set[k.SHA256] = k
	}
	return set, nil
}

// HashKey returns the hex SHA-256 of an API key, as the keys file holds it.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Why a presented key is refused. Callers get one message for both (telling them apart would tell a thief which
// stolen keys once worked); the call log gets the difference.
var (
	errUnknownKey = errors.New("unknown API key")
	errExpiredKey = errors.New("API key expired")
)

// lookup finds the entry of a presented key, at now (the call's time: expiry needs no reload). Looking up by the
// key's hash means the comparison never touches the key itself, and timing reveals at most something about a
// hash. An expired key's entry comes back with errExpiredKey, so the log can name whose key it was.
func (s keySet) lookup(key string, now time.Time) (keyEntry, error) {
	e, ok := s[HashKey(key)]
	if !ok {
		return keyEntry{}, errUnknownKey
	}
	if !e.Expires.IsZero() && !now.Before(e.Expires) {
		return e, errExpiredKey
	}
	return e, nil
}
