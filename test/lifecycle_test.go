package test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/natstest"
)

// archiveBytes reads a backup's archive straight from the object store.
func (n *node) archiveBytes(id string) ([]byte, error) {
	ctx := context.Background()
	os, err := n.js.ObjectStore(ctx, "ledger_archives")
	if err != nil {
		return nil, err
	}
	return os.GetBytes(ctx, id)
}

func TestBackupLifecycle(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	docs := map[string]string{
		"app.json":         `{"name":"CRM","icon":"crm.png"}`,
		"worksheets/leads": `{"fields":["name","email"]}`,
		"workflows/intake": `{"steps":3}`,
	}
	for k, v := range docs {
		n.putConfig("crm", k, v)
	}
	var listed struct {
		Documents []struct {
			Key string `json:"key"`
		} `json:"documents"`
	}
	n.must(http.StatusOK, "GET", "/v1/apps/crm/config", nil).json(t, &listed)
	if len(listed.Documents) != len(docs) {
		t.Fatalf("config list has %d documents, want %d", len(listed.Documents), len(docs))
	}

	created := n.createBackup("crm", map[string]any{"name": "  before the migration ", "description": "safety net"})
	if created.Status != "queued" || created.Name != "before the migration" || created.Origin != "manual" || created.CreatedBy != "admin" {
		t.Fatalf("created backup = %+v", created)
	}
	if got, want := created.ExpiresAt.Sub(created.CreatedAt), 60*24*time.Hour; got != want {
		t.Errorf("expires_at - created_at = %s, want %s", got, want)
	}
	b := n.waitStatus("crm", created.ID, 20*time.Second, domain.StatusReady, domain.StatusFailed)
	if b.Status != "ready" {
		t.Fatalf("backup ended %s: %v", b.Status, b.Error)
	}

	// The ledger's facts match the archive actually stored.
	raw, err := n.archiveBytes(b.ID)
	if err != nil {
		t.Fatalf("archive: %v", err)
	}
	sum := sha256.Sum256(raw)
	if b.SHA256 == nil || *b.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("sha256 = %v, archive has %x", b.SHA256, sum)
	}
	if b.SizeBytes != int64(len(raw)) {
		t.Errorf("size_bytes = %d, archive has %d", b.SizeBytes, len(raw))
	}
	if b.ItemCount != len(docs) {
		t.Errorf("item_count = %d, want %d", b.ItemCount, len(docs))
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("archive is not a zip: %v", err)
	}
	var manifest struct {
		FormatVersion int    `json:"format_version"`
		App           string `json:"app"`
		BackupID      string `json:"backup_id"`
		Name          string `json:"name"`
		Entries       []struct {
			Path   string `json:"path"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"entries"`
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s: %v", f.Name, err)
		}
		files[f.Name] = body
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if manifest.FormatVersion != 1 || manifest.App != "crm" || manifest.BackupID != b.ID || manifest.Name != b.Name {
		t.Errorf("manifest header = %+v", manifest)
	}
	if len(manifest.Entries) != len(docs) {
		t.Fatalf("manifest has %d entries, want %d", len(manifest.Entries), len(docs))
	}
	for _, e := range manifest.Entries {
		body, ok := files[e.Path]
		if !ok {
			t.Errorf("manifest entry %s is not in the zip", e.Path)
			continue
		}
		s := sha256.Sum256(body)
		if e.SHA256 != hex.EncodeToString(s[:]) || e.Size != int64(len(body)) {
			t.Errorf("entry %s: manifest says %d bytes %s, zip has %d bytes %x", e.Path, e.Size, e.SHA256, len(body), s)
		}
		key := strings.TrimPrefix(e.Path, "config/")
		if string(body) != docs[key] {
			t.Errorf("entry %s = %q, want %q", e.Path, body, docs[key])
		}
	}

	// Rename.
	var renamed projections.BackupView
	n.must(http.StatusOK, "PATCH", "/v1/apps/crm/backups/"+b.ID, map[string]any{"name": "golden"}).json(t, &renamed)
	if renamed.Name != "golden" || n.backup("crm", b.ID).Name != "golden" {
		t.Errorf("rename: got %q", renamed.Name)
	}

	// List.
	var list projections.BackupList
	n.must(http.StatusOK, "GET", "/v1/apps/crm/backups", nil).json(t, &list)
	if len(list.Backups) != 1 || list.Backups[0].ID != b.ID {
		t.Fatalf("list = %+v", list)
	}

	// Delete removes entry and archive; the log stays.
	n.must(http.StatusNoContent, "DELETE", "/v1/apps/crm/backups/"+b.ID, nil)
	n.must(http.StatusNotFound, "GET", "/v1/apps/crm/backups/"+b.ID, nil)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if _, err := n.archiveBytes(b.ID); !errors.Is(err, njs.ErrObjectNotFound) {
			return natstest.Errorf("archive still there (err %v)", err)
		}
		return nil
	})
	n.must(http.StatusOK, "GET", "/v1/apps/crm/backups", nil).json(t, &list)
	if len(list.Backups) != 0 {
		t.Errorf("list after delete = %+v", list)
	}

	var logs projections.LogList
	n.must(http.StatusOK, "GET", "/v1/apps/crm/logs", nil).json(t, &logs)
	var events []string
	for _, e := range logs.Entries {
		events = append(events, e.Event)
		if e.Actor == "" || e.Time.IsZero() || e.Message == "" || e.Result == "" {
			t.Errorf("log entry lacks who, when, what or result: %+v", e)
		}
	}
	want := []string{"backup.requested", "backup.started", "backup.completed", "backup.renamed", "backup.deleted"}
	if !reflect.DeepEqual(events, want) {
		t.Errorf("app log events = %v, want %v", events, want)
	}
	n.must(http.StatusOK, "GET", "/v1/apps/crm/backups/"+b.ID+"/logs", nil).json(t, &logs)
	if len(logs.Entries) != len(want) {
		t.Errorf("backup log has %d entries after delete, want %d", len(logs.Entries), len(want))
	}
}

func TestRestartKeepsTheLedger(t *testing.T) {
	dir := t.TempDir()
	noInterval := func(c *daemon.Config) { c.Rules.MinInterval = 0 }
	n := startNode(t, dir, noInterval, nil)
	n.putConfig("billing", "plans", `{"basic":5}`)
	var ids []string
	for i := 0; i < 3; i++ {
		b := n.createBackup("billing", map[string]any{})
		n.waitStatus("billing", b.ID, 20*time.Second, domain.StatusReady)
		ids = append(ids, b.ID)
	}
	n.must(http.StatusOK, "PATCH", "/v1/apps/billing/backups/"+ids[1], map[string]any{"name": "keep me"})
	n.must(http.StatusNoContent, "DELETE", "/v1/apps/billing/backups/"+ids[0], nil)
	before := n.must(http.StatusOK, "GET", "/v1/apps/billing/backups", nil).body
	beforeApp := n.must(http.StatusOK, "GET", "/v1/apps/billing", nil).body
	n.stop()

	m := startNode(t, dir, noInterval, nil)
	after := m.must(http.StatusOK, "GET", "/v1/apps/billing/backups", nil).body
	if !bytes.Equal(before, after) {
		t.Errorf("list changed across restart:\nbefore %s\nafter  %s", before, after)
	}
	if afterApp := m.must(http.StatusOK, "GET", "/v1/apps/billing", nil).body; !bytes.Equal(beforeApp, afterApp) {
		t.Errorf("app state changed across restart:\nbefore %s\nafter  %s", beforeApp, afterApp)
	}
	// The restarted ledger still decides with the old state: a retried
	// command is answered with its first result.
	r1 := m.must(http.StatusAccepted, "POST", "/v1/apps/billing/backups", map[string]any{}, "Idempotency-Key", "after-restart-1")
	r2 := m.must(http.StatusAccepted, "POST", "/v1/apps/billing/backups", map[string]any{}, "Idempotency-Key", "after-restart-1")
	var b1, b2 projections.BackupView
	r1.json(t, &b1)
	r2.json(t, &b2)
	if b1.ID != b2.ID {
		t.Errorf("retried create made two backups: %s and %s", b1.ID, b2.ID)
	}
}

func TestExternalNATS(t *testing.T) {
	s := natstest.Server(t, "")
	n := startNode(t, t.TempDir(), func(c *daemon.Config) { withoutAccounts(c); c.NATS.URL = s.ClientURL() }, nil)
	if n.d.Server() != nil {
		t.Fatal("with --nats-url the daemon must not start its own server")
	}
	n.putConfig("crm", "app.json", `{"name":"CRM"}`)
	b := n.createBackup("crm", map[string]any{})
	if got := n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady, domain.StatusFailed); got.Status != "ready" {
		t.Fatalf("backup on an external server: %+v", got)
	}
	// The ledger lives on the external server: the genesis key.created,
	// the registration of crm (its organisation and the app) and the
	// backup's three events.
	if n.lastSeq() != 6 {
		t.Errorf("LEDGER on the external server has last seq %d, want 6", n.lastSeq())
	}
	// Without a staging bucket (--nats-staging-api none) archives do not
	// travel over NATS: a download says so.
	req := nats.NewMsg("ledger.api.backups.download")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Data = []byte(`{"app":"crm","id":"` + b.ID + `"}`)
	resp, err := n.nc.RequestMsg(req, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Header.Get("Nats-Service-Error"); code != domain.CodeUnavailable {
		t.Errorf("download without staging: error %q, want %s: %s", code, domain.CodeUnavailable, resp.Data)
	}
}
