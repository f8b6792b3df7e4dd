package test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// manifest is the part of an archive's manifest.json the tests read.
type manifest struct {
	FormatVersion int      `json:"format_version"`
	App           string   `json:"app"`
	BackupID      string   `json:"backup_id"`
	Name          string   `json:"name"`
	Source        string   `json:"source"`
	Components    []string `json:"components"`
	Entries       []struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"entries"`
}

// readZip returns the files of a zip and its manifest.
func readZip(t *testing.T, raw []byte) (map[string][]byte, manifest) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s: %v", f.Name, err)
		}
		files[f.Name] = b
	}
	var m manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	return files, m
}

// download fetches a backup's archive over HTTP and checks its headers.
func (n *node) download(app string, b projections.BackupView, query string) (response, []byte) {
	n.t.Helper()
	r := n.must(http.StatusOK, "GET", "/v1/apps/"+app+"/backups/"+b.ID+"/archive"+query, nil)
	return r, r.body
}

// corruptArchive flips one byte of a backup's stored archive behind the
// ledger's back.
func (n *node) corruptArchive(id string) {
	n.t.Helper()
	raw, err := n.archiveBytes(id)
	if err != nil {
		n.t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0xff
	store, err := n.js.ObjectStore(context.Background(), "ledger_archives")
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := store.PutBytes(context.Background(), id, raw); err != nil {
		n.t.Fatal(err)
	}
}

// damageArchive changes a byte in the middle of the archive of id, and
// makes the object store's record show the ledger's size and digest
// again: a damaged chunk that only reading the bytes tells.
func (n *node) damageArchive(id string) {
	n.t.Helper()
	ctx := context.Background()
	store, err := n.js.ObjectStore(ctx, "ledger_archives")
	if err != nil {
		n.t.Fatal(err)
	}
	intact, err := store.GetInfo(ctx, id)
	if err != nil {
		n.t.Fatal(err)
	}
	n.corruptArchive(id)
	damaged, err := store.GetInfo(ctx, id)
	if err != nil {
		n.t.Fatal(err)
	}
	damaged.Digest, damaged.ModTime = intact.Digest, time.Time{}
	rec, err := json.Marshal(damaged)
	if err != nil {
		n.t.Fatal(err)
	}
	n.putArchiveRecord(id, rec)
}

// putArchiveRecord replaces the object store's record (meta message) of
// the archive of id by rec.
func (n *node) putArchiveRecord(id string, rec []byte) {
	n.t.Helper()
	m := nats.NewMsg("$O.ledger_archives.M." + base64.URLEncoding.EncodeToString([]byte(id)))
	m.Header.Set(njs.MsgRollup, njs.MsgRollupSubject)
	m.Data = rec
	if _, err := n.js.PublishMsg(context.Background(), m); err != nil {
		n.t.Fatal(err)
	}
}

// objects lists the objects of an object store bucket.
func (n *node) objects(bucket string) []string {
	n.t.Helper()
	ctx := context.Background()
	os, err := n.js.ObjectStore(ctx, bucket)
	if err != nil {
		n.t.Fatalf("bucket %s: %v", bucket, err)
	}
	list, err := os.List(ctx)
	if err != nil && !strings.Contains(err.Error(), "no objects found") {
		n.t.Fatalf("list %s: %v", bucket, err)
	}
	var names []string
	for _, o := range list {
		names = append(names, o.Name)
	}
	slices.Sort(names)
	return names
}

func TestArchiveRoundTrip(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	docs := map[string]string{"app.json": `{"name":"CRM"}`, "worksheets/leads": `{"fields":["name"]}`}
	for k, v := range docs {
		n.putConfig("crm", k, v)
	}
	b := n.createBackup("crm", map[string]any{"name": "Août/Release: 1"})
	b = n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)

	r, raw := n.download("crm", b, "")
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) != *b.SHA256 || int64(len(raw)) != b.SizeBytes {
		t.Fatalf("downloaded %d bytes %x, ledger has %d bytes %s", len(raw), sum, b.SizeBytes, *b.SHA256)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/zip" {
		t.Errorf("Content-Type %q", ct)
	}
	if cl := r.header.Get("Content-Length"); cl != fmt.Sprint(b.SizeBytes) {
		t.Errorf("Content-Length %q, want %d", cl, b.SizeBytes)
	}
	if et := r.header.Get("ETag"); et != `"`+*b.SHA256+`"` {
		t.Errorf("ETag %q", et)
	}
	if rd := r.header.Get("Repr-Digest"); rd != "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":" {
		t.Errorf("Repr-Digest %q", rd)
	}
	wantName := "Août_Release_ 1_" + b.CreatedAt.UTC().Format("2006-01-02_15-04") + ".zip"
	cd := r.header.Get("Content-Disposition")
	if !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, "filename*=UTF-8''") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if !strings.Contains(cd, urlPathEscape(wantName)) {
		t.Errorf("Content-Disposition %q does not name %q", cd, wantName)
	}
	if path, err := exec.LookPath("unzip"); err == nil {
		f := filepath.Join(t.TempDir(), "a.zip")
		if err := os.WriteFile(f, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(path, "-t", f).CombinedOutput(); err != nil {
			t.Errorf("unzip -t: %v\n%s", err, out)
		}
	}
	files, m := readZip(t, raw)
	if m.FormatVersion != 1 || m.App != "crm" || m.BackupID != b.ID || m.Source != "kv" || !slices.Equal(m.Components, []string{"config"}) {
		t.Errorf("manifest = %+v", m)
	}

	// Upload into another app: a new ready entry, not restored.
	n.ensureApp("crm-copy")
	seqBefore := n.lastSeq()
	var up projections.BackupView
	n.must(http.StatusCreated, "POST", "/v1/apps/crm-copy/backups/upload", raw, "Content-Type", "application/zip").json(t, &up)
	if up.ID == b.ID || up.App != "crm-copy" || up.Status != "ready" || up.Origin != "upload" || up.CreatedBy != "admin" {
		t.Fatalf("uploaded = %+v", up)
	}
	if up.SHA256 == nil || *up.SHA256 != *b.SHA256 || up.ItemCount != len(docs) || up.Original == nil || up.Original.BackupID != b.ID {
		t.Errorf("uploaded facts = %+v", up)
	}
	if after := n.lastSeq(); after != seqBefore+1 {
		t.Errorf("upload appended %d events, want 1", after-seqBefore)
	}
	var cfg struct {
		Documents []any `json:"documents"`
	}
	n.must(http.StatusOK, "GET", "/v1/apps/crm-copy/config", nil).json(t, &cfg)
	if len(cfg.Documents) != 0 {
		t.Errorf("upload restored %d documents into crm-copy; it must not restore", len(cfg.Documents))
	}
	_, raw2 := n.download("crm-copy", up, "")
	files2, _ := readZip(t, raw2)
	for k, v := range files {
		if !bytes.Equal(files2[k], v) {
			t.Errorf("entry %s differs after the round trip", k)
		}
	}
	// The same file uploaded twice gives two entries.
	var up2 projections.BackupView
	n.must(http.StatusCreated, "POST", "/v1/apps/crm-copy/backups/upload?name=again", raw, "Content-Type", "application/zip").json(t, &up2)
	if up2.ID == up.ID || up2.Name != "again" {
		t.Errorf("second upload = %+v", up2)
	}

	// One component.
	_, comp := n.download("crm", b, "?component=config")
	cfiles, cm := readZip(t, comp)
	if !slices.Equal(cm.Components, []string{"config"}) || len(cm.Entries) != len(docs) || len(cfiles) != len(docs)+1 {
		t.Errorf("component download: manifest %+v, %d files", cm, len(cfiles))
	}
	r = n.do("GET", "/v1/apps/crm/backups/"+b.ID+"/archive?component=files", nil)
	if r.status != http.StatusBadRequest {
		t.Errorf("unknown component: status %d %s", r.status, r.body)
	}
}

func urlPathEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestDownloadOnlyReady(t *testing.T) {
	g := newGate()
	n := startNode(t, t.TempDir(), nil, g.wrap)
	b := n.createBackup("crm", map[string]any{})
	g.waitEntered(t)
	r := n.do("GET", "/v1/apps/crm/backups/"+b.ID+"/archive", nil)
	var p problem
	r.json(t, &p)
	if r.status != http.StatusConflict || p.Code != "backup_not_ready" {
		t.Errorf("download of a running backup: %d %+v", r.status, p)
	}
	close(g.release)
	n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)
}

func TestUploadOfASystemZip(t *testing.T) {
	zipTool, err := exec.LookPath("zip")
	if err != nil {
		t.Skip("no zip tool (.ci/run installs it)")
	}
	dir := t.TempDir()
	docs := map[string]string{"config/app.json": `{"name":"Hand made"}`, "config/pages/home": "<h1>Home</h1>\n"}
	var entries []map[string]any
	for _, p := range []string{"config/app.json", "config/pages/home"} {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(docs[p]), 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256([]byte(docs[p]))
		entries = append(entries, map[string]any{"path": p, "size": len(docs[p]), "sha256": hex.EncodeToString(s[:])})
	}
	m, _ := json.MarshalIndent(map[string]any{
		"format_version": 1, "app": "elsewhere", "backup_id": "01JHANDMADE000000000000000", "name": "hand made",
		"description": "", "created_at": "2026-01-02T03:04:05Z", "created_by": "bob", "origin": "manual",
		"schema_version": 1, "source": "kv", "components": []string{"config"}, "item_count": 2, "entries": entries,
	}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), m, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "hand-made.zip")
	cmd := exec.Command(zipTool, "-r", "-X", out, "manifest.json", "config")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zip: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, t.TempDir(), nil, nil)
	n.ensureApp("crm")
	var up projections.BackupView
	n.must(http.StatusCreated, "POST", "/v1/apps/crm/backups/upload?filename=hand-made.zip", raw, "Content-Type", "application/zip").json(t, &up)
	if up.Status != "ready" || up.ItemCount != 2 || up.Name != "hand-made" {
		t.Errorf("uploaded = %+v", up)
	}
}

func TestRejectedUploadLeavesNothing(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	n.putConfig("crm", "a", "1")
	b := n.createBackup("crm", map[string]any{})
	b = n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)
	_, good := n.download("crm", b, "")

	zipOf := func(files map[string]string) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for name, body := range files {
			w, err := zw.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, body)
		}
		zw.Close()
		return buf.Bytes()
	}
	truncated := good[:len(good)/2]
	slip := zipOf(map[string]string{"manifest.json": `{"format_version":1,"components":["config"],"entries":[{"path":"../evil","size":1,"sha256":"x"}]}`, "../evil": "x"})
	future := zipOf(map[string]string{"manifest.json": `{"format_version":99,"components":["config"],"entries":[]}`})
	cases := []struct {
		name string
		body []byte
		code string
	}{
		{"not a zip", []byte("this is not a zip file at all"), "archive_invalid"},
		{"truncated", truncated, "archive_invalid"},
		{"zip slip", slip, "archive_invalid"},
		{"missing manifest", zipOf(map[string]string{"config/a": "1"}), "archive_invalid"},
		{"unknown format version", future, "unsupported_archive_version"},
	}
	objects := n.objects("ledger_archives")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := n.lastSeq()
			r := n.do("POST", "/v1/apps/crm/backups/upload", tc.body, "Content-Type", "application/zip")
			var p problem
			r.json(t, &p)
			if r.status < 400 || r.status >= 500 || p.Code != tc.code || p.Detail == "" {
				t.Errorf("status %d problem %+v, want 4xx %s", r.status, p, tc.code)
			}
			if after := n.lastSeq(); after != before {
				t.Errorf("stream moved from %d to %d", before, after)
			}
			if now := n.objects("ledger_archives"); !slices.Equal(now, objects) {
				t.Errorf("archive bucket changed: %v → %v", objects, now)
			}
		})
	}
}

func TestCorruptArchiveIsDetectedOnDownload(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	n.putConfig("crm", "big", strings.Repeat("0123456789abcdef", 1<<14))
	b := n.createBackup("crm", map[string]any{})
	b = n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)

	// Flip one byte of the stored archive behind the ledger's back.
	n.corruptArchive(b.ID)

	req, _ := http.NewRequest("GET", n.base+"/v1/apps/crm/backups/"+b.ID+"/archive", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		got, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil && resp.StatusCode == http.StatusOK && int64(len(got)) == b.SizeBytes {
			t.Fatal("a corrupt archive was delivered whole")
		}
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := n.backup("crm", b.ID); got.CorruptAt == nil || got.CorruptReason == nil {
			return fmt.Errorf("backup not marked corrupt: %+v", got)
		}
		return nil
	})
	r := n.do("GET", "/v1/apps/crm/backups/"+b.ID+"/archive", nil)
	var p problem
	r.json(t, &p)
	if r.status != http.StatusConflict || p.Code != "backup_corrupt" {
		t.Errorf("download of a corrupt backup: %d %+v", r.status, p)
	}
	var logs projections.LogList
	n.must(http.StatusOK, "GET", "/v1/apps/crm/backups/"+b.ID+"/logs", nil).json(t, &logs)
	if last := logs.Entries[len(logs.Entries)-1]; last.Event != domain.TypeBackupCorrupted || last.Result != "failed" {
		t.Errorf("last log entry = %+v", last)
	}
}

func TestDirSourceBackup(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{"logo.png": "\x89PNG fake", "docs/readme.md": "# Wiki\n"}
	for p, body := range files {
		full := filepath.Join(root, "wiki", filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		c.Sources.DirRoot = root
		c.Sources.ByApp = map[string]string{"wiki": daemon.SourceDir}
	}, nil)
	b := n.createBackup("wiki", map[string]any{})
	b = n.waitStatus("wiki", b.ID, 20*time.Second, domain.StatusReady, domain.StatusFailed)
	if b.Status != "ready" || b.Source != "dir" || b.ItemCount != len(files) {
		t.Fatalf("dir backup = %+v", b)
	}
	_, raw := n.download("wiki", b, "")
	got, m := readZip(t, raw)
	if m.Source != "dir" || !slices.Equal(m.Components, []string{"files"}) {
		t.Errorf("manifest = %+v", m)
	}
	for p, body := range files {
		if string(got["files/"+p]) != body {
			t.Errorf("files/%s = %q, want %q", p, got["files/"+p], body)
		}
	}
}

func TestNATSUploadAndDownload(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	n.putConfig("crm", "a", "1")
	b := n.createBackup("crm", map[string]any{})
	b = n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)

	resp := n.request("ledger.api.backups.download", map[string]any{"app": "crm", "id": b.ID}, token)
	if code := resp.Header.Get("Nats-Service-Error-Code"); code != "" {
		t.Fatalf("download: %s %s", code, resp.Data)
	}
	var staged struct {
		Bucket string `json:"bucket"`
		Object string `json:"object"`
		SHA256 string `json:"sha256"`
	}
	if err := json.Unmarshal(resp.Data, &staged); err != nil {
		t.Fatal(err)
	}
	// The staged archive is read, and the upload staged, by a producer.
	store, err := n.producerConn().js.ObjectStore(context.Background(), staged.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := store.GetBytes(context.Background(), staged.Object)
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(raw); hex.EncodeToString(s[:]) != *b.SHA256 || staged.SHA256 != *b.SHA256 {
		t.Fatalf("staged download sha %x / %s, ledger %s", s, staged.SHA256, *b.SHA256)
	}

	// A producer stages an archive and asks for its upload.
	if _, err := store.PutBytes(context.Background(), "from-producer.zip", raw); err != nil {
		t.Fatal(err)
	}
	n.ensureApp("other")
	resp = n.request("ledger.api.backups.upload", map[string]any{"app": "other", "object": "from-producer.zip", "name": "via nats"}, token)
	if code := resp.Header.Get("Nats-Service-Error-Code"); code != "" {
		t.Fatalf("upload: %s %s", code, resp.Data)
	}
	var up projections.BackupView
	if err := json.Unmarshal(resp.Data, &up); err != nil {
		t.Fatal(err)
	}
	if up.Status != "ready" || up.Origin != "upload" || up.Name != "via nats" {
		t.Errorf("uploaded = %+v", up)
	}
	if _, err := store.GetInfo(context.Background(), "from-producer.zip"); err == nil {
		t.Error("the staging object was not removed after the upload")
	}

	// A bad staged archive is refused with its code and removed too.
	if _, err := store.PutBytes(context.Background(), "junk.zip", []byte("junk")); err != nil {
		t.Fatal(err)
	}
	before := n.lastSeq()
	resp = n.request("ledger.api.backups.upload", map[string]any{"app": "other", "object": "junk.zip"}, token)
	var p problem
	json.Unmarshal(resp.Data, &p)
	if resp.Header.Get("Nats-Service-Error-Code") == "" || p.Code != "archive_invalid" {
		t.Errorf("junk upload: %v %s", resp.Header, resp.Data)
	}
	if n.lastSeq() != before {
		t.Error("a refused upload appended an event")
	}
}
