// Package koophonegateway holds what belongs to the repository as a whole: the version of the contract and of every
// package built from it, read from the file VERSION (embedded, so that `go run` and a plain `go build` carry it
// without -ldflags), and the revision a binary was built from.
package koophonegateway

import (
	_ "embed"
	"runtime/debug"
	"strings"
)

//go:embed VERSION
var versionFile string

// Version is the version of the contract, the gateway and the client packages (VERSION; see CHANGELOG.md).
var Version = strings.TrimSpace(versionFile)

// Revision is the VCS revision the binary was built from, with "+dirty" when the checkout had changes, or
// "unknown" when the build recorded none (`go run`, a build outside a git checkout, -buildvcs=false).
func Revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}
