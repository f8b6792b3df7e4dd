package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/apitest"
	"github.com/backupledger/backupledger/usecase"
)

// *service.Restores is what backupd passes as Deps.Restores.
var _ usecase.Restores = (*service.Restores)(nil)

// appState decodes r's body as an app state.
func (r response) appState(t *testing.T) projections.AppView {
	t.Helper()
	var v projections.AppView
	decode(t, r.body, &v)
	return v
}

// restore decodes r's body as a restore.
func (r response) restore(t *testing.T) projections.RestoreView {
	t.Helper()
	var v projections.RestoreView
	decode(t, r.body, &v)
	return v
}

// refused checks that r is a problem with status and code.
func (r response) refused(t *testing.T, status int, code string) usecase.Problem {
	t.Helper()
	p := r.want(t, status).problem(t)
	if p.Code != code {
		t.Fatalf("code: got %q, want %q; %+v", p.Code, code, p)
	}
	return p
}

// unchanged fails the test if the stream grew since appends was read.
func (a *api) unchanged(what string, appends int) {
	a.t.Helper()
	if got := a.st.Store.Appends(); got != appends {
		a.t.Errorf("%s: the stream grew from %d to %d events", what, appends, got)
	}
}

func TestMaintenance(t *testing.T) {
	a := newAPI(t, nil)
	a.do("PUT", "/v1/apps/crm/config/settings/theme", "dark").want(t, http.StatusCreated)

	on := a.do("POST", "/v1/apps/crm/maintenance", `{"reason":"  upgrade to v2 "}`).want(t, http.StatusOK).appState(t)
	m := on.Maintenance
	if !m.On || m.Since == nil || !m.Since.Equal(apitest.Start) || m.By != "alice" || m.Reason != "upgrade to v2" || m.RestoreID != "" {
		t.Errorf("maintenance after start: %+v", m)
	}
	if got := string(a.do("GET", "/v1/apps/crm", "").want(t, http.StatusOK).body); !strings.Contains(got,
		`"maintenance":{"on":true,"since":"2026-08-31T12:02:00Z","by":"alice","reason":"upgrade to v2","restore_id":""},"active_restore":""`) {
		t.Errorf("app state JSON: %s", got)
	}

	// Refusals change nothing.
	n := a.st.Store.Appends()
	refusals := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"start twice", "POST", "/v1/apps/crm/maintenance", `{"reason":"again"}`, http.StatusConflict, domain.CodeAlreadyMaintenance},
		{"no reason", "POST", "/v1/apps/erp/maintenance", `{}`, http.StatusBadRequest, domain.CodeInvalidArgument},
		{"blank reason", "POST", "/v1/apps/erp/maintenance", `{"reason":"  "}`, http.StatusBadRequest, domain.CodeInvalidArgument},
		{"unknown field", "POST", "/v1/apps/erp/maintenance", `{"why":"x"}`, http.StatusBadRequest, domain.CodeInvalidArgument},
		{"end without", "DELETE", "/v1/apps/erp/maintenance", "", http.StatusConflict, domain.CodeNotInMaintenance},
		{"put a document", "PUT", "/v1/apps/crm/config/settings/theme", "light", http.StatusConflict, domain.CodeAppInMaintenance},
		{"put a new document", "PUT", "/v1/apps/crm/config/new", "x", http.StatusConflict, domain.CodeAppInMaintenance},
		{"delete a document", "DELETE", "/v1/apps/crm/config/settings/theme", "", http.StatusConflict, domain.CodeAppInMaintenance},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			p := a.do(tt.method, tt.path, tt.body).refused(t, tt.status, tt.code)
			if tt.code == domain.CodeAppInMaintenance && !strings.Contains(p.Detail, "upgrade to v2") {
				t.Errorf("detail does not say why: %q", p.Detail)
			}
		})
	}
	a.unchanged("refusals", n)

	// Reads stay allowed, and the document is as it was; backups may
	// still be taken.
	if got := string(a.do("GET", "/v1/apps/crm/config/settings/theme", "").want(t, http.StatusOK).body); got != "dark" {
		t.Errorf("document during maintenance: %q", got)
	}
	a.do("GET", "/v1/apps/crm/config/new", "").want(t, http.StatusNotFound)
	var docs usecase.DocList
	decode(t, a.do("GET", "/v1/apps/crm/config", "").want(t, http.StatusOK).body, &docs)
	if len(docs.Documents) != 1 {
		t.Errorf("documents during maintenance: %+v", docs)
	}
	a.create("crm", "during maintenance")

	// The end; then documents change again.
	off := a.do("DELETE", "/v1/apps/crm/maintenance", `{"reason":"done"}`).want(t, http.StatusOK).appState(t)
	if off.Maintenance != (projections.MaintenanceView{}) {
		t.Errorf("maintenance after end: %+v", off.Maintenance)
	}
	a.do("DELETE", "/v1/apps/crm/maintenance", "").refused(t, http.StatusConflict, domain.CodeNotInMaintenance)
	a.do("PUT", "/v1/apps/crm/config/settings/theme", "light").want(t, http.StatusOK)

	// An end without a body is fine; a retry with the same key answers
	// the first result.
	a.do("POST", "/v1/apps/crm/maintenance", `{"reason":"r"}`, "Idempotency-Key", "m-1").want(t, http.StatusOK)
	n = a.st.Store.Appends()
	r := a.do("POST", "/v1/apps/crm/maintenance", `{"reason":"r"}`, "Idempotency-Key", "m-1").want(t, http.StatusOK)
	if r.header.Get("Idempotent-Replayed") != "true" || !r.appState(t).Maintenance.On {
		t.Errorf("replay: %v %s", r.header, r.body)
	}
	a.unchanged("replay", n)
	a.do("DELETE", "/v1/apps/crm/maintenance", "", "Idempotency-Key", "m-1").refused(t, http.StatusUnprocessableEntity, domain.CodeIdempotencyKeyReused)
	a.do("DELETE", "/v1/apps/crm/maintenance", "").want(t, http.StatusOK)
}

func TestRestoreRequest(t *testing.T) {
	a := newAPI(t, nil)
	b := a.uploaded("v1", "the content")

	// Badly formed requests are refused before anything is checked.
	n := a.st.Store.Appends()
	for _, tt := range []struct{ name, body, want string }{
		{"no backup", `{"pre_restore_backup":false,"auto_end_maintenance":false}`, "backup_id"},
		{"no pre_restore_backup", `{"backup_id":"` + b.ID + `","auto_end_maintenance":false}`, "pre_restore_backup"},
		{"no auto_end_maintenance", `{"backup_id":"` + b.ID + `","pre_restore_backup":true}`, "auto_end_maintenance"},
		{"unknown field", `{"backup_id":"` + b.ID + `","pre_restore_backup":true,"auto_end_maintenance":true,"force":true}`, "force"},
		{"bad target", `{"backup_id":"` + b.ID + `","pre_restore_backup":true,"auto_end_maintenance":true,"target_app":"Bad App"}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := a.do("POST", "/v1/apps/crm/restores", tt.body).refused(t, http.StatusBadRequest, domain.CodeInvalidArgument)
			if !strings.Contains(p.Detail, tt.want) {
				t.Errorf("detail %q does not name %q", p.Detail, tt.want)
			}
		})
	}
	a.unchanged("bad requests", n)

	// The server administrator needs no password.
	first := `{"backup_id":"` + b.ID + `","pre_restore_backup":true,"auto_end_maintenance":false}`
	r := a.do("POST", "/v1/apps/crm/restores", first, "Idempotency-Key", "rs-1").want(t, http.StatusAccepted)
	v := r.restore(t)
	if v.ID == "" || v.App != "crm" || v.SourceApp != "crm" || v.BackupID != b.ID || v.Status != "running" ||
		v.Step != domain.StepRequested || !v.PreRestoreBackup || v.AutoEndMaintenance || v.RequestedBy != "alice" ||
		!v.RequestedAt.Equal(apitest.Start) || v.EndedAt != nil || v.Error != nil || len(v.Steps) != 1 {
		t.Errorf("restore: %+v", v)
	}
	if got, want := r.header.Get("Location"), "/v1/apps/crm/restores/"+v.ID; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if strings.Contains(string(r.body), "password") {
		t.Errorf("the answer mentions a password: %s", r.body)
	}
	got := a.do("GET", r.header.Get("Location"), "").want(t, http.StatusOK).restore(t)
	if got.ID != v.ID || got.Status != "running" {
		t.Errorf("GET restore: %+v", got)
	}
	var list projections.RestoreList
	decode(t, a.do("GET", "/v1/apps/crm/restores", "").want(t, http.StatusOK).body, &list)
	if len(list.Restores) != 1 || list.Restores[0].ID != v.ID {
		t.Errorf("list: %+v", list)
	}
	if s := a.do("GET", "/v1/apps/crm", "").want(t, http.StatusOK).appState(t); s.ActiveRestore != v.ID {
		t.Errorf("active restore: %+v", s)
	}
	a.do("GET", "/v1/apps/crm/restores/nope", "").refused(t, http.StatusNotFound, domain.CodeNotFound)
	if got := string(a.do("GET", "/v1/apps/empty/restores", "").want(t, http.StatusOK).body); got != "{\"restores\":[]}\n" {
		t.Errorf("empty list %q", got)
	}

	// One restore at a time per target; the refusal changes nothing.
	n = a.st.Store.Appends()
	a.do("POST", "/v1/apps/crm/restores", `{"backup_id":"`+b.ID+`","pre_restore_backup":false,"auto_end_maintenance":false}`).
		refused(t, http.StatusConflict, domain.CodeRestoreInProgress)
	a.unchanged("second restore", n)
	// A retry of the first answers it again.
	again := a.do("POST", "/v1/apps/crm/restores", first, "Idempotency-Key", "rs-1").want(t, http.StatusAccepted).restore(t)
	if again.ID != v.ID {
		t.Errorf("retry answered restore %s, want %s", again.ID, v.ID)
	}
	a.unchanged("retry", n)

	// Into another, new app: the restore lives there.
	r = a.do("POST", "/v1/apps/crm/restores",
		`{"backup_id":"`+b.ID+`","target_app":"crm-copy","pre_restore_backup":false,"auto_end_maintenance":true}`).want(t, http.StatusAccepted)
	v = r.restore(t)
	if v.App != "crm-copy" || v.SourceApp != "crm" || !v.AutoEndMaintenance {
		t.Errorf("restore into a new app: %+v", v)
	}
	if got, want := r.header.Get("Location"), "/v1/apps/crm-copy/restores/"+v.ID; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	a.do("GET", r.header.Get("Location"), "").want(t, http.StatusOK)
	a.do("GET", "/v1/apps/crm/restores/"+v.ID, "").refused(t, http.StatusNotFound, domain.CodeNotFound)
}

func TestRestoreRefusals(t *testing.T) {
	a := newBareAPI(t, nil)
	seedIdentity(a)
	carol := a.login("carol", carolPW).Token
	dave := a.login("dave", "dave's long password").Token
	a.as(carol, "PUT", "/v1/apps/crm", `{"org":"acme"}`).want(t, http.StatusOK)
	ready := a.uploaded("ready one", "content")
	queued := a.create("crm", "queued one")
	a.do("PUT", "/v1/apps/erp", `{"org":"other"}`).want(t, http.StatusOK)
	a.create("erp", "the admin's app")

	body := func(id, target, pw string) string {
		s := `{"backup_id":"` + id + `","pre_restore_backup":false,"auto_end_maintenance":true`
		if target != "" {
			s += `,"target_app":"` + target + `"`
		}
		if pw != "" {
			s += `,"password":` + quote(pw)
		}
		return s + "}"
	}
	const wrong = "not carol's password at all"
	crmEvents := a.st.Proj.App("crm").Events
	tests := []struct {
		name, token, body string
		status            int
		code              string
		// streamGrows: a wrong password is recorded (on the identity
		// subject), never on the app's.
		streamGrows bool
	}{
		{"wrong password", carol, body(ready.ID, "", wrong), http.StatusForbidden, domain.CodePasswordIncorrect, true},
		{"no password", carol, body(ready.ID, "", ""), http.StatusBadRequest, domain.CodeInvalidArgument, false},
		{"not an admin of the app", dave, body(ready.ID, "", "dave's long password"), http.StatusNotFound, domain.CodeNotFound, false},
		{"unknown backup", carol, body("01K3ZQ8V1C4P2M7Q9D3E6F8G0H", "", carolPW), http.StatusNotFound, domain.CodeNotFound, false},
		{"backup not ready", carol, body(queued.ID, "", carolPW), http.StatusConflict, domain.CodeBackupNotReady, false},
		{"a target the user does not administer", carol, body(ready.ID, "erp", carolPW), http.StatusNotFound, domain.CodeNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := a.st.Store.Appends()
			a.as(tt.token, "POST", "/v1/apps/crm/restores", tt.body).refused(t, tt.status, tt.code)
			// A wrong password is recorded in the background: wait for
			// it, so that the next case counts only its own appends.
			a.st.Identity.WaitRecorded()
			if !tt.streamGrows {
				a.unchanged(tt.name, n)
			}
			if got := a.st.Proj.App("crm").Events; got != crmEvents {
				t.Errorf("app crm has %d events, had %d", got, crmEvents)
			}
		})
	}

	// With the right password, carol restores.
	r := a.as(carol, "POST", "/v1/apps/crm/restores", body(ready.ID, "", carolPW)).want(t, http.StatusAccepted)
	if v := r.restore(t); v.RequestedBy != "carol" || v.App != "crm" {
		t.Errorf("carol's restore: %+v", v)
	}
	a.as(dave, "GET", r.header.Get("Location"), "").refused(t, http.StatusNotFound, domain.CodeNotFound)
	a.as(carol, "GET", r.header.Get("Location"), "").want(t, http.StatusOK)

	// No password reaches the request log.
	logs := a.logs.String()
	for _, pw := range []string{carolPW, wrong, "dave's long password"} {
		if strings.Contains(logs, pw) {
			t.Errorf("a password is in the request log:\n%s", logs)
		}
	}
}

func TestRestoresUnavailable(t *testing.T) {
	a := newAPI(t, func(d *deps) { d.Restores = nil })
	for _, req := range [][3]string{
		{"POST", "/v1/apps/crm/maintenance", `{"reason":"x"}`},
		{"DELETE", "/v1/apps/crm/maintenance", ""},
		{"POST", "/v1/apps/crm/restores", `{"backup_id":"x","pre_restore_backup":false,"auto_end_maintenance":false}`},
	} {
		a.do(req[0], req[1], req[2]).refused(t, http.StatusServiceUnavailable, domain.CodeUnavailable)
	}
	a.do("GET", "/v1/apps/crm/restores", "").want(t, http.StatusOK)
}

// A restore request's Idempotency-Key is bound to the request, over every
// target: a retry answers the first restore; the key with another target,
// backup or option is refused before anything happens (no second restore,
// no new app registered).
func TestRestoreKeyBoundToRequest(t *testing.T) {
	a := newAPI(t, nil)
	b := a.uploaded("v1", "the content")
	body := func(target string, pre bool) string {
		return fmt.Sprintf(`{"backup_id":%q,"target_app":%q,"pre_restore_backup":%v,"auto_end_maintenance":false}`, b.ID, target, pre)
	}
	first := a.do("POST", "/v1/apps/crm/restores", body("fresh-copy", false), "Idempotency-Key", "rs-1").want(t, http.StatusAccepted).restore(t)
	n := a.st.Store.Appends()
	again := a.do("POST", "/v1/apps/crm/restores", body("fresh-copy", false), "Idempotency-Key", "rs-1").want(t, http.StatusAccepted)
	if again.restore(t).ID != first.ID {
		t.Errorf("retry: %s, want restore %s", again.body, first.ID)
	}
	for _, other := range []string{body("other-copy", false), body("fresh-copy", true), body("crm", false)} {
		a.do("POST", "/v1/apps/crm/restores", other, "Idempotency-Key", "rs-1").refused(t, http.StatusUnprocessableEntity, domain.CodeIdempotencyKeyReused)
	}
	a.unchanged("reused keys", n)
	a.st.Identity.Read(func(d *domain.Directory) {
		if _, ok := d.App("other-copy"); ok {
			t.Error("a refused request registered its target")
		}
	})
}
