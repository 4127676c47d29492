package examples

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/server/servertest"
)

// nodeEnv is the Node to run and the environment for it and npm: ./bin/node when test-deps installed one there (the
// machine's was too old for the lock files), with ./bin first on PATH so that npm and tsc, scripts run by
// `#!/usr/bin/env node`, use it too; otherwise the node on PATH, as `make` would find it.
func nodeEnv(t *testing.T) (node string, env []string) {
	t.Helper()
	bin, err := filepath.Abs("../bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "node")); err != nil {
		return "node", os.Environ()
	}
	return filepath.Join(bin, "node"), append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// run runs a command in dir and returns its output, failing the test with the output when it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// scratchTSConfig is what an ESM project on Node sets: module nodenext, strict, the libraries' own types checked too.
// "dom" is there for Connect's declarations, which name the Fetch API's types (HeadersInit) that Node has but
// @types/node does not declare globally.
const scratchTSConfig = `{
  "compilerOptions": {
    "strict": true,
    "target": "es2022",
    "lib": ["es2022", "dom"],
    "types": ["node"],
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "verbatimModuleSyntax": true,
    "skipLibCheck": false,
    "outDir": "dist",
    "rootDir": "."
  },
  "include": ["*.ts"]
}
`

// An ESM TypeScript project outside the repository uses the npm package alone, as from a registry: the tarball of
// the built clients/ts (`npm pack`) installed with `npm ci` beside the peer dependencies pinned as in
// examples/typescript's lock file, the Node example type-checked under module nodenext and run against the gateway.
// It lists phones, follows a command to its end, reads an error's reason (KooPhone's and the gateway's own) and
// opens a session.
func TestTypeScriptFromAProjectOfItsOwn(t *testing.T) {
	pkgDir, err := filepath.Abs("../clients/ts")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pkgDir, "dist/index.js")); err != nil {
		t.Fatalf("clients/ts not built (%v): run `make clients` (make test does)", err)
	}
	tsc, err := filepath.Abs("../tools/npm/node_modules/.bin/tsc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tsc); err != nil {
		t.Fatalf("%v: run `make npm-deps` (make test does)", err)
	}
	node, env := nodeEnv(t)
	dir := t.TempDir()

	// The package as it would be published. npm pack runs no scripts here: the package has none, and dist/ is built.
	var packed []struct{ Filename string }
	if err := json.Unmarshal([]byte(run(t, pkgDir, env, "npm", "pack", "--json", "--ignore-scripts", "--pack-destination", dir)), &packed); err != nil || len(packed) != 1 {
		t.Fatalf("npm pack --json: %v (%d packages)", err, len(packed))
	}
	tarball := "file:" + packed[0].Filename

	pkg, lock, tsVersion := scratchPackage(t, tarball)
	src, err := os.ReadFile("typescript/node.ts")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"package.json": pkg, "package-lock.json": lock, "tsconfig.json": []byte(scratchTSConfig), "node.ts": src} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// npm ci installs exactly the lock file (it fails rather than resolve anything anew); the packages come from
	// npm's cache when make npm-deps or test-client-ts put them there, else from the registry.
	run(t, dir, env, "npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline")
	if fi, err := os.Lstat(filepath.Join(dir, "node_modules/koophone-gateway-client/package.json")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the package was not unpacked into the project's node_modules: %v", err)
	}
	if v := strings.TrimSpace(run(t, dir, env, tsc, "--version")); v != "Version "+tsVersion {
		t.Fatalf("tools/npm's tsc says %q, examples/typescript's lock pins TypeScript %s: pin the same in both", v, tsVersion)
	}
	run(t, dir, env, tsc, "-p", "tsconfig.json")

	srv := servertest.Start(t, servertest.Fast...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "dist/node.js", srv.GRPCAddr())
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	t.Logf("output:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	expectInOrder(t, lines, []string{`^package: koophone-gateway-client ` + regexp.QuoteMeta(repoVersion(t)) + `$`})
	expectInOrder(t, lines, common)
	expectInOrder(t, lines, []string{
		`^gateway error: ALREADY_EXISTS reason=IDEMPOTENCY_KEY_REUSED domain=koophone-gateway outcome_unknown=false$`,
		`^session: end OK$`,
	})
}

// scratchPackage derives the scratch project's package.json and lock file from examples/typescript's lock file, so
// the versions are pinned in one place: the same packages with the same integrity, except that koophone-gateway-client
// is the tarball (no integrity: it changes whenever clients/ are regenerated) and TypeScript is tools/npm's, not a
// dependency of the project (its version, pinned the same in tools/npm, is returned).
func scratchPackage(t *testing.T, tarball string) (pkg, lock []byte, tsVersion string) {
	t.Helper()
	raw, err := os.ReadFile("typescript/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Name            string                    `json:"name"`
		LockfileVersion int                       `json:"lockfileVersion"`
		Requires        bool                      `json:"requires"`
		Packages        map[string]map[string]any `json:"packages"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatalf("typescript/package-lock.json: %v", err)
	}
	const client = "koophone-gateway-client"
	root, entry := l.Packages[""], l.Packages["node_modules/"+client]
	deps, _ := root["dependencies"].(map[string]any)
	devDeps, _ := root["devDependencies"].(map[string]any)
	if entry == nil || deps == nil || deps[client] == nil || devDeps == nil {
		t.Fatalf("typescript/package-lock.json: no %s among the root's dependencies and packages", client)
	}
	deps[client], entry["resolved"] = tarball, tarball
	tsVersion, _ = devDeps["typescript"].(string)
	delete(devDeps, "typescript")
	delete(l.Packages, "node_modules/typescript")
	l.Name = "koophone-scratch"
	root["name"] = l.Name
	delete(root, "engines")

	pkg, err = json.MarshalIndent(map[string]any{
		"name": l.Name, "private": true, "type": "module", "dependencies": deps, "devDependencies": devDeps,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	lock, err = json.MarshalIndent(l, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return pkg, lock, tsVersion
}
