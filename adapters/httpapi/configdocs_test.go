package httpapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/backupledger/backupledger/test/apitest"
	"github.com/backupledger/backupledger/usecase"
)

func TestConfigDocs(t *testing.T) {
	a := newAPI(t, nil)
	put := a.do("PUT", "/v1/apps/crm/config/settings/theme", "dark", "Content-Type", "text/plain").want(t, http.StatusCreated)
	var doc usecase.DocView
	decode(t, put.body, &doc)
	if doc.Key != "settings/theme" || doc.SizeBytes != 4 || doc.Revision == 0 || !doc.UpdatedAt.Equal(apitest.Start) {
		t.Errorf("put: %+v", doc)
	}
	if !strings.Contains(string(put.body), `"updated_at":"2026-08-31T12:02:00Z"`) {
		t.Errorf("put body %s", put.body)
	}
	if got := put.header.Get("Location"); got != "/v1/apps/crm/config/settings/theme" {
		t.Errorf("Location %q", got)
	}

	replaced := a.do("PUT", "/v1/apps/crm/config/settings/theme", "light", "Content-Type", "").want(t, http.StatusOK)
	decode(t, replaced.body, &doc)
	if doc.SizeBytes != 5 {
		t.Errorf("replace: %+v", doc)
	}
	a.do("PUT", "/v1/apps/crm/config/a.json", `{"x":1}`).want(t, http.StatusCreated)

	get := a.do("GET", "/v1/apps/crm/config/settings/theme", "").want(t, http.StatusOK)
	if string(get.body) != "light" || get.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("get: %q %v", get.body, get.header)
	}
	tag := get.header.Get("ETag")
	if want := `"` + strconv.FormatUint(doc.Revision, 10) + `"`; tag != want {
		t.Errorf("ETag %q, want %q", tag, want)
	}
	a.do("GET", "/v1/apps/crm/config/settings/theme", "", "If-None-Match", tag).want(t, http.StatusNotModified)

	var list usecase.DocList
	decode(t, a.do("GET", "/v1/apps/crm/config", "").want(t, http.StatusOK).body, &list)
	if len(list.Documents) != 2 || list.Documents[0].Key != "a.json" || list.Documents[1].Key != "settings/theme" {
		t.Errorf("list: %+v", list)
	}

	a.do("DELETE", "/v1/apps/crm/config/settings/theme", "").want(t, http.StatusNoContent)
	if p := a.do("GET", "/v1/apps/crm/config/settings/theme", "").want(t, http.StatusNotFound).problem(t); p.Code != "not_found" {
		t.Errorf("get deleted: %+v", p)
	}
	a.do("DELETE", "/v1/apps/crm/config/settings/theme", "").want(t, http.StatusNotFound)
	if got := string(a.do("GET", "/v1/apps/empty/config", "").want(t, http.StatusOK).body); got != "{\"documents\":[]}\n" {
		t.Errorf("empty list %q", got)
	}
}

func TestConfigDocErrors(t *testing.T) {
	a := newAPI(t, nil)
	if p := a.do("PUT", "/v1/apps/crm/config/big", strings.Repeat("x", 1025)).want(t, http.StatusRequestEntityTooLarge).problem(t); p.Code != "payload_too_large" {
		t.Errorf("too large: %+v", p)
	}
	if p := a.do("PUT", "/v1/apps/crm/config/", "x").want(t, http.StatusBadRequest).problem(t); p.Code != "invalid_argument" {
		t.Errorf("empty key: %+v", p)
	}
	if p := a.do("PUT", "/v1/apps/Bad/config/k", "x").want(t, http.StatusBadRequest).problem(t); p.Code != "invalid_argument" {
		t.Errorf("bad app: %+v", p)
	}
	if p := a.do("PUT", "/v1/apps/crm/config/k", "x", "Authorization", "").want(t, http.StatusUnauthorized).problem(t); p.Code != "unauthenticated" {
		t.Errorf("no token: %+v", p)
	}
}

func TestOperations(t *testing.T) {
	var ready atomic.Bool
	a := newAPI(t, func(d *deps) {
		d.Ready = ready.Load
		d.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ledger_up 1\n")) })
	})
	a.do("GET", "/healthz", "", "Authorization", "").want(t, http.StatusOK)
	if p := a.do("GET", "/readyz", "", "Authorization", "").want(t, http.StatusServiceUnavailable).problem(t); p.Code != "unavailable" {
		t.Errorf("readyz: %+v", p)
	}
	if p := a.do("GET", "/v1/backups", "").want(t, http.StatusServiceUnavailable).problem(t); p.Code != "unavailable" {
		t.Errorf("v1 before ready: %+v", p)
	}
	ready.Store(true)
	a.do("GET", "/readyz", "", "Authorization", "").want(t, http.StatusOK)
	a.do("GET", "/v1/backups", "").want(t, http.StatusOK)
	// Metrics are served by MetricsHandler, on a listener of their own
	// (TestMetricsHandler), never by the API's Handler.
	a.do("GET", "/metrics", "", "Authorization", "").want(t, http.StatusNotFound)
	if p := a.do("POST", "/healthz", "").want(t, http.StatusMethodNotAllowed).problem(t); p.Code != "method_not_allowed" {
		t.Errorf("POST /healthz: %+v", p)
	}

	noMetrics := newAPI(t, nil)
	noMetrics.do("GET", "/metrics", "").want(t, http.StatusNotFound)
	if !strings.Contains(a.logs.String(), "status=200") || !strings.Contains(a.logs.String(), "path=/readyz") {
		t.Errorf("request log: %s", a.logs.String())
	}
}
