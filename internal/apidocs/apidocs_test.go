package apidocs

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestOpenAPICopyIsFresh: the served OpenAPI is the generated one (`make generate` copies it).
func TestOpenAPICopyIsFresh(t *testing.T) {
	gen, err := os.ReadFile("../../gen/openapiv2/koophone.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gen, OpenAPI) {
		t.Fatal("internal/apidocs/koophone.swagger.json differs from gen/openapiv2: run `make generate`")
	}
}

func TestHandlerServesThePageItsAssetsAndTheSpec(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for path, want := range map[string]string{
		"/docs/":                     "swagger-ui-bundle.js",
		"/docs/docs.js":              "openapi.json",
		"/docs/swagger-ui-bundle.js": "SwaggerUIBundle",
		"/docs/swagger-ui.css":       ".swagger-ui",
		"/docs/openapi.json":         `"title": "KooPhone gateway"`,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, %d bytes, want %q in it", path, resp.StatusCode, len(body), want)
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/docs/" {
		t.Errorf("/docs: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestOpenAPIInfo: the document names the API and its version, the contract's package version.
func TestOpenAPIInfo(t *testing.T) {
	var doc struct {
		Info                struct{ Title, Version string }
		SecurityDefinitions map[string]struct{ Type, In, Name string }
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Info.Title != "KooPhone gateway" || doc.Info.Version != "v1" {
		t.Errorf("info %+v", doc.Info)
	}
	if k := doc.SecurityDefinitions["ApiKey"]; k.Type != "apiKey" || k.In != "header" || k.Name != "Authorization" {
		t.Errorf("security definitions %+v", doc.SecurityDefinitions)
	}
}
