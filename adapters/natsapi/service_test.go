package natsapi_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/apitest"
	"github.com/backupledger/backupledger/usecase"
)

func TestServiceInfo(t *testing.T) {
	a := newAPI(t, nil)
	info := a.svc.Info()
	if info.Name != "backup-ledger" || info.Version != natsapi.DefaultVersion {
		t.Errorf("info: %s %s", info.Name, info.Version)
	}
	var subjects []string
	for _, e := range info.Endpoints {
		subjects = append(subjects, e.Subject)
	}
	slices.Sort(subjects)
	want := []string{
		natsapi.SubjectAppsGet, natsapi.SubjectBackupsAll, natsapi.SubjectBackupsCreate, natsapi.SubjectBackupsDelete,
		natsapi.SubjectBackupsDownload, natsapi.SubjectBackupsGet, natsapi.SubjectBackupsList, natsapi.SubjectBackupsRename,
		natsapi.SubjectBackupsUpload, natsapi.SubjectConfigDelete,
		natsapi.SubjectConfigGet, natsapi.SubjectConfigList, natsapi.SubjectConfigPut, natsapi.SubjectLogsApp, natsapi.SubjectLogsBackup,
		natsapi.SubjectOrgsCreate, natsapi.SubjectOrgsList, natsapi.SubjectOrgsGet, natsapi.SubjectOrgsMembersAdd,
		natsapi.SubjectOrgsMembersRemove, natsapi.SubjectUsersCreate, natsapi.SubjectUsersList, natsapi.SubjectUsersGet,
		natsapi.SubjectUsersDisable, natsapi.SubjectUsersPassword, natsapi.SubjectAppsRegister, natsapi.SubjectAppsAdminsGet,
		natsapi.SubjectAppsAdminsGrant, natsapi.SubjectAppsAdminsRevoke, natsapi.SubjectTokensCreate, natsapi.SubjectTokensList,
		natsapi.SubjectTokensRevoke, natsapi.SubjectSessionsCreate, natsapi.SubjectSessionsEnd, natsapi.SubjectMe,
		natsapi.SubjectMaintenanceStart, natsapi.SubjectMaintenanceEnd, natsapi.SubjectRestoresCreate,
		natsapi.SubjectRestoresGet, natsapi.SubjectRestoresList, natsapi.SubjectRetentionGet, natsapi.SubjectBackupsVerify, natsapi.SubjectBackupsQuote,
		natsapi.SubjectScheduleGet, natsapi.SubjectScheduleSet, natsapi.SubjectWebhooksCreate, natsapi.SubjectWebhooksList,
		natsapi.SubjectWebhooksDelete, natsapi.SubjectWebhooksDeliveries, natsapi.SubjectKeysList, natsapi.SubjectKeysRotate,
	}
	slices.Sort(want)
	if strings.Join(subjects, " ") != strings.Join(want, " ") {
		t.Errorf("subjects:\n got %v\nwant %v", subjects, want)
	}
}

func TestCreateListGet(t *testing.T) {
	a := newAPI(t, nil)
	var b projections.BackupView
	r := a.request(natsapi.SubjectBackupsCreate, `{"app":"crm","name":" nightly-ish ","description":"d"}`).ok(t, &b)
	if b.ID == "" || b.App != "crm" || b.Name != "nightly-ish" || b.Description != "d" || b.Status != "queued" ||
		b.Origin != "manual" || b.CreatedBy != "alice" || !b.CreatedAt.Equal(apitest.Start) {
		t.Errorf("created: %+v", b)
	}
	if r.msg.Header.Get("X-Command-Id") == "" {
		t.Errorf("no X-Command-Id")
	}
	if !strings.Contains(string(r.msg.Data), `"created_at":"2026-08-31T12:02:00Z"`) {
		t.Errorf("body %s", r.msg.Data)
	}

	a.st.Clock.Advance(5 * time.Minute)
	var second projections.BackupView
	a.request(natsapi.SubjectBackupsCreate, natsapi.CreateRequest{App: "crm"}).ok(t, &second)
	if second.Name != "August 31 Monday 12:07" {
		t.Errorf("default name %q", second.Name)
	}
	var other projections.BackupView
	a.request(natsapi.SubjectBackupsCreate, `{"app":"shop"}`).ok(t, &other)

	var list projections.BackupList
	a.request(natsapi.SubjectBackupsList, `{"app":"crm"}`).ok(t, &list)
	if len(list.Backups) != 2 || list.Backups[0].ID != b.ID || list.Backups[1].ID != second.ID {
		t.Errorf("list: %+v", list)
	}
	a.request(natsapi.SubjectBackupsAll, "").ok(t, &list)
	if len(list.Backups) != 3 {
		t.Errorf("all: %+v", list)
	}
	var got projections.BackupView
	a.request(natsapi.SubjectBackupsGet, natsapi.BackupRequest{App: "crm", ID: b.ID}).ok(t, &got)
	if got.ID != b.ID || got.Name != "nightly-ish" {
		t.Errorf("get: %+v", got)
	}
	if got := a.st.Store.Appends(); got != 3 {
		t.Errorf("appends %d", got)
	}
}

func TestRenameDeleteLogs(t *testing.T) {
	a := newAPI(t, nil)
	var b projections.BackupView
	a.request(natsapi.SubjectBackupsCreate, `{"app":"crm","name":"old"}`).ok(t, &b)

	var renamed projections.BackupView
	a.request(natsapi.SubjectBackupsRename, `{"app":"crm","id":"`+b.ID+`","name":"new"}`).ok(t, &renamed)
	if renamed.Name != "new" || renamed.ID != b.ID {
		t.Errorf("rename: %+v", renamed)
	}

	var del natsapi.Deleted
	a.request(natsapi.SubjectBackupsDelete, natsapi.DeleteRequest{App: "crm", ID: b.ID}).ok(t, &del)
	if del != (natsapi.Deleted{App: "crm", ID: b.ID, Deleted: true}) {
		t.Errorf("delete: %+v", del)
	}
	a.request(natsapi.SubjectBackupsGet, natsapi.BackupRequest{App: "crm", ID: b.ID}).problem(t, 404, "not_found")
	a.request(natsapi.SubjectBackupsDelete, natsapi.DeleteRequest{App: "crm", ID: b.ID}).problem(t, 404, "not_found")

	var log projections.LogList
	a.request(natsapi.SubjectLogsBackup, natsapi.BackupRequest{App: "crm", ID: b.ID}).ok(t, &log)
	var evs []string
	for _, e := range log.Entries {
		evs = append(evs, e.Event)
		if e.Actor != "alice" {
			t.Errorf("actor %q", e.Actor)
		}
	}
	if strings.Join(evs, ",") != "backup.requested,backup.renamed,backup.deleted" {
		t.Errorf("backup log: %v", evs)
	}
	a.request(natsapi.SubjectLogsApp, natsapi.AppRequest{App: "crm"}).ok(t, &log)
	if len(log.Entries) != 3 {
		t.Errorf("app log: %+v", log)
	}
	var app projections.AppView
	a.request(natsapi.SubjectAppsGet, natsapi.AppRequest{App: "crm"}).ok(t, &app)
	if app.App != "crm" || app.BackupCount != 0 || app.Events != 3 || app.QuotaLimit != 10 {
		t.Errorf("app: %+v", app)
	}
}

func TestConfigDocs(t *testing.T) {
	a := newAPI(t, nil)
	var doc usecase.DocView
	a.request(natsapi.SubjectConfigPut, natsapi.PutDocRequest{App: "crm", Key: "settings/theme", Value: []byte("dark\x00")}).ok(t, &doc)
	if doc.Key != "settings/theme" || doc.SizeBytes != 5 || doc.Revision == 0 {
		t.Errorf("put: %+v", doc)
	}
	// The value travels as base64.
	a.request(natsapi.SubjectConfigPut, `{"app":"crm","key":"a.json","value":"eyJ4IjoxfQ=="}`).ok(t, nil)

	var val usecase.DocValue
	a.request(natsapi.SubjectConfigGet, natsapi.DocRequest{App: "crm", Key: "settings/theme"}).ok(t, &val)
	if string(val.Value) != "dark\x00" || val.Revision != doc.Revision {
		t.Errorf("get: %+v", val)
	}
	a.request(natsapi.SubjectConfigGet, natsapi.DocRequest{App: "crm", Key: "a.json"}).ok(t, &val)
	if string(val.Value) != `{"x":1}` {
		t.Errorf("get a.json: %q", val.Value)
	}

	var list usecase.DocList
	a.request(natsapi.SubjectConfigList, natsapi.AppRequest{App: "crm"}).ok(t, &list)
	if len(list.Documents) != 2 || list.Documents[0].Key != "a.json" {
		t.Errorf("list: %+v", list)
	}
	var del natsapi.Deleted
	a.request(natsapi.SubjectConfigDelete, natsapi.DocRequest{App: "crm", Key: "a.json"}).ok(t, &del)
	if del != (natsapi.Deleted{App: "crm", Key: "a.json", Deleted: true}) {
		t.Errorf("delete: %+v", del)
	}
	a.request(natsapi.SubjectConfigGet, natsapi.DocRequest{App: "crm", Key: "a.json"}).problem(t, 404, "not_found")
	a.request(natsapi.SubjectConfigGet, natsapi.DocRequest{App: "crm"}).problem(t, 400, "invalid_argument")
}

func TestIdempotencyKey(t *testing.T) {
	a := newAPI(t, nil)
	var first, again, viaHeader projections.BackupView
	r1 := a.request(natsapi.SubjectBackupsCreate, `{"app":"crm","idempotency_key":"k-1"}`).ok(t, &first)
	r2 := a.request(natsapi.SubjectBackupsCreate, `{"app":"crm","idempotency_key":"k-1"}`).ok(t, &again)
	a.request(natsapi.SubjectBackupsCreate, `{"app":"crm"}`, "Idempotency-Key", "k-1").ok(t, &viaHeader)
	if again.ID != first.ID || viaHeader.ID != first.ID {
		t.Errorf("retries: %s %s, want %s", again.ID, viaHeader.ID, first.ID)
	}
	if r1.msg.Header.Get("X-Command-Id") != "k-1" || r2.msg.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("headers: %v %v", r1.msg.Header, r2.msg.Header)
	}
	if got := a.st.Store.Appends(); got != 1 {
		t.Errorf("appends %d, want 1", got)
	}
	a.request(natsapi.SubjectBackupsDelete, natsapi.DeleteRequest{App: "crm", ID: first.ID,
		CommandFields: natsapi.CommandFields{IdempotencyKey: "k-1"}}).problem(t, 422, domain.CodeIdempotencyKeyReused)
	another := "another"
	a.request(natsapi.SubjectBackupsCreate, natsapi.CreateRequest{App: "crm", Name: &another,
		CommandFields: natsapi.CommandFields{IdempotencyKey: "k-1"}}).problem(t, 422, domain.CodeIdempotencyKeyReused)
}
