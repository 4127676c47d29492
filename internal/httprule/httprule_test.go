package httprule_test

import (
	"net/http"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"

	"github.com/koophone-gateway/koophone-gateway/internal/httprule"
)

func TestBinding(t *testing.T) {
	for _, c := range []struct {
		rule         *annotations.HttpRule
		method, path string
	}{
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/a"}}, http.MethodGet, "/v1/a"},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: "/v1/b"}}, http.MethodPost, "/v1/b"},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Put{Put: "/v1/c"}}, http.MethodPut, "/v1/c"},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Delete{Delete: "/v1/d"}}, http.MethodDelete, "/v1/d"},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Patch{Patch: "/v1/e"}}, http.MethodPatch, "/v1/e"},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Custom{Custom: &annotations.CustomHttpPattern{Kind: "HEAD", Path: "/v1/f"}}}, "", ""},
		{nil, "", ""},
	} {
		if m, p := httprule.Binding(c.rule); m != c.method || p != c.path {
			t.Errorf("%v: %q %q, want %q %q", c.rule, m, p, c.method, c.path)
		}
	}
}
