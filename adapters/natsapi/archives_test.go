package natsapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/apitest"
	"github.com/backupledger/backupledger/usecase"
)

// *service.Transfers is what backupd passes as Deps.Transfers.
var _ usecase.Transfers = (*service.Transfers)(nil)

// zipBody is an archive that the fake archive store accepts.
func zipBody(content string) []byte { return []byte(apitest.ZipMagic + content) }

func TestUploadStaged(t *testing.T) {
	a := newAPI(t, nil)
	body := zipBody("nightly")
	a.st.Archives.Stage("exports/crm nightly.zip", body)

	var b projections.BackupView
	r := a.request(natsapi.SubjectBackupsUpload,
		`{"app":"crm","object":"exports/crm nightly.zip","description":"from prod","idempotency_key":"up-1"}`).ok(t, &b)
	if b.ID == "" || b.App != "crm" || b.Name != "crm nightly" || b.Description != "from prod" || b.Status != "ready" ||
		b.Origin != "upload" || b.CreatedBy != "alice" || !b.CreatedAt.Equal(apitest.Start) {
		t.Errorf("backup: %+v", b)
	}
	if b.SizeBytes != int64(len(body)) || b.SHA256 == nil || *b.SHA256 != apitest.HexSHA(body) || b.Source != "kv" || b.Original == nil {
		t.Errorf("archive facts: %+v", b)
	}
	if got := r.msg.Header.Get("X-Command-Id"); got != "up-1" {
		t.Errorf("X-Command-Id %q", got)
	}
	if _, ok := a.st.Archives.StagedObject("exports/crm nightly.zip"); ok {
		t.Errorf("the staging object is still there")
	}
	appends := a.st.Store.Appends()

	// A retry answers the first backup and stores nothing.
	var again projections.BackupView
	r = a.request(natsapi.SubjectBackupsUpload, natsapi.UploadRequest{App: "crm", Object: "exports/crm nightly.zip", Description: "from prod",
		CommandFields: natsapi.CommandFields{IdempotencyKey: "up-1"}}).ok(t, &again)
	if again.ID != b.ID || r.msg.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %+v, headers %v", again, r.msg.Header)
	}
	if got := a.st.Store.Appends(); got != appends {
		t.Errorf("a retry appended %d events", got-appends)
	}
	// The key with another request is refused, before anything is read.
	a.request(natsapi.SubjectBackupsUpload, natsapi.UploadRequest{App: "crm", Object: "exports/crm nightly.zip", Description: "from staging",
		CommandFields: natsapi.CommandFields{IdempotencyKey: "up-1"}}).problem(t, 422, domain.CodeIdempotencyKeyReused)
	if got := a.st.Store.Appends(); got != appends {
		t.Errorf("a reused key appended %d events", got-appends)
	}

	// A name given wins; none derivable gives the default name.
	a.st.Archives.Stage("a.zip", body)
	a.request(natsapi.SubjectBackupsUpload, `{"app":"crm","object":"a.zip","name":"chosen"}`).ok(t, &b)
	if b.Name != "chosen" {
		t.Errorf("name %q", b.Name)
	}
	a.st.Archives.Stage(".zip", body)
	a.request(natsapi.SubjectBackupsUpload, `{"app":"crm","object":".zip"}`).ok(t, &b)
	if b.Name != "August 31 Monday 12:02" {
		t.Errorf("default name %q", b.Name)
	}
	if objects, staged := a.st.Archives.Stored(); objects != 3 || staged != 0 {
		t.Errorf("stored %d, staged %d", objects, staged)
	}
}

func TestDownloadStaged(t *testing.T) {
	a := newAPIWith(t, natsapi.Config{}, func(d *deps) { d.location = time.FixedZone("CEST", 2*3600) })
	body := zipBody("content")
	a.st.Archives.Stage("x.zip", body)
	var b projections.BackupView
	a.request(natsapi.SubjectBackupsUpload, `{"app":"crm","object":"x.zip","name":"Bilan é/1"}`).ok(t, &b)

	var got usecase.StagedDownload
	r := a.request(natsapi.SubjectBackupsDownload, natsapi.DownloadRequest{App: "crm", ID: b.ID}).ok(t, &got)
	want := usecase.StagedDownload{
		StagedArchive: domain.StagedArchive{Bucket: "ledger_staging", Object: "download/" + b.ID, Size: int64(len(body)),
			SHA256: apitest.HexSHA(body), ExpiresAt: apitest.Start.Add(time.Hour)},
		FileName: "Bilan é_1_2026-08-31_14-02.zip",
	}
	if got != want {
		t.Errorf("download:\n got %+v\nwant %+v", got, want)
	}
	for _, field := range []string{`"bucket":"ledger_staging"`, `"size_bytes":11`, `"expires_at":"2026-08-31T13:02:00Z"`, `"file_name":"Bilan é_1_2026-08-31_14-02.zip"`} {
		if !strings.Contains(string(r.msg.Data), field) {
			t.Errorf("answer %s lacks %s", r.msg.Data, field)
		}
	}
	if data, ok := a.st.Archives.StagedObject(got.Object); !ok || string(data) != string(body) {
		t.Errorf("staged object %q %v", data, ok)
	}

	a.request(natsapi.SubjectBackupsDownload, `{"app":"crm","id":"`+b.ID+`","component":"config"}`).ok(t, &got)
	if got.FileName != "Bilan é_1_2026-08-31_14-02_config.zip" || got.SHA256 != apitest.HexSHA(apitest.ComponentZip(body)) {
		t.Errorf("component: %+v", got)
	}
}

func TestArchiveErrors(t *testing.T) {
	a := newAPI(t, nil)
	queued := a.request(natsapi.SubjectBackupsCreate, `{"app":"crm"}`)
	var q projections.BackupView
	queued.ok(t, &q)
	a.st.Archives.Stage("ok.zip", zipBody("ok"))
	var ready projections.BackupView
	a.request(natsapi.SubjectBackupsUpload, `{"app":"crm","object":"ok.zip"}`).ok(t, &ready)
	a.st.Archives.Stage("bad.zip", []byte("not a zip"))
	a.st.Archives.Stage("v9.zip", zipBody("format:9"))
	a.st.Archives.Stage("big.zip", zipBody("TOOBIG"))
	before := a.st.Store.Appends()

	tests := []struct {
		desc    string
		subject string
		body    string
		status  int
		code    string
		detail  string
	}{
		{"not a zip", natsapi.SubjectBackupsUpload, `{"app":"crm","object":"bad.zip"}`, 422, "archive_invalid", "not a zip"},
		{"format version", natsapi.SubjectBackupsUpload, `{"app":"crm","object":"v9.zip"}`, 422, "unsupported_archive_version", "version 9"},
		{"store limit", natsapi.SubjectBackupsUpload, `{"app":"crm","object":"big.zip"}`, 413, "archive_too_large", "8 GiB"},
		{"missing object", natsapi.SubjectBackupsUpload, `{"app":"crm","object":"nope.zip"}`, 404, "not_found", "nope.zip"},
		{"no object", natsapi.SubjectBackupsUpload, `{"app":"crm"}`, 400, "invalid_argument", `"object" is required`},
		{"empty name", natsapi.SubjectBackupsUpload, `{"app":"crm","object":"ok.zip","name":""}`, 400, "invalid_argument", "name"},
		{"unknown field", natsapi.SubjectBackupsUpload, `{"app":"crm","obj":"ok.zip"}`, 400, "invalid_argument", `unknown field "obj"`},
		{"not ready", natsapi.SubjectBackupsDownload, `{"app":"crm","id":"` + q.ID + `"}`, 409, "backup_not_ready", "queued"},
		{"unknown backup", natsapi.SubjectBackupsDownload, `{"app":"crm","id":"nope"}`, 404, "not_found", "nope"},
		{"unknown component", natsapi.SubjectBackupsDownload, `{"app":"crm","id":"` + ready.ID + `","component":"files"}`, 400, "invalid_argument", "files"},
		{"bad component", natsapi.SubjectBackupsDownload, `{"app":"crm","id":"` + ready.ID + `","component":"../x"}`, 400, "invalid_argument", "component must be"},
		{"bad app", natsapi.SubjectBackupsDownload, `{"app":"CRM","id":"x"}`, 400, "invalid_argument", "app id"},
	}
	for _, tt := range tests {
		p := a.request(tt.subject, tt.body).problem(t, tt.status, tt.code)
		if !strings.Contains(p.Detail, tt.detail) {
			t.Errorf("%s: detail %q lacks %q", tt.desc, p.Detail, tt.detail)
		}
	}
	if got := a.st.Store.Appends(); got != before {
		t.Errorf("refusals appended %d events", got-before)
	}
	if objects, _ := a.st.Archives.Stored(); objects != 1 {
		t.Errorf("stored archives: %d", objects)
	}
	if _, ok := a.st.Archives.StagedObject("bad.zip"); ok {
		t.Errorf("a refused staging object was kept")
	}

	// Quota: the app already holds a queued and a ready backup.
	for i := 2; i < domain.DefaultRules().MaxBackups; i++ {
		a.st.Archives.Stage("f.zip", zipBody("f"))
		a.request(natsapi.SubjectBackupsUpload, `{"app":"crm","object":"f.zip"}`).ok(t, nil)
	}
	a.st.Archives.Stage("f.zip", zipBody("f"))
	a.request(natsapi.SubjectBackupsUpload, `{"app":"crm","object":"f.zip"}`).problem(t, 409, "backup_quota_exceeded")

	// A key used for another command is refused (not a replay).
	a.request(natsapi.SubjectBackupsCreate, `{"app":"shop","idempotency_key":"k"}`).ok(t, nil)
	a.st.Archives.Stage("g.zip", zipBody("g"))
	a.request(natsapi.SubjectBackupsUpload, `{"app":"shop","object":"g.zip","idempotency_key":"k"}`).problem(t, 422, domain.CodeIdempotencyKeyReused)
}

func TestDownloadCorrupt(t *testing.T) {
	a := newAPI(t, nil)
	a.st.Archives.Stage("x.zip", zipBody("x"))
	var b projections.BackupView
	a.request(natsapi.SubjectBackupsUpload, `{"app":"crm","object":"x.zip"}`).ok(t, &b)
	a.st.Archives.Corrupt(b.ID, 0)

	p := a.request(natsapi.SubjectBackupsDownload, natsapi.DownloadRequest{App: "crm", ID: b.ID}).problem(t, 409, "backup_corrupt")
	if !strings.Contains(p.Detail, "marked corrupt") {
		t.Errorf("detail %q", p.Detail)
	}
	var got projections.BackupView
	a.request(natsapi.SubjectBackupsGet, natsapi.BackupRequest{App: "crm", ID: b.ID}).ok(t, &got)
	if got.CorruptAt == nil {
		t.Errorf("not marked corrupt: %+v", got)
	}
	a.request(natsapi.SubjectBackupsDownload, natsapi.DownloadRequest{App: "crm", ID: b.ID}).problem(t, 409, "backup_corrupt")
}

func TestArchiveEndpointsWithoutTransfers(t *testing.T) {
	a := newAPI(t, func(d *deps) { d.Transfers = nil })
	a.request(natsapi.SubjectBackupsUpload, `{"app":"crm","object":"x.zip"}`).problem(t, 503, "unavailable")
	a.request(natsapi.SubjectBackupsDownload, `{"app":"crm","id":"x"}`).problem(t, 503, "unavailable")
}

// TestTransferTimeout checks that uploads run under TransferTimeout, not
// RequestTimeout: the fake store works past the latter.
func TestTransferTimeout(t *testing.T) {
	a := newAPIWith(t, natsapi.Config{RequestTimeout: 20 * time.Millisecond, TransferTimeout: time.Minute}, nil)
	a.st.Archives.SetSlow(0, 100*time.Millisecond)
	a.st.Archives.Stage("x.zip", zipBody("x"))
	a.request(natsapi.SubjectBackupsUpload, `{"app":"crm","object":"x.zip"}`).ok(t, nil)
	// Other requests keep the short bound.
	a.request(natsapi.SubjectBackupsList, `{"app":"crm"}`).ok(t, nil)
}
