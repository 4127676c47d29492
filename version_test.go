package koophonegateway

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
)

// TestVersionsAgree holds every place that states the version equal to VERSION: one version for the contract, the
// gateway and every client package (see CHANGELOG.md, "Releases").
func TestVersionsAgree(t *testing.T) {
	if !regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$`).MatchString(Version) {
		t.Fatalf("VERSION %q is not MAJOR.MINOR.PATCH", Version)
	}
	if koophone.Version != Version {
		t.Errorf("client/go/koophone/version.go: Version = %q, VERSION says %q", koophone.Version, Version)
	}
	// Files stating it, and the pattern whose first group is the version there.
	for file, pattern := range map[string]string{
		"clients/python/pyproject.toml":       `(?m)^version = "([^"]+)"$`,
		"clients/python/koophone/__init__.py": `(?m)^__version__ = "([^"]+)"$`,
		"clients/ts/src/index.ts":             `(?m)^export const VERSION = "([^"]+)";$`,
		"CHANGELOG.md":                        `(?m)^## \[(\d+\.\d+\.\d+)\]`, // the newest release's section comes first
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(pattern).FindSubmatch(b)
		if m == nil {
			t.Errorf("%s: no version found (%s)", file, pattern)
		} else if string(m[1]) != Version {
			t.Errorf("%s: version %q, VERSION says %q", file, m[1], Version)
		}
	}
	for _, file := range []string{"clients/ts/package.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var pkg struct{ Version string }
		if err := json.Unmarshal(b, &pkg); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if pkg.Version != Version {
			t.Errorf("%s: version %q, VERSION says %q", file, pkg.Version, Version)
		}
	}
}

func TestRevision(t *testing.T) {
	// A test binary records no VCS stamp; what matters is that it never comes out empty.
	if r := Revision(); strings.TrimSpace(r) == "" {
		t.Fatal("Revision() is empty")
	}
}
