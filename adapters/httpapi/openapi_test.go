package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/backupledger/backupledger/adapters/httpapi"
	"github.com/backupledger/backupledger/test/apitest"
)

// openAPIPath is the OpenAPI document of the API, from this package.
const openAPIPath = "../../docs/openapi.yaml"

// httpMethods are the operations a path item of an OpenAPI document may
// hold.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// readOpenAPI parses the OpenAPI document into plain maps and slices.
func readOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatalf("read the OpenAPI document: %v", err)
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("parse %s: %v", openAPIPath, err)
	}
	doc, ok := normalize(v).(map[string]any)
	if !ok {
		t.Fatalf("%s is not a mapping", openAPIPath)
	}
	return doc
}

// normalize turns the maps of a parsed YAML document into maps with
// string keys (a response code such as 200 may be parsed as a number).
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = normalize(e)
		}
		return v
	}
	return v
}

// operation is one documented operation: its "METHOD /path", and the
// operation and path item objects.
type operation struct {
	route    string
	op, item map[string]any
}

// operations returns every operation of doc, sorted by route.
func operations(t *testing.T, doc map[string]any) []operation {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok || len(paths) == 0 {
		t.Fatal("the document has no paths")
	}
	var out []operation
	for path, v := range paths {
		item, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("path %s is not a mapping", path)
		}
		for _, m := range httpMethods {
			if v, ok := item[m]; ok {
				op, ok := v.(map[string]any)
				if !ok {
					t.Fatalf("%s %s is not a mapping", m, path)
				}
				out = append(out, operation{route: strings.ToUpper(m) + " " + path, op: op, item: item})
			}
		}
	}
	slices.SortFunc(out, func(a, b operation) int { return strings.Compare(a.route, b.route) })
	return out
}

// newServer is a Server over a fresh stack.
func newServer(t *testing.T, edit func(*deps)) *httpapi.Server {
	t.Helper()
	st := apitest.NewStack(t)
	d := deps{appDeps: st.AppDeps(), transportDeps: transportDeps{Auth: st.AuthChain()}}
	if edit != nil {
		edit(&d)
	}
	srv, err := httpapi.New(httpapi.Config{}, d.build(t))
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	return srv
}

// restWildcard is a ServeMux wildcard that matches the rest of the path.
var restWildcard = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\.\.\.\}`)

// documentedRoute is the OpenAPI form of a ServeMux pattern: {key...} is
// {key}.
func documentedRoute(pattern string) string {
	return restWildcard.ReplaceAllString(pattern, "{$1}")
}

func TestRoutes(t *testing.T) {
	routes := newServer(t, nil).Routes()
	if !slices.IsSorted(routes) {
		t.Errorf("routes are not sorted: %q", routes)
	}
	if len(slices.Compact(slices.Clone(routes))) != len(routes) {
		t.Errorf("routes repeat: %q", routes)
	}
	for _, want := range []string{"GET /healthz", "GET /v1/openapi.yaml", "POST /v1/sessions",
		"POST /v1/apps/{app}/backups", "PUT /v1/apps/{app}/config/{key...}", "GET /v1/orgs/{org}/webhooks/{id}/deliveries"} {
		if !slices.Contains(routes, want) {
			t.Errorf("routes lack %q: %q", want, routes)
		}
	}
	if slices.Contains(routes, "/v1/") {
		t.Errorf("the /v1/ subtree is listed as a route: %q", routes)
	}
}

// TestOpenAPICoversRoutes checks that the document and the server agree:
// every route is documented, and every documented operation is a route.
func TestOpenAPICoversRoutes(t *testing.T) {
	registered := map[string]bool{}
	for _, p := range newServer(t, nil).Routes() {
		method, _, ok := strings.Cut(p, " ")
		if !ok || method == "" || strings.HasPrefix(method, "/") {
			t.Errorf("route %q has no method", p)
			continue
		}
		registered[documentedRoute(p)] = true
	}
	documented := map[string]bool{}
	for _, o := range operations(t, readOpenAPI(t)) {
		documented[o.route] = true
		if !registered[o.route] {
			t.Errorf("%s is documented but the server has no such route", o.route)
		}
	}
	for r := range registered {
		if !documented[r] {
			t.Errorf("route %s is not in %s", r, openAPIPath)
		}
	}
}

// TestOpenAPIDocument checks the document's shape: OpenAPI 3.1, info and
// paths, responses on every operation, every path wildcard declared, and
// every $ref resolving within the document.
func TestOpenAPIDocument(t *testing.T) {
	doc := readOpenAPI(t)
	if v, _ := doc["openapi"].(string); !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Errorf("openapi: got %q, want 3.1.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	for _, k := range []string{"title", "version"} {
		if s, _ := info[k].(string); s == "" {
			t.Errorf("info.%s is missing", k)
		}
	}
	wildcard := regexp.MustCompile(`\{([^}]+)\}`)
	for _, o := range operations(t, doc) {
		if r, _ := o.op["responses"].(map[string]any); len(r) == 0 {
			t.Errorf("%s has no responses", o.route)
		}
		declared := map[string]bool{}
		for _, list := range []any{o.item["parameters"], o.op["parameters"]} {
			ps, _ := list.([]any)
			for _, p := range ps {
				p, err := resolve(doc, p)
				if err != nil {
					t.Errorf("%s: %v", o.route, err)
					continue
				}
				if pm, _ := p.(map[string]any); pm["in"] == "path" {
					name, _ := pm["name"].(string)
					declared[name] = true
					if pm["required"] != true {
						t.Errorf("%s: path parameter %s is not required", o.route, name)
					}
				}
			}
		}
		for _, m := range wildcard.FindAllStringSubmatch(o.route, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %s is not declared", o.route, m[1])
			}
		}
	}
	refs := 0
	walkRefs(doc, "#", func(at, ref string) {
		refs++
		if !strings.HasPrefix(ref, "#/") {
			t.Errorf("%s: $ref %q is not within the document", at, ref)
			return
		}
		if _, err := resolve(doc, map[string]any{"$ref": ref}); err != nil {
			t.Errorf("%s: %v", at, err)
		}
	})
	if refs == 0 {
		t.Error("the document has no $ref; is it the right one?")
	}
}

// TestOpenAPISecurity checks that the operations the document marks as
// open (security: []) are those the server answers without a token, and
// that the others ask for one (401).
func TestOpenAPISecurity(t *testing.T) {
	doc := readOpenAPI(t)
	if sec, _ := doc["security"].([]any); len(sec) == 0 {
		t.Fatal("the document has no global security requirement")
	}
	h := newServer(t, nil).Handler()
	sample := regexp.MustCompile(`\{[^}]+\}`)
	for _, o := range operations(t, doc) {
		sec, set := o.op["security"].([]any)
		open := set && len(sec) == 0
		method, path, _ := strings.Cut(o.route, " ")
		req := httptest.NewRequest(method, sample.ReplaceAllString(path, "crm"), nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Code == http.StatusUnauthorized; got == open {
			t.Errorf("%s without a token: status %d; documented security: [] is %v", o.route, rec.Code, open)
		}
	}
}

// resolve returns v, or what its $ref points to (a JSON pointer within
// doc), following $refs.
func resolve(doc map[string]any, v any) (any, error) {
	for range 32 {
		m, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v, nil
		}
		ptr, ok := strings.CutPrefix(ref, "#/")
		if !ok {
			return nil, fmt.Errorf("$ref %q is not within the document", ref)
		}
		var cur any = doc
		for _, tok := range strings.Split(ptr, "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			cm, ok := cur.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("$ref %q does not resolve: %q is not in a mapping", ref, tok)
			}
			if cur, ok = cm[tok]; !ok {
				return nil, fmt.Errorf("$ref %q does not resolve: no %q", ref, tok)
			}
		}
		v = cur
	}
	return nil, fmt.Errorf("$ref chain too long at %v", v)
}

// walkRefs calls fn with the location and value of every $ref in v.
func walkRefs(v any, at string, fn func(at, ref string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "$ref" {
				fn(at, s)
				continue
			}
			walkRefs(e, at+"/"+k, fn)
		}
	case []any:
		for i, e := range v {
			walkRefs(e, fmt.Sprintf("%s/%d", at, i), fn)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	doc := []byte("openapi: 3.1.0\ninfo: {title: test, version: '1'}\n")
	// Documentation needs no token, and is there while the server starts.
	a := newAPI(t, func(d *deps) {
		d.OpenAPI = doc
		d.Ready = func() bool { return false }
	})
	r := a.do("GET", "/v1/openapi.yaml", "", "Authorization", "").want(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("content type: got %q, want application/yaml", ct)
	}
	if string(r.body) != string(doc) {
		t.Errorf("body: got %q, want %q", r.body, doc)
	}
	r = a.do("HEAD", "/v1/openapi.yaml", "", "Authorization", "").want(t, http.StatusOK)
	if len(r.body) != 0 || r.header.Get("Content-Length") != fmt.Sprint(len(doc)) {
		t.Errorf("HEAD: body %q, Content-Length %q", r.body, r.header.Get("Content-Length"))
	}

	none := newAPI(t, nil)
	if p := none.do("GET", "/v1/openapi.yaml", "", "Authorization", "").want(t, http.StatusNotFound).problem(t); p.Code != "not_found" {
		t.Errorf("code: got %q, want not_found", p.Code)
	}
}
