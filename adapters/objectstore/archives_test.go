package objectstore_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
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

func setup(t *testing.T) (*objectstore.Archives, jetstream.JetStream) {
	t.Helper()
	_, js := natstest.Connect(t, natstest.Server(t, ""))
	a, err := objectstore.New(context.Background(), js, objectstore.Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a, js
}

func header(id string) domain.ArchiveHeader {
	return domain.ArchiveHeader{
		App: "crm", BackupID: id, Name: "August 29 Monday 12:02", Description: "before the upgrade",
		CreatedAt: time.Date(2026, 11, 21, 10, 15, 0, 0, time.FixedZone("CET", 3600)), CreatedBy: "alice",
		Origin: domain.OriginManual, SchemaVersion: 3, SourceKind: "kv",
	}
}

type doc struct {
	path string
	body []byte
}

// emitAll returns an export that emits docs in order.
func emitAll(docs []doc) func(func(domain.Item) error) error {
	return func(emit func(domain.Item) error) error {
		for _, d := range docs {
			if err := emit(domain.Item{Path: d.path, Size: int64(len(d.body)), Body: bytes.NewReader(d.body)}); err != nil {
				return err
			}
		}
		return nil
	}
}

func randomBytes(seed uint64, n int) []byte { return archivetest.RandomBytes(seed, n) }

func sha(b []byte) string { return archivetest.SHA256(b) }

// readAll reads an archive back through Open.
func readAll(t *testing.T, a *objectstore.Archives, id string) ([]byte, objectstore.Info) {
	t.Helper()
	rc, info, err := a.Open(context.Background(), id)
	if err != nil {
		t.Fatalf("Open %s: %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return b, info
}

func list(t *testing.T, a *objectstore.Archives) []string {
	t.Helper()
	names, err := a.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return names
}

// chunkMessages counts the chunk messages in the bucket's stream: after a
// failed or deleted archive there must be none left over.
func chunkMessages(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), "OBJ_"+objectstore.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter("$O."+objectstore.DefaultBucket+".C.>"))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := domain.Code(err); got != code {
		t.Fatalf("err = %v (code %q), want code %q", err, got, code)
	}
}

func TestWriteArchiveRoundTrip(t *testing.T) {
	ctx := context.Background()
	a, _ := setup(t)
	docs := []doc{
		{"settings/theme", []byte(`{"dark":true}`)},
		{"empty", nil},
		{"big/blob.bin", randomBytes(1, 5<<20+123)},
		{"tables/users.json", bytes.Repeat([]byte(`{"id":1,"name":"x"},`), 10000)},
		{"unicodé/ü.txt", []byte("grüße")},
	}
	h := header("01JBACKUP0000000000000000A")
	info, err := a.WriteArchive(ctx, h, emitAll(docs))
	if err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	if info.ItemCount != len(docs) {
		t.Errorf("ItemCount = %d, want %d", info.ItemCount, len(docs))
	}

	raw, oinfo := readAll(t, a, h.BackupID)
	if got := sha(raw); got != info.SHA256 {
		t.Errorf("sha256 of the object = %s, ArchiveInfo.SHA256 = %s", got, info.SHA256)
	}
	if int64(len(raw)) != info.SizeBytes {
		t.Errorf("object has %d bytes, ArchiveInfo.SizeBytes = %d", len(raw), info.SizeBytes)
	}
	if int64(len(raw)) >= 5<<20+123+200000 {
		t.Errorf("archive of %d bytes: the JSON was not compressed", len(raw))
	}
	st, err := a.Stat(ctx, h.BackupID)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	want := objectstore.Info{BackupID: h.BackupID, App: "crm", SizeBytes: info.SizeBytes, SHA256: info.SHA256}
	if st.ModTime.IsZero() || oinfo.ModTime.IsZero() {
		t.Errorf("no ModTime: Stat %v, Open %v", st.ModTime, oinfo.ModTime)
	}
	st.ModTime, oinfo.ModTime = time.Time{}, time.Time{}
	if st != want || oinfo != want {
		t.Errorf("Stat = %+v, Open info = %+v, want %+v", st, oinfo, want)
	}
	if got := list(t, a); !slices.Equal(got, []string{h.BackupID}) {
		t.Errorf("List = %q", got)
	}

	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	var names []string
	// Entries that deflate shrinks by less than 10% are stored.
	wantMethod := map[string]uint16{"config/tables/users.json": zip.Deflate, "manifest.json": zip.Deflate}
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Method != wantMethod[f.Name] {
			t.Errorf("%s: method %d, want %d", f.Name, f.Method, wantMethod[f.Name])
		}
	}
	wantNames := []string{"config/settings/theme", "config/empty", "config/big/blob.bin", "config/tables/users.json", "config/unicodé/ü.txt", "manifest.json"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("zip entries = %q, want %q", names, wantNames)
	}

	rawManifest := readEntry(t, zr.File[len(zr.File)-1])
	var m objectstore.Manifest
	dec := json.NewDecoder(bytes.NewReader(rawManifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if !bytes.Contains(rawManifest, []byte(`"created_at": "2026-11-21T09:15:00Z"`)) {
		t.Errorf("created_at is not RFC 3339 UTC:\n%s", rawManifest)
	}
	wantM := objectstore.Manifest{
		FormatVersion: 1, App: "crm", BackupID: h.BackupID, Name: h.Name, Description: h.Description,
		CreatedAt: h.CreatedAt.UTC(), CreatedBy: "alice", Origin: "manual", SchemaVersion: 3, Source: "kv",
		Components: []string{"config"}, ItemCount: len(docs),
	}
	for _, d := range docs {
		wantM.Entries = append(wantM.Entries, objectstore.ManifestEntry{Path: "config/" + d.path, Size: int64(len(d.body)), SHA256: sha(d.body)})
	}
	if !m.CreatedAt.Equal(wantM.CreatedAt) {
		t.Errorf("created_at = %v, want %v", m.CreatedAt, wantM.CreatedAt)
	}
	m.CreatedAt = wantM.CreatedAt
	if gotJSON, wantJSON := mustJSON(t, m), mustJSON(t, wantM); gotJSON != wantJSON {
		t.Errorf("manifest =\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	for i, f := range zr.File[:len(zr.File)-1] {
		body := readEntry(t, f)
		if e := m.Entries[i]; e.Path != f.Name || int64(len(body)) != e.Size || sha(body) != e.SHA256 {
			t.Errorf("entry %s: %d bytes sha %s; manifest says %+v", f.Name, len(body), sha(body), e)
		}
		if f.UncompressedSize64 != uint64(len(body)) {
			t.Errorf("entry %s: zip header says %d bytes, read %d", f.Name, f.UncompressedSize64, len(body))
		}
	}

	// The upload validation accepts what the writer writes.
	if _, err := objectstore.ValidateArchive(ctx, bytes.NewReader(raw), int64(len(raw)), objectstore.Limits{}); err != nil {
		t.Errorf("ValidateArchive of a written archive: %v", err)
	}

	unzipTest(t, raw)
}

// unzipTest checks with the system's unzip, if there is one, that raw is
// a sound zip.
func unzipTest(t *testing.T, raw []byte) {
	t.Helper()
	unzip, err := exec.LookPath("unzip")
	if err != nil {
		return
	}
	p := filepath.Join(t.TempDir(), "a.zip")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(unzip, "-t", p).CombinedOutput(); err != nil {
		t.Errorf("unzip -t: %v\n%s", err, out)
	}
}

func readEntry(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatalf("open %s: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", f.Name, err)
	}
	return b
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEmptyArchive(t *testing.T) {
	a, _ := setup(t)
	info, err := a.WriteArchive(context.Background(), header("empty"), emitAll(nil))
	if err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	raw, _ := readAll(t, a, "empty")
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "manifest.json" || info.ItemCount != 0 {
		t.Fatalf("entries %v, item count %d", zr.File, info.ItemCount)
	}
	if m := readEntry(t, zr.File[0]); !bytes.Contains(m, []byte(`"entries": []`)) || !bytes.Contains(m, []byte(`"components": [`)) {
		t.Fatalf("manifest of an empty archive:\n%s", m)
	}
}

// A retry under the same backup id replaces the earlier object entirely.
func TestWriteArchiveReplaces(t *testing.T) {
	ctx := context.Background()
	a, js := setup(t)
	id := "01JRETRY"
	if _, err := a.WriteArchive(ctx, header(id), emitAll([]doc{{"a", randomBytes(2, 1<<20)}})); err != nil {
		t.Fatal(err)
	}
	second := []doc{{"b", []byte("second")}}
	info, err := a.WriteArchive(ctx, header(id), emitAll(second))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := readAll(t, a, id)
	if sha(raw) != info.SHA256 {
		t.Fatal("object is not the second archive")
	}
	if n := chunkMessages(t, js); n != 1 {
		t.Fatalf("%d chunk messages in the bucket, want the second archive's 1", n)
	}
}

func TestWriteArchiveFailureLeavesNothing(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name   string
		export func(ctx context.Context, cancel func()) func(func(domain.Item) error) error
		want   error
	}{
		{"export error midway", func(context.Context, func()) func(func(domain.Item) error) error {
			return func(emit func(domain.Item) error) error {
				if err := emitAll([]doc{{"a", randomBytes(3, 3<<20)}, {"b", []byte("b")}})(emit); err != nil {
					return err
				}
				return boom
			}
		}, boom},
		{"body read error", func(context.Context, func()) func(func(domain.Item) error) error {
			return func(emit func(domain.Item) error) error {
				body := io.MultiReader(bytes.NewReader(randomBytes(4, 2<<20)), iotestErrReader{boom})
				return emit(domain.Item{Path: "broken", Size: 3 << 20, Body: body})
			}
		}, boom},
		{"context cancelled midway", func(ctx context.Context, cancel func()) func(func(domain.Item) error) error {
			return func(emit func(domain.Item) error) error {
				for i := range 100 {
					if i == 3 {
						cancel()
					}
					if err := emit(domain.Item{Path: fmt.Sprint("f", i), Size: 1 << 20, Body: bytes.NewReader(randomBytes(uint64(i), 1<<20))}); err != nil {
						return err
					}
				}
				return nil
			}
		}, context.Canceled},
		{"size mismatch", func(context.Context, func()) func(func(domain.Item) error) error {
			return func(emit func(domain.Item) error) error {
				return emit(domain.Item{Path: "short", Size: 10, Body: strings.NewReader("123")})
			}
		}, nil},
		{"duplicate path", func(context.Context, func()) func(func(domain.Item) error) error {
			return emitAll([]doc{{"a", []byte("1")}, {"a", []byte("2")}})
		}, nil},
	}
	for _, p := range []string{"../escape", "/abs", "a//b", "a/./b", "a/../b", `a\b`, "", "a/", "ctl\x01"} {
		cases = append(cases, struct {
			name   string
			export func(ctx context.Context, cancel func()) func(func(domain.Item) error) error
			want   error
		}{"bad path " + p, func(context.Context, func()) func(func(domain.Item) error) error {
			return emitAll([]doc{{"good", []byte("g")}, {p, []byte("x")}})
		}, nil})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, js := setup(t)
			id := "01JFAILED"
			// A previous attempt left a complete archive under the same name.
			if _, err := a.WriteArchive(context.Background(), header(id), emitAll([]doc{{"old", []byte("old")}})); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := a.WriteArchive(ctx, header(id), tc.export(ctx, cancel))
			if err == nil {
				t.Fatal("WriteArchive succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := list(t, a); len(got) != 0 {
				t.Fatalf("List = %q after a failed write, want nothing", got)
			}
			_, err = a.Stat(context.Background(), id)
			wantCode(t, err, domain.CodeNotFound)
			if n := chunkMessages(t, js); n != 0 {
				t.Fatalf("%d chunk messages left in the bucket", n)
			}
		})
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestExportPanicIsRaisedAndLeavesNothing(t *testing.T) {
	a, _ := setup(t)
	defer func() {
		if p := recover(); p != "kaboom" {
			t.Fatalf("recovered %v, want the export's panic", p)
		}
		if got := list(t, a); len(got) != 0 {
			t.Fatalf("List = %q after a panic", got)
		}
	}()
	_, _ = a.WriteArchive(context.Background(), header("01JPANIC"), func(emit func(domain.Item) error) error {
		_ = emit(domain.Item{Path: "a", Size: 1, Body: strings.NewReader("a")})
		panic("kaboom")
	})
	t.Fatal("no panic")
}

func TestDeleteArchive(t *testing.T) {
	ctx := context.Background()
	a, js := setup(t)
	if err := a.DeleteArchive(ctx, "01JMISSING"); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
	for _, id := range []string{"01JKEEP", "01JDROP"} {
		if _, err := a.WriteArchive(ctx, header(id), emitAll([]doc{{"a", randomBytes(5, 300<<10)}})); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.DeleteArchive(ctx, "01JDROP"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if got := list(t, a); !slices.Equal(got, []string{"01JKEEP"}) {
		t.Fatalf("List = %q", got)
	}
	_, err := a.Stat(ctx, "01JDROP")
	wantCode(t, err, domain.CodeNotFound)
	_, _, err = a.Open(ctx, "01JDROP")
	wantCode(t, err, domain.CodeNotFound)
	if err := a.DeleteArchive(ctx, "01JDROP"); err != nil {
		t.Fatalf("delete again: %v", err)
	}
	if n := chunkMessages(t, js); n != 3 { // 300 KiB of random data: the kept archive's 3 chunks
		t.Fatalf("%d chunk messages, want 3", n)
	}
	wantCode(t, a.DeleteArchive(ctx, ""), domain.CodeInvalidArgument)
	wantCode(t, a.DeleteArchive(ctx, "a b"), domain.CodeInvalidArgument)
	_, err = a.WriteArchive(ctx, header("x>"), emitAll(nil))
	wantCode(t, err, domain.CodeInvalidArgument)
	h := header("01JBADAPP")
	h.App = "Bad App"
	_, err = a.WriteArchive(ctx, h, emitAll(nil))
	wantCode(t, err, domain.CodeInvalidArgument)
}

func TestNewIsIdempotent(t *testing.T) {
	ctx := context.Background()
	a, js := setup(t)
	if _, err := a.WriteArchive(ctx, header("01JKEEP"), emitAll([]doc{{"a", []byte("a")}})); err != nil {
		t.Fatal(err)
	}
	a2, err := objectstore.New(ctx, js, objectstore.Config{Bucket: objectstore.DefaultBucket, Replicas: 1})
	if err != nil {
		t.Fatalf("New again: %v", err)
	}
	if got := list(t, a2); !slices.Equal(got, []string{"01JKEEP"}) {
		t.Fatalf("List after New again = %q", got)
	}
	for _, cfg := range []objectstore.Config{{Bucket: "a.b"}, {Replicas: -1}, {Replicas: 6}, {CallTimeout: -time.Second}} {
		if cfg.Validate() == nil {
			t.Errorf("%+v is valid", cfg)
		}
	}
	if err := (objectstore.Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

// Items go into the folder of their component, by default the first of the
// header's; the manifest lists the header's components and those used,
// sorted. Small and large, compressible and incompressible items all come
// back intact.
func TestWriteArchiveComponents(t *testing.T) {
	ctx := context.Background()
	a, _ := setup(t)
	h := header("01JCOMPONENTS")
	h.Components = []string{"files", "config", "files"}
	json := jsonLike(rand.New(rand.NewPCG(3, 4)), 3<<20+5)
	items := []domain.Item{
		{Path: "default.txt", Body: strings.NewReader("to the first component")},
		{Component: "config", Path: "settings/theme", Body: strings.NewReader(`{"dark":true}`)},
		{Component: "extra", Path: "c", Body: strings.NewReader("c")},
		{Component: "files", Path: "big.json", Body: bytes.NewReader(json)},
		{Component: "files", Path: "big.bin", Body: bytes.NewReader(randomBytes(11, 3<<20+7))},
		{Component: "files", Path: "exact.bin", Body: bytes.NewReader(randomBytes(12, 1<<20))},
		{Component: "files", Path: "nil-body"},
	}
	bodies := map[string][]byte{}
	export := func(emit func(domain.Item) error) error {
		for _, it := range items {
			var b []byte
			if it.Body != nil {
				b, _ = io.ReadAll(it.Body)
			}
			comp := it.Component
			if comp == "" {
				comp = "files"
			}
			bodies[comp+"/"+it.Path] = b
			it.Body, it.Size = bytes.NewReader(b), int64(len(b))
			if err := emit(it); err != nil {
				return err
			}
		}
		return nil
	}
	info, err := a.WriteArchive(ctx, h, export)
	if err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	raw, _ := readAll(t, a, h.BackupID)
	m, err := objectstore.ValidateArchive(ctx, bytes.NewReader(raw), int64(len(raw)), objectstore.Limits{})
	if err != nil {
		t.Fatalf("ValidateArchive: %v", err)
	}
	if want := []string{"config", "extra", "files"}; !slices.Equal(m.Components, want) {
		t.Errorf("components = %q, want %q", m.Components, want)
	}
	var paths []string
	for _, e := range m.Entries {
		paths = append(paths, e.Path)
	}
	want := []string{"files/default.txt", "config/settings/theme", "extra/c", "files/big.json", "files/big.bin", "files/exact.bin", "files/nil-body"}
	if !slices.Equal(paths, want) || info.ItemCount != len(want) || m.ItemCount != len(want) {
		t.Fatalf("entries = %q (item count %d), want %q", paths, info.ItemCount, want)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File[:len(zr.File)-1] {
		if got := readEntry(t, f); !bytes.Equal(got, bodies[f.Name]) {
			t.Errorf("%s: %d bytes back, want %d", f.Name, len(got), len(bodies[f.Name]))
		}
		method := map[bool]uint16{true: zip.Deflate, false: zip.Store}[f.Name == "files/big.json"]
		if f.Method != method {
			t.Errorf("%s: method %d, want %d", f.Name, f.Method, method)
		}
	}
	unzipTest(t, raw)
	if int64(len(raw)) > int64(len(json))/4+4<<20+1<<20 {
		t.Errorf("archive of %d bytes: the large JSON item was not compressed", len(raw))
	}

	for _, bad := range []domain.Item{{Component: "Bad", Path: "x"}, {Component: "a/b", Path: "x"}, {Component: "config", Path: "../x"}} {
		_, err := a.WriteArchive(ctx, header("01JBADCOMPONENT"), emitItems(bad))
		if err == nil {
			t.Errorf("item %+v accepted", bad)
		}
	}
	h = header("01JBADCOMPONENT")
	h.Components = []string{"Config"}
	if _, err := a.WriteArchive(ctx, h, emitAll(nil)); err == nil {
		t.Error("header component \"Config\" accepted")
	}
	if got := list(t, a); !slices.Equal(got, []string{"01JCOMPONENTS"}) {
		t.Fatalf("List = %q after refused writes", got)
	}
}

func emitItems(items ...domain.Item) func(func(domain.Item) error) error {
	return func(emit func(domain.Item) error) error {
		for _, it := range items {
			if err := emit(it); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestRemoveUnfinished: the chunks a killed backup or upload left (no
// object refers to them) are purged once older than the cut-off; the
// chunks of complete archives, and recent ones, stay.
func TestRemoveUnfinished(t *testing.T) {
	ctx := t.Context()
	a, js := setup(t)
	body := randomBytes(7, 300<<10)
	if _, err := a.WriteArchive(ctx, header("01KEEP00000000000000000000"), emitAll([]doc{{"a", body}})); err != nil {
		t.Fatal(err)
	}
	// What a put killed after two chunks leaves: chunks, no meta.
	dead := "$O." + objectstore.DefaultBucket + ".C.deadnuid000000000000000"
	for range 2 {
		if _, err := js.Publish(ctx, dead, randomBytes(1, 128<<10)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := js.Stream(ctx, "OBJ_"+objectstore.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	chunks := func() uint64 {
		t.Helper()
		info, err := st.Info(ctx, jetstream.WithSubjectFilter("$O."+objectstore.DefaultBucket+".C.>"))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	before := chunks()

	// Too recent: perhaps still being written.
	if n, err := a.RemoveUnfinished(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("RemoveUnfinished of recent chunks = %d, %v; want 0", n, err)
	}
	if n, err := a.RemoveUnfinished(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("RemoveUnfinished = %d, %v; want the one unfinished archive", n, err)
	}
	if after := chunks(); after != before-2 {
		t.Fatalf("chunks %d → %d, want the 2 unfinished ones gone", before, after)
	}
	if got, info := readAll(t, a, "01KEEP00000000000000000000"); int64(len(got)) != info.SizeBytes || info.SHA256 != sha(got) {
		t.Fatalf("the complete archive reads %d bytes, want %d with its digest", len(got), info.SizeBytes)
	}
	if n, err := a.RemoveUnfinished(ctx, time.Now().Add(time.Minute)); err != nil || n != 0 {
		t.Fatalf("a second RemoveUnfinished = %d, %v; want 0", n, err)
	}
}
