package test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/natstest"
)

// restoreView is what the restore routes answer.
type restoreView struct {
	ID                 string `json:"id"`
	App                string `json:"app"`
	Status             string `json:"status"`
	PreRestoreBackupID string `json:"pre_restore_backup_id"`
	Digest             string `json:"digest"`
	FailedStep         string `json:"failed_step"`
	Error              string `json:"error"`
	AutoEndMaintenance bool   `json:"auto_end_maintenance"`
	Steps              []struct {
		Step    string `json:"step"`
		Outcome string `json:"outcome"`
	} `json:"steps"`
}

type appState struct {
	Maintenance struct {
		On bool `json:"on"`
	} `json:"maintenance"`
	ActiveRestore string `json:"active_restore"`
}

func noMinInterval(c *daemon.Config) { c.Rules.MinInterval = 0 }

// configDocs returns an app's documents in the built-in store.
func (n *node) configDocs(app string) map[string]string {
	n.t.Helper()
	var list struct {
		Documents []struct {
			Key string `json:"key"`
		} `json:"documents"`
	}
	n.must(http.StatusOK, "GET", "/v1/apps/"+app+"/config", nil).json(n.t, &list)
	out := map[string]string{}
	for _, d := range list.Documents {
		out[d.Key] = string(n.must(http.StatusOK, "GET", "/v1/apps/"+app+"/config/"+d.Key, nil).body)
	}
	return out
}

func (n *node) setDocs(app string, docs map[string]string) {
	n.t.Helper()
	n.ensureApp(app)
	for k := range n.configDocs(app) {
		if _, ok := docs[k]; !ok {
			n.must(http.StatusNoContent, "DELETE", "/v1/apps/"+app+"/config/"+k, nil)
		}
	}
	for k, v := range docs {
		n.putConfig(app, k, v)
	}
}

// restore asks for a restore as the server administrator.
func (n *node) restore(app string, body map[string]any) restoreView {
	n.t.Helper()
	for _, k := range []string{"pre_restore_backup", "auto_end_maintenance"} {
		if _, ok := body[k]; !ok {
			body[k] = false
		}
	}
	var r restoreView
	n.must(http.StatusAccepted, "POST", "/v1/apps/"+app+"/restores", body).json(n.t, &r)
	return r
}

// waitRestore waits until a restore is over and returns it.
func (n *node) waitRestore(app, id string) restoreView {
	n.t.Helper()
	var r restoreView
	natstest.CheckFor(n.t, 60*time.Second, 50*time.Millisecond, func() error {
		// Another backupd may have taken the request: this one's
		// projection may not know the restore yet.
		resp := n.do("GET", "/v1/apps/"+app+"/restores/"+id, nil)
		if resp.status != http.StatusOK {
			return fmt.Errorf("restore %s: status %d: %s", id, resp.status, resp.body)
		}
		resp.json(n.t, &r)
		if r.Status == "running" {
			return fmt.Errorf("restore %s is running: %+v", id, r.Steps)
		}
		// Completed, the restore still ends the maintenance if asked to.
		if r.Status == "completed" && r.AutoEndMaintenance && r.Steps[len(r.Steps)-1].Step != domain.StepEndMaint {
			return fmt.Errorf("restore %s has yet to end the maintenance: %+v", id, r.Steps)
		}
		return nil
	})
	return r
}

func (n *node) appState(app string) appState {
	n.t.Helper()
	var s appState
	n.must(http.StatusOK, "GET", "/v1/apps/"+app, nil).json(n.t, &s)
	return s
}

// archiveDocs downloads a backup's archive and returns its config
// documents.
func (n *node) archiveDocs(app string, b projections.BackupView) map[string]string {
	n.t.Helper()
	_, raw := n.download(app, b, "")
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		n.t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		if f.Name == "manifest.json" || f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			n.t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out[f.Name[len("config/"):]] = string(b)
	}
	return out
}

// The main story: change, back up, change again, restore with a
// pre-restore backup and the automatic end of maintenance.
func TestRestoreEndToEnd(t *testing.T) {
	n := startNode(t, t.TempDir(), noMinInterval, nil)
	first := map[string]string{"app.json": `{"name":"CRM"}`, "pages/home": "<h1>v1</h1>"}
	n.setDocs("crm", first)
	b1 := n.waitStatus("crm", n.createBackup("crm", map[string]any{"name": "v1"}).ID, 20*time.Second, domain.StatusReady)
	second := map[string]string{"app.json": `{"name":"CRM 2"}`, "pages/about": "added later"}
	n.setDocs("crm", second)

	r := n.restore("crm", map[string]any{"backup_id": b1.ID, "pre_restore_backup": true, "auto_end_maintenance": true})
	r = n.waitRestore("crm", r.ID)
	if r.Status != "completed" || r.Digest == "" || r.PreRestoreBackupID == "" {
		t.Fatalf("restore = %+v", r)
	}
	if got := n.configDocs("crm"); !maps.Equal(got, first) {
		t.Errorf("config after the restore = %v, want exactly %v", got, first)
	}
	if s := n.appState("crm"); s.Maintenance.On || s.ActiveRestore != "" {
		t.Errorf("app after an auto-ended restore: %+v", s)
	}
	pre := n.backup("crm", r.PreRestoreBackupID)
	if pre.Status != "ready" || pre.Origin != "pre_restore" {
		t.Fatalf("pre-restore backup = %+v", pre)
	}
	if got := n.archiveDocs("crm", pre); !maps.Equal(got, second) {
		t.Errorf("pre-restore backup holds %v, want the state before the restore %v", got, second)
	}
	// Each step once, in order, in the app's log.
	var steps []string
	for _, s := range r.Steps {
		steps = append(steps, s.Step)
	}
	want := []string{domain.StepRequested, domain.StepVerifyArchive, domain.StepMaintenance, domain.StepPreBackup,
		domain.StepImport, domain.StepVerify, domain.StepEndMaint}
	if fmt.Sprint(steps) != fmt.Sprint(want) {
		t.Errorf("steps = %v, want %v", steps, want)
	}

	// Rolling back with the pre-restore backup, without auto-end: the app
	// stays in maintenance, its configuration locked until the admin ends
	// it.
	r2 := n.waitRestore("crm", n.restore("crm", map[string]any{"backup_id": pre.ID}).ID)
	if r2.Status != "completed" {
		t.Fatalf("roll back = %+v", r2)
	}
	if got := n.configDocs("crm"); !maps.Equal(got, second) {
		t.Errorf("config after the roll back = %v, want %v", got, second)
	}
	if s := n.appState("crm"); !s.Maintenance.On {
		t.Errorf("app after a restore without auto-end: %+v", s)
	}
	before := n.lastSeq()
	var p problem
	n.must(http.StatusConflict, "PUT", "/v1/apps/crm/config/app.json", "x", "Content-Type", "application/octet-stream").json(t, &p)
	if p.Code != domain.CodeAppInMaintenance || n.lastSeq() != before || n.configDocs("crm")["app.json"] != second["app.json"] {
		t.Errorf("config write in maintenance: %+v", p)
	}
	// Backups may still be taken.
	n.waitStatus("crm", n.createBackup("crm", map[string]any{"name": "during maintenance"}).ID, 20*time.Second, domain.StatusReady)
	n.must(http.StatusOK, "DELETE", "/v1/apps/crm/maintenance", nil)
	n.putConfig("crm", "app.json", "after")
}

// A restore into another, new app: created in the source's organisation,
// the source untouched and never in maintenance.
func TestRestoreToNewApp(t *testing.T) {
	n := startNode(t, t.TempDir(), noMinInterval, nil)
	docs := map[string]string{"a": "1", "b": "2"}
	n.setDocs("crm", docs)
	b := n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
	r := n.restore("crm", map[string]any{"backup_id": b.ID, "target_app": "crm-copy", "auto_end_maintenance": true})
	r = n.waitRestore("crm-copy", r.ID)
	if r.Status != "completed" || r.App != "crm-copy" {
		t.Fatalf("restore = %+v", r)
	}
	if got := n.configDocs("crm-copy"); !maps.Equal(got, docs) {
		t.Errorf("new app holds %v", got)
	}
	if s := n.appState("crm"); s.Maintenance.On || s.ActiveRestore != "" {
		t.Errorf("source app: %+v", s)
	}
	if got := n.configDocs("crm"); !maps.Equal(got, docs) {
		t.Errorf("source app changed: %v", got)
	}
}

// A restore checks what it can before the app goes into maintenance, and
// a backup it cannot restore changes nothing: the configuration stays, the
// app is never put into maintenance, and a corrupt archive is recorded.
func TestRestoreCorruptArchiveChangesNothing(t *testing.T) {
	n := startNode(t, t.TempDir(), noMinInterval, nil)
	n.setDocs("crm", map[string]string{"big": string(bytes.Repeat([]byte("0123456789abcdef"), 1<<14))})
	now := map[string]string{"big": "now"}
	ready := func() projections.BackupView {
		n.setDocs("crm", map[string]string{"big": string(bytes.Repeat([]byte("0123456789abcdef"), 1<<14))})
		b := n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
		n.setDocs("crm", now)
		return b
	}
	unchanged := func(t *testing.T, b projections.BackupView, corrupt bool) {
		t.Helper()
		if got := n.configDocs("crm"); !maps.Equal(got, now) {
			t.Errorf("config changed: %v", got)
		}
		if s := n.appState("crm"); s.Maintenance.On || s.ActiveRestore != "" {
			t.Errorf("app after the refused restore: %+v", s)
		}
		if got := n.backup("crm", b.ID); (got.CorruptAt != nil) != corrupt {
			t.Errorf("backup corrupt at %v, want marked %v", got.CorruptAt, corrupt)
		}
	}
	refused := func(t *testing.T, b projections.BackupView, status int, code string) {
		t.Helper()
		var p problem
		n.must(status, "POST", "/v1/apps/crm/restores", map[string]any{"backup_id": b.ID, "pre_restore_backup": false, "auto_end_maintenance": true}).json(t, &p)
		if p.Code != code {
			t.Errorf("restore: %+v, want %s", p, code)
		}
	}

	t.Run("the object store records another digest", func(t *testing.T) {
		b := ready()
		n.corruptArchive(b.ID)
		refused(t, b, http.StatusConflict, domain.CodeBackupCorrupt)
		unchanged(t, b, true)
	})

	// The bytes of a chunk changed, the record did not: only reading
	// tells, which the saga does first, before maintenance.
	t.Run("a damaged chunk", func(t *testing.T) {
		b := ready()
		n.damageArchive(b.ID)
		r := n.waitRestore("crm", n.restore("crm", map[string]any{"backup_id": b.ID, "auto_end_maintenance": true}).ID)
		if r.Status != "failed" || r.FailedStep != domain.StepVerifyArchive {
			t.Fatalf("restore = %+v", r)
		}
		unchanged(t, b, true)
	})

	// The object store's record of the archive does not decode: the
	// download and the restore answer backup_corrupt (not 500) and the
	// backup is marked so.
	t.Run("the record is unreadable", func(t *testing.T) {
		b := ready()
		n.putArchiveRecord(b.ID, []byte(`{"name":"`+b.ID+`","size":"not a number`))
		var p problem
		n.must(http.StatusConflict, "GET", "/v1/apps/crm/backups/"+b.ID+"/archive", nil).json(t, &p)
		if p.Code != domain.CodeBackupCorrupt {
			t.Errorf("download: %+v", p)
		}
		unchanged(t, b, true)
		refused(t, b, http.StatusConflict, domain.CodeBackupCorrupt)
	})

	// An archive of a schema version no migration reads (an old kv
	// archive of version 0) is uploaded, but not restored.
	t.Run("a schema without migration", func(t *testing.T) {
		b := ready()
		_, raw := n.download("crm", b, "")
		var up projections.BackupView
		n.must(http.StatusCreated, "POST", "/v1/apps/crm/backups/upload?name=old", rewriteArchive(t, raw, 0, func(p string) string { return p }),
			"Content-Type", "application/zip").json(t, &up)
		before := n.lastSeq()
		refused(t, up, http.StatusUnprocessableEntity, domain.CodeArchiveVersion)
		if n.lastSeq() != before {
			t.Errorf("the refused restore appended %d events", n.lastSeq()-before)
		}
		unchanged(t, up, false)
	})
}

// Refusals before anything happens: a second restore while one runs, a
// backup newer than the server, a user who does not administer the app, a
// wrong password.
func TestRestoreRefusals(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		c.Rules.MinInterval = 0
		c.Identity.PasswordParams = password.TestParams()
	}, nil)
	n.setDocs("crm", map[string]string{"a": "1"})
	b := n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)

	// A backup whose manifest says schema version 99, uploaded.
	_, raw := n.download("crm", b, "")
	newer := rewriteArchive(t, raw, 99, func(p string) string { return p })
	var up projections.BackupView
	n.must(http.StatusCreated, "POST", "/v1/apps/crm/backups/upload?name=future", newer, "Content-Type", "application/zip").json(t, &up)

	before := n.lastSeq()
	var p problem
	n.must(http.StatusConflict, "POST", "/v1/apps/crm/restores", map[string]any{"backup_id": up.ID, "pre_restore_backup": false, "auto_end_maintenance": false}).json(t, &p)
	if p.Code != domain.CodeBackupNewer || n.lastSeq() != before {
		t.Errorf("newer backup: %+v", p)
	}

	// Users: carol administers crm, dave is a member who does not; crm
	// is in acme (made by the administrator in the organisation test,
	// it cannot move).
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "acme"})
	login := func(user string) string {
		pw := user + " has a long password"
		n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": user, "name": user, "password": pw})
		n.must(http.StatusNoContent, "PUT", "/v1/orgs/acme/members/"+user, nil)
		var tok projections.NewTokenView
		n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": user, "password": pw}, n.as("")...).json(t, &tok)
		return tok.Token
	}
	carol, dave := login("carol"), login("dave")
	n.must(http.StatusConflict, "PUT", "/v1/apps/crm", map[string]string{"org": "acme"})
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/test/members/carol", nil)
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/test/members/dave", nil)
	n.must(http.StatusNoContent, "PUT", "/v1/apps/crm/admins/carol", nil)
	before = n.lastSeq()
	n.must(http.StatusNotFound, "POST", "/v1/apps/crm/restores", map[string]any{"backup_id": b.ID, "password": "dave has a long password", "pre_restore_backup": false, "auto_end_maintenance": false}, n.as(dave)...)
	n.must(http.StatusForbidden, "POST", "/v1/apps/crm/restores", map[string]any{"backup_id": b.ID, "password": "wrong", "pre_restore_backup": false, "auto_end_maintenance": false}, n.as(carol)...).json(t, &p)
	if p.Code != domain.CodePasswordIncorrect {
		t.Errorf("wrong password: %+v", p)
	}
	// The wrong password is on record (an audit event, written in the
	// background), nothing else.
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if after := n.lastSeq(); after != before+1 {
			return fmt.Errorf("stream moved by %d, want 1 (the wrong password)", after-before)
		}
		return nil
	})

	// carol restores. (A second restore while one runs is refused:
	// TestRestoreWhileOneRuns holds one to show it.)
	r := n.restore("crm", map[string]any{"backup_id": b.ID, "password": "carol has a long password"})
	if st := n.waitRestore("crm", r.ID); st.Status != "completed" {
		t.Errorf("carol's restore: %+v", st)
	}

	// Into a new app: created in crm's organisation with carol as its only
	// admin. Into an app dave does not administer: not found.
	n.must(http.StatusOK, "DELETE", "/v1/apps/crm/maintenance", nil)
	var rn restoreView
	n.must(http.StatusAccepted, "POST", "/v1/apps/crm/restores", map[string]any{"backup_id": b.ID, "target_app": "crm-new",
		"password": "carol has a long password", "pre_restore_backup": false, "auto_end_maintenance": true}, n.as(carol)...).json(t, &rn)
	if st := n.waitRestore("crm-new", rn.ID); st.Status != "completed" {
		t.Fatalf("restore into a new app: %+v", st)
	}
	var acc projections.AppAccessView
	n.must(http.StatusOK, "GET", "/v1/apps/crm-new/admins", nil, n.as(carol)...).json(t, &acc)
	if acc.Org != "test" || fmt.Sprint(acc.Admins) != "[carol]" {
		t.Errorf("new app: %+v", acc)
	}
	n.must(http.StatusNoContent, "PUT", "/v1/apps/crm/admins/dave", nil, n.as(carol)...)
	n.must(http.StatusNotFound, "POST", "/v1/apps/crm/restores", map[string]any{"backup_id": b.ID, "target_app": "crm-new",
		"password": "dave has a long password", "pre_restore_backup": false, "auto_end_maintenance": false}, n.as(dave)...)
}

// An older backup is migrated on its way in: a version 1 archive of the dir
// source, whose file name is decomposed (NFD), restores composed (NFC) into
// a server of version 2, verified, with the migration on record.
func TestRestoreMigratesOlderBackup(t *testing.T) {
	root := t.TempDir()
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		c.Rules.MinInterval = 0
		c.Sources.DirRoot = root
		c.Sources.ByApp = map[string]string{"wiki": daemon.SourceDir}
	}, nil)
	app := filepath.Join(root, "wiki")
	if err := os.MkdirAll(filepath.Join(app, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"docs/intro.md": "# Intro\n", "docs/caf\u00e9.md": "menu\n"} {
		if err := os.WriteFile(filepath.Join(app, filepath.FromSlash(name)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := n.waitStatus("wiki", n.createBackup("wiki", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
	if b.SchemaVersion != 2 {
		t.Fatalf("a backup of this server has schema version %d, want 2", b.SchemaVersion)
	}
	// The same content as a version 1 archive would hold it: the name as
	// another system wrote it, decomposed.
	_, raw := n.download("wiki", b, "")
	old := rewriteArchive(t, raw, 1, func(p string) string { return strings.ReplaceAll(p, "caf\u00e9", "cafe\u0301") })
	var up projections.BackupView
	n.must(http.StatusCreated, "POST", "/v1/apps/wiki/backups/upload?name=v1", old, "Content-Type", "application/zip").json(t, &up)
	if up.SchemaVersion != 1 {
		t.Fatalf("uploaded schema version %d", up.SchemaVersion)
	}
	if err := os.WriteFile(filepath.Join(app, "docs", "later.md"), []byte("later"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := n.waitRestore("wiki", n.restore("wiki", map[string]any{"backup_id": up.ID, "auto_end_maintenance": true}).ID)
	if r.Status != "completed" {
		t.Fatalf("restore = %+v", r)
	}
	var migrated bool
	for _, s := range r.Steps {
		migrated = migrated || s.Step == domain.StepImport && strings.Contains(s.Outcome, "dir 1→2: file names in Unicode NFC")
	}
	if !migrated {
		t.Errorf("steps %+v do not name the migration", r.Steps)
	}
	var names []string
	if err := filepath.WalkDir(app, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(app, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{"docs/caf\u00e9.md", "docs/intro.md"}; !slices.Equal(names, want) {
		t.Errorf("files after the restore = %q, want %q", names, want)
	}
}

// rewriteArchive rebuilds an archive with another schema version and the
// entries' paths renamed (in the zip and the manifest alike).
func rewriteArchive(t *testing.T, raw []byte, version int, rename func(string) string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		name := rename(f.Name)
		if f.Name == "manifest.json" {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["schema_version"] = version
			for _, e := range m["entries"].([]any) {
				e := e.(map[string]any)
				e["path"] = rename(e["path"].(string))
			}
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		if f.FileInfo().IsDir() {
			continue
		}
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
