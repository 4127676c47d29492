// Package apidocs serves the REST API's documentation at /docs: Swagger UI (from the npm package swagger-ui-dist,
// copied into ui/ by `make docs-ui` and committed so a fresh clone builds) rendering the OpenAPI that
// protoc-gen-openapiv2 generates (copied here by `make generate`). Everything is embedded: the page loads nothing
// from outside the gateway.
package apidocs

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed ui
var ui embed.FS

// OpenAPI is gen/openapiv2/koophone.swagger.json (a test keeps the copy equal).
//
//go:embed koophone.swagger.json
var OpenAPI []byte

// Prefix is where the documentation is served.
const Prefix = "/docs/"

// Handler serves the page under Prefix, the OpenAPI at Prefix+"openapi.json", and redirects "/docs" to the page.
func Handler() http.Handler {
	files, err := fs.Sub(ui, "ui")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	mux := http.NewServeMux()
	static := http.StripPrefix(Prefix, http.FileServerFS(files))
	mux.Handle("GET "+Prefix, withHeaders(static))
	mux.HandleFunc("GET "+Prefix+"openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPI)
	})
	mux.Handle("GET /docs", http.RedirectHandler(Prefix, http.StatusMovedPermanently))
	return mux
}

// withHeaders keeps the page to its own origin: scripts and styles only from the gateway (Swagger UI sets inline
// styles), and no framing by other sites.
func withHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}
