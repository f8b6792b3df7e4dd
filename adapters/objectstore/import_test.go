package objectstore_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/adapters/objectstore/archive/archivetest"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// setupTemp is setup with the temporary files in a directory of the test,
// which it returns, and cfg's other settings.
func setupTemp(t *testing.T, cfg objectstore.Config) (*objectstore.Archives, jetstream.JetStream, string) {
	t.Helper()
	_, js := natstest.Connect(t, natstest.Server(t, ""))
	cfg.TempDir = t.TempDir()
	a, err := objectstore.New(context.Background(), js, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a, js, cfg.TempDir
}

// assertNothingLeft checks that no archive is stored under id, no chunk is
// left in the archives' bucket beyond want, and no temporary file remains.
func assertNothingLeft(t *testing.T, a *objectstore.Archives, js jetstream.JetStream, tmp, id string, chunks uint64) {
	t.Helper()
	_, err := a.Stat(context.Background(), id)
	if domain.Code(err) != domain.CodeNotFound {
		t.Errorf("Stat(%s) after a refused import: %v, want not found", id, err)
	}
	if n := chunkMessages(t, js); n != chunks {
		t.Errorf("%d chunk messages in the bucket, want %d", n, chunks)
	}
	assertNoTempFiles(t, tmp)
}

func assertNoTempFiles(t *testing.T, tmp string) {
	t.Helper()
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("temporary files left: %q", names)
	}
}

func TestImportArchiveRejectsCrafted(t *testing.T) {
	a, js, tmp := setupTemp(t, objectstore.Config{})
	for i, c := range archivetest.CraftedArchives() {
		if c.Code == "" {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			id := fmt.Sprintf("01JREFUSED%02d", i)
			_, err := a.ImportArchive(t.Context(), "crm", id, bytes.NewReader(c.Build(t)))
			archivetest.CheckVerdict(t, c, err)
			assertNothingLeft(t, a, js, tmp, id, 0)
		})
	}
}

// tooLargeReader yields bytes without end, counting them.
type endlessReader struct{ n int64 }

func (r *endlessReader) Read(p []byte) (int, error) {
	clear(p)
	r.n += int64(len(p))
	return len(p), nil
}

func TestImportArchiveLimits(t *testing.T) {
	valid := func(t testing.TB) []byte {
		return archivetest.MakeZip(t, archivetest.WithManifest(t, nil, archivetest.ValidEntries()...)...)
	}
	docs := jsonLike(rand.New(rand.NewPCG(5, 6)), 2<<20)
	cases := []struct {
		name   string
		cfg    objectstore.Config
		body   func(t testing.TB) io.Reader
		code   string
		detail string
	}{
		{"upload size", objectstore.Config{MaxUploadBytes: 1000}, func(t testing.TB) io.Reader { return bytes.NewReader(valid(t)) },
			domain.CodeArchiveTooLarge, "1000 bytes"},
		{"endless upload", objectstore.Config{MaxUploadBytes: 3 << 20}, func(testing.TB) io.Reader { return &endlessReader{} },
			domain.CodeArchiveTooLarge, "allowed"},
		{"entry count", objectstore.Config{MaxEntries: 3}, func(t testing.TB) io.Reader { return bytes.NewReader(valid(t)) },
			domain.CodeArchiveInvalid, "entries"},
		{"uncompressed size", objectstore.Config{MaxUncompressedBytes: 5000}, func(t testing.TB) io.Reader { return bytes.NewReader(valid(t)) },
			domain.CodeArchiveInvalid, "uncompressed"},
		{"ratio", objectstore.Config{MaxRatio: 2}, func(t testing.TB) io.Reader {
			return bytes.NewReader(archivetest.MakeZip(t, archivetest.WithManifest(t, nil, archivetest.Entry{Name: "config/docs.json", Body: docs})...))
		}, domain.CodeArchiveInvalid, "more than 2 times"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, js, tmp := setupTemp(t, tc.cfg)
			body := tc.body(t)
			_, err := a.ImportArchive(t.Context(), "crm", "01JLIMIT", body)
			if got := domain.Code(err); got != tc.code || !strings.Contains(domain.Public(err), tc.detail) {
				t.Fatalf("err = %v, want code %s mentioning %q", err, tc.code, tc.detail)
			}
			if r, ok := body.(*endlessReader); ok && r.n > 4<<20 {
				t.Errorf("read %d bytes of an endless upload limited to 3 MiB", r.n)
			}
			assertNothingLeft(t, a, js, tmp, "01JLIMIT", 0)
		})
	}
}

// An archive our writer made imports as it is: same bytes, its manifest's
// header, and a second import of the same file is a second object.
func TestImportArchiveRoundTrip(t *testing.T) {
	ctx := context.Background()
	a, _, tmp := setupTemp(t, objectstore.Config{})
	h := header("01JORIGINAL")
	h.Components = []string{"config", "files"}
	items := []domain.Item{
		{Component: "config", Path: "settings/theme", Size: 13, Body: strings.NewReader(`{"dark":true}`)},
		{Component: "files", Path: "big.bin", Size: 2<<20 + 3, Body: bytes.NewReader(randomBytes(13, 2<<20+3))},
	}
	info, err := a.WriteArchive(ctx, h, emitItems(items...))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := readAll(t, a, h.BackupID)
	for _, id := range []string{"01JUPLOAD1", "01JUPLOAD2"} {
		imp, err := a.ImportArchive(ctx, "crm", id, bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("ImportArchive: %v", err)
		}
		want := domain.ImportedArchive{
			ArchiveInfo: info, App: "crm", BackupID: h.BackupID, Name: h.Name, Description: h.Description,
			CreatedAt: h.CreatedAt.UTC(), SchemaVersion: 3, Source: "kv", Components: []string{"config", "files"},
		}
		if !imp.CreatedAt.Equal(want.CreatedAt) || imp.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt = %v, want %v in UTC", imp.CreatedAt, want.CreatedAt)
		}
		imp.CreatedAt = want.CreatedAt
		if gotJSON, wantJSON := mustJSON(t, imp), mustJSON(t, want); gotJSON != wantJSON {
			t.Errorf("ImportedArchive =\n%s\nwant\n%s", gotJSON, wantJSON)
		}
		stored, st := readAll(t, a, id)
		if !bytes.Equal(stored, raw) || st.SHA256 != info.SHA256 || st.App != "crm" {
			t.Errorf("stored %d bytes (info %+v), want the uploaded %d bytes unchanged", len(stored), st, len(raw))
		}
	}
	assertNoTempFiles(t, tmp)
}

// A zip made by the system's zip tool from a folder with a hand-written
// manifest imports: directory entries and Info-ZIP's extra fields are
// fine.
func TestImportArchiveFromZipTool(t *testing.T) {
	zipTool, err := exec.LookPath("zip")
	if err != nil {
		t.Skip("no zip tool")
	}
	dir := t.TempDir()
	files := map[string]string{
		"config/settings/theme":    `{"dark":true}`,
		"config/tables/users.json": strings.Repeat(`{"id":1,"name":"x"},`, 1000),
		"files/docs/readme.txt":    "hello\n",
		"files/empty":              "",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum := func(name string) string { s := sha256.Sum256([]byte(files[name])); return hex.EncodeToString(s[:]) }
	manifest := fmt.Sprintf(`{
  "format_version": 1,
  "app": "shop",
  "backup_id": "handmade-1",
  "name": "Hand made",
  "description": "",
  "created_at": "2026-11-21T10:15:00Z",
  "created_by": "bob",
  "origin": "manual",
  "schema_version": 2,
  "source": "dir",
  "components": ["config", "files"],
  "item_count": 4,
  "entries": [
    {"path": "config/settings/theme", "size": 13, "sha256": "%s"},
    {"path": "config/tables/users.json", "size": 20000, "sha256": "%s"},
    {"path": "files/docs/readme.txt", "size": 6, "sha256": "%s"},
    {"path": "files/empty", "size": 0, "sha256": "%s"}
  ]
}
`, sum("config/settings/theme"), sum("config/tables/users.json"), sum("files/docs/readme.txt"), sum("files/empty"))
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "handmade.zip")
	cmd := exec.Command(zipTool, "-r", "-q", out, "manifest.json", "config", "files")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zip: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(zr.File, func(f *zip.File) bool { return f.Name == "config/" }) {
		t.Logf("zip wrote no directory entries: %v", zr.File)
	}

	a, _, tmp := setupTemp(t, objectstore.Config{})
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imp, err := a.ImportArchive(t.Context(), "crm", "01JZIPTOOL", f)
	if err != nil {
		t.Fatalf("ImportArchive: %v", err)
	}
	if imp.ItemCount != 4 || imp.App != "shop" || imp.SchemaVersion != 2 || imp.Source != "dir" || imp.SHA256 != sha(raw) {
		t.Errorf("ImportedArchive = %+v", imp)
	}
	assertNoTempFiles(t, tmp)
}

// Importing a 256 MiB upload keeps a few MiB in memory, not the upload:
// compared with a plain put of the same file (the embedded server's own
// buffers are in this process's heap too), the heap grows by a few tens of
// MiB at most; the import itself holds about 14 MiB (8 MiB of blocks
// between the reader and its three consumers, 1.3 MiB in the streamed
// pass, 4 MiB of chunks awaiting the server).
func TestImportArchiveStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 256 MiB")
	}
	a, _, tmp := setupTemp(t, objectstore.Config{})
	path := filepath.Join(t.TempDir(), "big.zip")
	const items, itemSize = 64, 4 << 20
	writeBigZip(t, path, items, itemSize)

	growth := func(f func(io.Reader) error) int64 {
		t.Helper()
		r, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		base := liveHeap()
		stop := heapPeak()
		err = f(r)
		peak := stop()
		if err != nil {
			t.Fatal(err)
		}
		return int64(peak) - int64(base)
	}
	raw := growth(func(r io.Reader) error {
		_, err := a.PutRaw(t.Context(), "01JRAWPUT", r)
		return err
	})
	if err := a.DeleteArchive(t.Context(), "01JRAWPUT"); err != nil {
		t.Fatal(err)
	}
	var imp domain.ImportedArchive
	imported := growth(func(r io.Reader) (err error) {
		imp, err = a.ImportArchive(t.Context(), "crm", "01JBIGUPLOAD", r)
		return err
	})
	t.Logf("upload %d MiB; peak heap growth %.1f MiB (a plain put of it: %.1f MiB)", imp.SizeBytes>>20, float64(imported)/(1<<20), float64(raw)/(1<<20))
	if imp.ItemCount != items || imp.SizeBytes < items*itemSize {
		t.Fatalf("ImportedArchive = %+v", imp)
	}
	// The server's buffer pools vary from run to run (by tens of MiB when
	// the machine is busy); an import that held the upload would add 256.
	if limit := max(raw, 16<<20) + 64<<20; imported > limit {
		t.Fatalf("live heap grew by %d MiB while importing a %d MiB upload, %d MiB with a plain put of it", imported>>20, imp.SizeBytes>>20, raw>>20)
	}
	assertNoTempFiles(t, tmp)
}

// writeBigZip writes a valid archive of incompressible items to path,
// streaming.
func writeBigZip(t testing.TB, path string, items, itemSize int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	m := archivetest.ManifestOf()
	for i := range items {
		name := fmt.Sprintf("files/%03d.bin", i)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: archivetest.Time})
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(rand.NewChaCha8([32]byte{byte(i)}), int64(itemSize))); err != nil {
			t.Fatal(err)
		}
		m.Entries = append(m.Entries, objectstore.ManifestEntry{Path: name, Size: int64(itemSize), SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	m.ItemCount = len(m.Entries)
	me := archivetest.ManifestFile(t, m)
	w, err := zw.Create(me.Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(me.Body); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

func stagingStore(t *testing.T, js jetstream.JetStream) jetstream.ObjectStore {
	t.Helper()
	obs, err := js.ObjectStore(context.Background(), objectstore.DefaultStagingBucket)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

func stagingNames(t *testing.T, obs jetstream.ObjectStore) []string {
	t.Helper()
	infos, err := obs.List(context.Background())
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, oi := range infos {
		names = append(names, oi.Name)
	}
	return names
}

func TestImportStaged(t *testing.T) {
	ctx := context.Background()
	a, js, tmp := setupTemp(t, objectstore.Config{})
	stg := stagingStore(t, js)

	// The staging bucket's objects expire.
	s, err := js.Stream(ctx, "OBJ_"+objectstore.DefaultStagingBucket)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != time.Hour {
		t.Errorf("staging bucket max age %s, want 1h", got)
	}

	valid := archivetest.MakeZip(t, archivetest.WithManifest(t, nil, archivetest.ValidEntries()...)...)
	if _, err := stg.PutBytes(ctx, "producer-upload-1", valid); err != nil {
		t.Fatal(err)
	}
	imp, err := a.ImportStaged(ctx, "crm", "01JSTAGED", "producer-upload-1")
	if err != nil {
		t.Fatalf("ImportStaged: %v", err)
	}
	if imp.SHA256 != sha(valid) || imp.SizeBytes != int64(len(valid)) || imp.ItemCount != 3 {
		t.Errorf("ImportedArchive = %+v", imp)
	}
	if stored, _ := readAll(t, a, "01JSTAGED"); !bytes.Equal(stored, valid) {
		t.Error("stored archive differs from the staged one")
	}
	if names := stagingNames(t, stg); len(names) != 0 {
		t.Errorf("staging objects left: %q", names)
	}

	// A refused one is removed all the same, and leaves nothing.
	chunks := chunkMessages(t, js)
	bad := archivetest.CraftedArchives()[2] // zip slip
	if _, err := stg.PutBytes(ctx, "producer-upload-2", bad.Build(t)); err != nil {
		t.Fatal(err)
	}
	_, err = a.ImportStaged(ctx, "crm", "01JSTAGEDBAD", "producer-upload-2")
	archivetest.CheckVerdict(t, bad, err)
	assertNothingLeft(t, a, js, tmp, "01JSTAGEDBAD", chunks)
	if names := stagingNames(t, stg); len(names) != 0 {
		t.Errorf("staging objects left: %q", names)
	}

	// An object whose chunks a producer purged after putting it (its
	// description still there) is refused at once, not waited for.
	info, err := stg.PutBytes(ctx, "producer-upload-3", valid)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject("$O."+objectstore.DefaultStagingBucket+".C."+info.NUID)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = a.ImportStaged(ctx, "crm", "01JSTAGEDGONE", "producer-upload-3")
	wantCode(t, err, domain.CodeArchiveInvalid)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a purged staging object took %s to refuse", took)
	}
	assertNothingLeft(t, a, js, tmp, "01JSTAGEDGONE", chunks)

	_, err = a.ImportStaged(ctx, "crm", "01JSTAGEDNONE", "never-put")
	wantCode(t, err, domain.CodeNotFound)
	_, err = a.ImportStaged(ctx, "crm", "01JSTAGEDNONE", "")
	wantCode(t, err, domain.CodeInvalidArgument)
	assertNoTempFiles(t, tmp)
}

// An archive the streamed pass cannot follow (here: bytes before its first
// entry, which archive/zip and ValidateArchive accept) is validated by
// reading the stored chunks back, and imports all the same; one that is
// also invalid is refused and leaves nothing.
func TestImportArchiveUndecidedReadsBack(t *testing.T) {
	a, js, tmp := setupTemp(t, objectstore.Config{})
	ents := archivetest.WithManifest(t, nil, append(archivetest.ValidEntries(), archivetest.Entry{Name: "files/big.bin", Body: randomBytes(5, 1<<20), Method: zip.Store})...)
	prefixed := append([]byte("#!/bin/sh\nexit 0\n"), archivetest.MakeZip(t, ents...)...)
	if archivetest.StreamedAgrees(t, prefixed, objectstore.Limits{}) {
		t.Fatal("the streamed pass decided: this test needs an archive it cannot follow")
	}
	imp, err := a.ImportArchive(t.Context(), "crm", "01JPREFIXED", bytes.NewReader(prefixed))
	if err != nil {
		t.Fatalf("ImportArchive: %v", err)
	}
	if imp.SHA256 != sha(prefixed) || imp.SizeBytes != int64(len(prefixed)) || imp.ItemCount != 4 {
		t.Errorf("ImportedArchive = %+v", imp)
	}
	if stored, _ := readAll(t, a, "01JPREFIXED"); !bytes.Equal(stored, prefixed) {
		t.Error("stored bytes differ from the upload")
	}

	chunks := chunkMessages(t, js)
	bad := append([]byte("#!/bin/sh\n"), archivetest.MakeZip(t, archivetest.WithManifest(t, func(m *objectstore.Manifest) { m.Entries[0].SHA256 = sha(nil) }, archivetest.ValidEntries()...)...)...)
	_, err = a.ImportArchive(t.Context(), "crm", "01JPREFIXEDBAD", bytes.NewReader(bad))
	wantCode(t, err, domain.CodeArchiveInvalid)
	if !strings.Contains(domain.Public(err), "sha256") {
		t.Errorf("detail %q does not name the digest", domain.Public(err))
	}
	assertNothingLeft(t, a, js, tmp, "01JPREFIXEDBAD", chunks)
}
