package natsapi_test

import (
	"strings"
	"testing"

	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/apitest"
	"github.com/backupledger/backupledger/usecase"
)

// *service.Restores is what backupd passes as Deps.Restores.
var _ usecase.Restores = (*service.Restores)(nil)

func boolp(b bool) *bool { return &b }

// unchanged fails the test if the stream grew since appends was read.
func (a *api) unchanged(what string, appends int) {
	a.t.Helper()
	if got := a.st.Store.Appends(); got != appends {
		a.t.Errorf("%s: the stream grew from %d to %d events", what, appends, got)
	}
}

// uploaded stages and uploads an archive into crm and returns the ready
// backup.
func (a *api) uploaded(object, content string) projections.BackupView {
	a.t.Helper()
	a.st.Archives.Stage(object, zipBody(content))
	var b projections.BackupView
	a.request(natsapi.SubjectBackupsUpload, natsapi.UploadRequest{App: "crm", Object: object}).ok(a.t, &b)
	return b
}

func TestMaintenanceEndpoints(t *testing.T) {
	a := newAPI(t, nil)
	a.request(natsapi.SubjectConfigPut, natsapi.PutDocRequest{App: "crm", Key: "theme", Value: []byte("dark")}).ok(t, nil)

	var on projections.AppView
	a.request(natsapi.SubjectMaintenanceStart, natsapi.MaintenanceRequest{App: "crm", Reason: "upgrade"}).ok(t, &on)
	if m := on.Maintenance; !m.On || m.Since == nil || !m.Since.Equal(apitest.Start) || m.By != "alice" || m.Reason != "upgrade" {
		t.Errorf("maintenance after start: %+v", m)
	}

	n := a.st.Store.Appends()
	refusals := []struct {
		name, subject string
		body          any
		status        int
		code          string
	}{
		{"start twice", natsapi.SubjectMaintenanceStart, `{"app":"crm","reason":"again"}`, 409, domain.CodeAlreadyMaintenance},
		{"no reason", natsapi.SubjectMaintenanceStart, `{"app":"erp"}`, 400, domain.CodeInvalidArgument},
		{"no app", natsapi.SubjectMaintenanceStart, `{"reason":"x"}`, 400, domain.CodeInvalidArgument},
		{"end without", natsapi.SubjectMaintenanceEnd, `{"app":"erp"}`, 409, domain.CodeNotInMaintenance},
		{"put a document", natsapi.SubjectConfigPut, natsapi.PutDocRequest{App: "crm", Key: "theme", Value: []byte("light")}, 409, domain.CodeAppInMaintenance},
		{"delete a document", natsapi.SubjectConfigDelete, natsapi.DocRequest{App: "crm", Key: "theme"}, 409, domain.CodeAppInMaintenance},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			a.request(tt.subject, tt.body).problem(t, tt.status, tt.code)
		})
	}
	a.unchanged("refusals", n)

	// Reads stay allowed and the document is unchanged; backups may
	// still be taken.
	var val usecase.DocValue
	a.request(natsapi.SubjectConfigGet, natsapi.DocRequest{App: "crm", Key: "theme"}).ok(t, &val)
	if string(val.Value) != "dark" {
		t.Errorf("document during maintenance: %q", val.Value)
	}
	a.request(natsapi.SubjectBackupsCreate, `{"app":"crm"}`).ok(t, nil)

	var off projections.AppView
	a.request(natsapi.SubjectMaintenanceEnd, `{"app":"crm"}`).ok(t, &off)
	if off.Maintenance.On {
		t.Errorf("maintenance after end: %+v", off.Maintenance)
	}
	a.request(natsapi.SubjectMaintenanceEnd, `{"app":"crm"}`).problem(t, 409, domain.CodeNotInMaintenance)
	a.request(natsapi.SubjectConfigPut, natsapi.PutDocRequest{App: "crm", Key: "theme", Value: []byte("light")}).ok(t, nil)

	// A retry with the same key answers the first result.
	key := natsapi.CommandFields{IdempotencyKey: "m-1"}
	a.request(natsapi.SubjectMaintenanceStart, natsapi.MaintenanceRequest{App: "crm", Reason: "r", CommandFields: key}).ok(t, nil)
	n = a.st.Store.Appends()
	r := a.request(natsapi.SubjectMaintenanceStart, natsapi.MaintenanceRequest{App: "crm", Reason: "r", CommandFields: key}).ok(t, nil)
	if r.msg.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay headers: %v", r.msg.Header)
	}
	a.unchanged("replay", n)
	a.request(natsapi.SubjectMaintenanceEnd, natsapi.MaintenanceRequest{App: "crm", CommandFields: key}).problem(t, 422, domain.CodeIdempotencyKeyReused)
}

func TestRestoreEndpoints(t *testing.T) {
	a := newAPI(t, nil)
	b := a.uploaded("v1.zip", "the content")

	n := a.st.Store.Appends()
	for _, tt := range []struct {
		name string
		req  natsapi.CreateRestoreRequest
		want string
	}{
		{"no backup", natsapi.CreateRestoreRequest{App: "crm", PreRestoreBackup: boolp(false), AutoEndMaintenance: boolp(false)}, "backup_id"},
		{"no pre_restore_backup", natsapi.CreateRestoreRequest{App: "crm", BackupID: b.ID, AutoEndMaintenance: boolp(false)}, "pre_restore_backup"},
		{"no auto_end_maintenance", natsapi.CreateRestoreRequest{App: "crm", BackupID: b.ID, PreRestoreBackup: boolp(false)}, "auto_end_maintenance"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := a.request(natsapi.SubjectRestoresCreate, tt.req).problem(t, 400, domain.CodeInvalidArgument)
			if !strings.Contains(p.Detail, tt.want) {
				t.Errorf("detail %q does not name %q", p.Detail, tt.want)
			}
		})
	}
	a.unchanged("bad requests", n)

	var v projections.RestoreView
	a.request(natsapi.SubjectRestoresCreate, natsapi.CreateRestoreRequest{App: "crm", BackupID: b.ID,
		PreRestoreBackup: boolp(true), AutoEndMaintenance: boolp(false)}).ok(t, &v)
	if v.ID == "" || v.App != "crm" || v.SourceApp != "crm" || v.BackupID != b.ID || v.Status != "running" ||
		v.Step != domain.StepRequested || !v.PreRestoreBackup || v.RequestedBy != "alice" || len(v.Steps) != 1 {
		t.Errorf("restore: %+v", v)
	}
	var got projections.RestoreView
	a.request(natsapi.SubjectRestoresGet, natsapi.RestoreRequest{App: "crm", ID: v.ID}).ok(t, &got)
	if got.ID != v.ID || got.Status != "running" {
		t.Errorf("get: %+v", got)
	}
	var list projections.RestoreList
	a.request(natsapi.SubjectRestoresList, natsapi.AppRequest{App: "crm"}).ok(t, &list)
	if len(list.Restores) != 1 || list.Restores[0].ID != v.ID {
		t.Errorf("list: %+v", list)
	}
	var app projections.AppView
	a.request(natsapi.SubjectAppsGet, natsapi.AppRequest{App: "crm"}).ok(t, &app)
	if app.ActiveRestore != v.ID {
		t.Errorf("app: %+v", app)
	}
	a.request(natsapi.SubjectRestoresGet, natsapi.RestoreRequest{App: "crm", ID: "nope"}).problem(t, 404, domain.CodeNotFound)

	n = a.st.Store.Appends()
	a.request(natsapi.SubjectRestoresCreate, natsapi.CreateRestoreRequest{App: "crm", BackupID: b.ID,
		PreRestoreBackup: boolp(false), AutoEndMaintenance: boolp(false)}).problem(t, 409, domain.CodeRestoreInProgress)
	a.unchanged("second restore", n)

	// Into another, new app: the restore lives there.
	a.request(natsapi.SubjectRestoresCreate, natsapi.CreateRestoreRequest{App: "crm", BackupID: b.ID, TargetApp: "crm-copy",
		PreRestoreBackup: boolp(false), AutoEndMaintenance: boolp(true)}).ok(t, &v)
	if v.App != "crm-copy" || v.SourceApp != "crm" {
		t.Errorf("restore into a new app: %+v", v)
	}
	a.request(natsapi.SubjectRestoresGet, natsapi.RestoreRequest{App: "crm-copy", ID: v.ID}).ok(t, nil)
}

func TestRestoreRefusalsForUsers(t *testing.T) {
	a := newBareAPI(t, nil)
	seedIdentity(a)
	carol := a.login("carol", carolPW).Token
	dave := a.login("dave", "dave's long password").Token
	a.as(carol, natsapi.SubjectAppsRegister, natsapi.RegisterAppRequest{App: "crm", Org: "acme"}).ok(t, nil)
	ready := a.uploaded("ready.zip", "content")
	var queued projections.BackupView
	a.request(natsapi.SubjectBackupsCreate, `{"app":"crm","name":"queued one"}`).ok(t, &queued)
	a.request(natsapi.SubjectAppsRegister, natsapi.RegisterAppRequest{App: "erp", Org: "other"}).ok(t, nil)
	a.request(natsapi.SubjectBackupsCreate, `{"app":"erp"}`).ok(t, nil)

	req := func(id, target, pw string) natsapi.CreateRestoreRequest {
		return natsapi.CreateRestoreRequest{App: "crm", BackupID: id, TargetApp: target,
			PreRestoreBackup: boolp(false), AutoEndMaintenance: boolp(true), Password: pw}
	}
	const wrong = "not carol's password at all"
	var before projections.AppView
	a.request(natsapi.SubjectAppsGet, natsapi.AppRequest{App: "crm"}).ok(t, &before)
	tests := []struct {
		name, token string
		req         natsapi.CreateRestoreRequest
		status      int
		code        string
		// streamGrows: a wrong password is recorded (on the identity
		// subject), never on the app's.
		streamGrows bool
	}{
		{"wrong password", carol, req(ready.ID, "", wrong), 403, domain.CodePasswordIncorrect, true},
		{"no password", carol, req(ready.ID, "", ""), 400, domain.CodeInvalidArgument, false},
		{"not an admin of the app", dave, req(ready.ID, "", "dave's long password"), 404, domain.CodeNotFound, false},
		{"unknown backup", carol, req("01K3ZQ8V1C4P2M7Q9D3E6F8G0H", "", carolPW), 404, domain.CodeNotFound, false},
		{"backup not ready", carol, req(queued.ID, "", carolPW), 409, domain.CodeBackupNotReady, false},
		{"a target the user does not administer", carol, req(ready.ID, "erp", carolPW), 404, domain.CodeNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := a.st.Store.Appends()
			a.as(tt.token, natsapi.SubjectRestoresCreate, tt.req).problem(t, tt.status, tt.code)
			// A wrong password is recorded in the background: wait for
			// it, so that the next case counts only its own appends.
			a.st.Identity.WaitRecorded()
			if !tt.streamGrows {
				a.unchanged(tt.name, n)
			}
			var after projections.AppView
			a.request(natsapi.SubjectAppsGet, natsapi.AppRequest{App: "crm"}).ok(t, &after)
			if after.Events != before.Events {
				t.Errorf("app crm has %d events, had %d", after.Events, before.Events)
			}
		})
	}

	var v projections.RestoreView
	a.as(carol, natsapi.SubjectRestoresCreate, req(ready.ID, "", carolPW)).ok(t, &v)
	if v.RequestedBy != "carol" || v.App != "crm" {
		t.Errorf("carol's restore: %+v", v)
	}
	a.as(dave, natsapi.SubjectRestoresGet, natsapi.RestoreRequest{App: "crm", ID: v.ID}).problem(t, 404, domain.CodeNotFound)
	a.as(dave, natsapi.SubjectRestoresList, natsapi.AppRequest{App: "crm"}).problem(t, 404, domain.CodeNotFound)
	a.as(dave, natsapi.SubjectMaintenanceStart, natsapi.MaintenanceRequest{App: "crm", Reason: "x"}).problem(t, 404, domain.CodeNotFound)

	logs := a.logs.String()
	for _, pw := range []string{carolPW, wrong, "dave's long password"} {
		if strings.Contains(logs, pw) {
			t.Errorf("a password is in the request log:\n%s", logs)
		}
	}
}

func TestRestoreEndpointsWithoutRestores(t *testing.T) {
	a := newAPI(t, func(d *deps) { d.Restores = nil })
	for _, subject := range []string{natsapi.SubjectMaintenanceStart, natsapi.SubjectMaintenanceEnd, natsapi.SubjectRestoresCreate} {
		a.request(subject, `{"app":"crm","reason":"x"}`).problem(t, 503, domain.CodeUnavailable)
	}
	a.request(natsapi.SubjectRestoresList, `{"app":"crm"}`).ok(t, nil)
}

// A restore request's idempotency key is bound to the request, over every
// target: the key with another target is refused before anything happens.
func TestRestoreKeyBoundToRequest(t *testing.T) {
	a := newAPI(t, nil)
	b := a.uploaded("v1.zip", "the content")
	no := false
	req := func(target string) natsapi.CreateRestoreRequest {
		return natsapi.CreateRestoreRequest{App: "crm", BackupID: b.ID, TargetApp: target, PreRestoreBackup: &no, AutoEndMaintenance: &no,
			CommandFields: natsapi.CommandFields{IdempotencyKey: "rs-1"}}
	}
	var first, again projections.RestoreView
	a.request(natsapi.SubjectRestoresCreate, req("fresh-copy")).ok(t, &first)
	n := a.st.Store.Appends()
	a.request(natsapi.SubjectRestoresCreate, req("fresh-copy")).ok(t, &again)
	if again.ID != first.ID {
		t.Errorf("retry: restore %s, want %s", again.ID, first.ID)
	}
	a.request(natsapi.SubjectRestoresCreate, req("other-copy")).problem(t, 422, domain.CodeIdempotencyKeyReused)
	a.unchanged("reused key", n)
	a.st.Identity.Read(func(d *domain.Directory) {
		if _, ok := d.App("other-copy"); ok {
			t.Error("a refused request registered its target")
		}
	})
}
