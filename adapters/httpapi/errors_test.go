package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/domain"
)

func TestBadInput(t *testing.T) {
	a := newAPI(t, nil)
	b := a.create("crm", "existing")
	before := a.st.Store.Appends()
	backup := "/v1/apps/crm/backups/" + b.ID

	tests := []struct {
		name         string
		method, path string
		body         string
		kv           []string
		status       int
		code         string
		detail       string
	}{
		{"malformed JSON", "POST", "/v1/apps/crm/backups", `{"name":`, nil, 400, "invalid_argument", "malformed JSON"},
		{"syntax error", "POST", "/v1/apps/crm/backups", `{"name" "x"}`, nil, 400, "invalid_argument", "malformed JSON at byte"},
		{"unknown field", "POST", "/v1/apps/crm/backups", `{"nme":"x"}`, nil, 400, "invalid_argument", `unknown field "nme"`},
		{"wrong type", "POST", "/v1/apps/crm/backups", `{"name":5}`, nil, 400, "invalid_argument", `field "name" must be a string`},
		{"not an object", "POST", "/v1/apps/crm/backups", `["x"]`, nil, 400, "invalid_argument", "must be a JSON object"},
		{"trailing data", "POST", "/v1/apps/crm/backups", `{"name":"a"} {}`, nil, 400, "invalid_argument", "single JSON object"},
		{"invalid app id", "POST", "/v1/apps/CRM/backups", `{}`, nil, 400, "invalid_argument", "app id"},
		{"invalid app id on read", "GET", "/v1/apps/-x/backups", "", nil, 400, "invalid_argument", "app id"},
		{"too long app id", "GET", "/v1/apps/" + strings.Repeat("a", 64), "", nil, 400, "invalid_argument", "app id"},
		{"empty name", "POST", "/v1/apps/crm/backups", `{"name":"   "}`, nil, 400, "invalid_argument", "name"},
		{"101-char name", "POST", "/v1/apps/crm/backups", `{"name":"` + strings.Repeat("é", 101) + `"}`, nil, 400, "invalid_argument", "got 101"},
		{"control character", "POST", "/v1/apps/crm/backups", `{"name":"a\u0007b"}`, nil, 400, "invalid_argument", "control"},
		{"rename to empty", "PATCH", backup, `{"name":""}`, nil, 400, "invalid_argument", "name"},
		{"rename without name", "PATCH", backup, `{}`, nil, 400, "invalid_argument", `"name" is required`},
		{"rename to null", "PATCH", backup, `{"name":null}`, nil, 400, "invalid_argument", `"name" is required`},
		{"rename unknown backup", "PATCH", "/v1/apps/crm/backups/nope", `{"name":"x"}`, nil, 404, "not_found", "nope"},
		{"delete unknown backup", "DELETE", "/v1/apps/crm/backups/nope", "", nil, 404, "not_found", "nope"},
		{"get unknown backup", "GET", "/v1/apps/crm/backups/nope", "", nil, 404, "not_found", "nope"},
		{"log of unknown backup", "GET", "/v1/apps/crm/backups/nope/logs", "", nil, 404, "not_found", "nope"},
		{"missing token", "POST", "/v1/apps/crm/backups", `{}`, []string{"Authorization", ""}, 401, "unauthenticated", "token"},
		{"bad token", "POST", "/v1/apps/crm/backups", `{}`, []string{"Authorization", "Bearer nope"}, 401, "unauthenticated", "token"},
		{"basic auth", "GET", "/v1/backups", "", []string{"Authorization", "Basic YWxpY2U6eA=="}, 401, "unauthenticated", "token"},
		{"bad idempotency key", "POST", "/v1/apps/crm/backups", `{}`, []string{"Idempotency-Key", "has space"}, 400, "invalid_argument", "Idempotency-Key"},
		{"long idempotency key", "DELETE", backup, "", []string{"Idempotency-Key", strings.Repeat("k", 65)}, 400, "invalid_argument", "Idempotency-Key"},
		{"wrong content type", "POST", "/v1/apps/crm/backups", `{}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type", "application/json"},
		{"form content type", "PATCH", backup, `name=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", "JSON"},
		{"too large", "POST", "/v1/apps/crm/backups", `{"description":"` + strings.Repeat("x", 70<<10) + `"}`, nil, 413, "payload_too_large", "65536"},
		{"method not allowed", "PUT", "/v1/backups", "", nil, 405, "method_not_allowed", "PUT"},
		{"unknown route", "GET", "/v1/nothing/here", "", nil, 404, "not_found", "no route"},
		{"unknown route outside v1", "GET", "/nothing", "", []string{"Authorization", ""}, 404, "not_found", "no route"},
		{"not visible", "POST", "/v1/apps/crm/backups", `{}`, []string{"Authorization", "Bearer eve-token"}, 404, "not_found", "crm"},
		{"not visible read", "GET", backup, "", []string{"Authorization", "Bearer eve-token"}, 404, "not_found", "crm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(tt.method, tt.path, tt.body, tt.kv...).want(t, tt.status)
			p := r.problem(t)
			if p.Code != tt.code || p.Status != tt.status || p.Type != "about:blank" || p.Title != http.StatusText(tt.status) {
				t.Errorf("problem: %+v", p)
			}
			if !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail %q lacks %q", p.Detail, tt.detail)
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: %v", r.header)
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
			if got := a.st.Store.Appends(); got != before {
				t.Errorf("the store received %d appends", got-before)
			}
		})
	}
	if strings.Contains(a.logs.String(), "alice-token") {
		t.Errorf("a token was logged")
	}
}

func TestNotVisibleListsNothing(t *testing.T) {
	a := newAPI(t, nil)
	a.create("crm", "")
	r := a.do("GET", "/v1/backups", "", "Authorization", "Bearer eve-token").want(t, http.StatusOK)
	if got := string(r.body); got != "{\"backups\":[]}\n" {
		t.Errorf("eve sees %s", got)
	}
}

// commandsFunc adapts a function to usecase.Commands.
type commandsFunc func(ctx context.Context, cmd domain.Command, m domain.Meta) (domain.Result, error)

func (f commandsFunc) Execute(ctx context.Context, cmd domain.Command, m domain.Meta) (domain.Result, error) {
	return f(ctx, cmd, m)
}

func (f commandsFunc) Retention(string) (domain.Retention, error) {
	return domain.Retention{}, errors.New("no retention in this test")
}

func TestInternalErrorIsHidden(t *testing.T) {
	a := newAPI(t, func(d *deps) {
		d.Commands = commandsFunc(func(context.Context, domain.Command, domain.Meta) (domain.Result, error) {
			return domain.Result{}, errors.New("disk on fire at /secret/path")
		})
	})
	r := a.do("POST", "/v1/apps/crm/backups", "{}").want(t, http.StatusInternalServerError)
	p := r.problem(t)
	if p.Code != "internal" || p.Detail != "internal error" || strings.Contains(string(r.body), "secret") {
		t.Errorf("internal error leaked: %s", r.body)
	}
	if !strings.Contains(a.logs.String(), "disk on fire") {
		t.Errorf("internal error not logged: %s", a.logs.String())
	}
}

func TestTimeoutIsUnavailable(t *testing.T) {
	a := newAPI(t, func(d *deps) {
		d.Commands = commandsFunc(func(ctx context.Context, _ domain.Command, _ domain.Meta) (domain.Result, error) {
			return domain.Result{}, context.DeadlineExceeded
		})
	})
	p := a.do("POST", "/v1/apps/crm/backups", "{}").want(t, http.StatusServiceUnavailable).problem(t)
	if p.Code != "unavailable" {
		t.Errorf("code %q", p.Code)
	}
}

func TestCommandMeta(t *testing.T) {
	var got domain.Meta
	a := newAPI(t, func(d *deps) {
		d.Commands = commandsFunc(func(_ context.Context, _ domain.Command, m domain.Meta) (domain.Result, error) {
			got = m
			return domain.Result{}, domain.Errorf(domain.CodeNotFound, "stop here")
		})
		d.NewID = func() string { return "generated-id" }
	})
	a.do("DELETE", "/v1/apps/crm/backups/x", "", "X-Correlation-Id", "c-1").want(t, http.StatusNotFound)
	if got != (domain.Meta{Actor: "alice", CommandID: "generated-id", CorrelationID: "c-1"}) {
		t.Errorf("meta: %+v", got)
	}
	a.do("DELETE", "/v1/apps/crm/backups/x", "", "Idempotency-Key", "mine", "Authorization", "Bearer bob-token").want(t, http.StatusNotFound)
	if got != (domain.Meta{Actor: "bob", CommandID: "mine", ClientKey: true}) {
		t.Errorf("meta: %+v", got)
	}
}
