package dir_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/backupledger/backupledger/adapters/source/dir"
	"github.com/backupledger/backupledger/domain"
)

var oldFiles = map[string]string{
	"keep":            "old content",
	"gone.txt":        "not in the backup",
	"old-dir/a":       "old",
	"old-dir/deep/b":  "old",
	"shared/changed":  "before",
	"shared/obsolete": "old",
}

var newFiles = map[string]string{
	"keep":           "new content",
	"new.txt":        "added",
	"shared/changed": "after",
	"new-dir/x/y":    "deep",
	"empty":          "",
}

func TestImportReplacesEverything(t *testing.T) {
	s, root := setup(t)
	app := filepath.Join(root, "crm")
	writeTree(t, app, oldFiles)
	if err := os.MkdirAll(filepath.Join(app, "empty-old-dir"), 0o755); err != nil {
		t.Fatal(err)
	}

	if err := s.Import(context.Background(), "crm", itemsOf(newFiles)); err != nil {
		t.Fatalf("Import: %v", err)
	}
	if got, want := readTree(t, app), treeOf(newFiles); !equalTrees(got, want) {
		t.Errorf("after Import:\n got %+v\nwant %+v", got, want)
	}
	if got, want := rootEntries(t, root), []string{"crm"}; !slices.Equal(got, want) {
		t.Errorf("root holds %q, want %q (no temporary folders)", got, want)
	}

	// Importing the same items again gives the same folder.
	if err := s.Import(context.Background(), "crm", itemsOf(newFiles)); err != nil {
		t.Fatalf("second Import: %v", err)
	}
	if got, want := readTree(t, app), treeOf(newFiles); !equalTrees(got, want) {
		t.Errorf("after a second Import:\n got %+v\nwant %+v", got, want)
	}
}

func TestImportNewAppAndNoItems(t *testing.T) {
	s, root := setup(t)
	if err := s.Import(context.Background(), "fresh", itemsOf(newFiles)); err != nil {
		t.Fatalf("Import into a new app: %v", err)
	}
	if got, want := readTree(t, filepath.Join(root, "fresh")), treeOf(newFiles); !equalTrees(got, want) {
		t.Errorf("new app:\n got %+v\nwant %+v", got, want)
	}
	fi, err := os.Stat(filepath.Join(root, "fresh", "new.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o640 != 0 {
		t.Errorf("imported file mode %v, want at most 0640", perm)
	}

	// No items: an empty folder.
	if err := s.Import(context.Background(), "fresh", itemsOf(nil)); err != nil {
		t.Fatalf("Import of no items: %v", err)
	}
	if got := readTree(t, filepath.Join(root, "fresh")); got == nil || len(got.files) != 0 || len(got.dirs) != 0 {
		t.Errorf("after importing no items: %+v, want an empty folder", got)
	}
	if got, want := rootEntries(t, root), []string{"fresh"}; !slices.Equal(got, want) {
		t.Errorf("root holds %q, want %q", got, want)
	}
}

// items is an items function emitting the given items; bodies that are
// *strings.Reader are rewound first, so that tables can share items.
func items(its ...domain.Item) func(func(domain.Item) error) error {
	return func(emit func(domain.Item) error) error {
		for _, it := range its {
			if r, ok := it.Body.(*strings.Reader); ok {
				r.Seek(0, io.SeekStart)
			}
			if err := emit(it); err != nil {
				return err
			}
		}
		return nil
	}
}

func file(p, content string) domain.Item {
	return domain.Item{Component: domain.ComponentFiles, Path: p, Size: int64(len(content)), Body: strings.NewReader(content)}
}

func TestImportFailureChangesNothing(t *testing.T) {
	boom := errors.New("boom")
	ok := file("ok", "fine")
	cases := []struct {
		name    string
		items   func(func(domain.Item) error) error
		wantErr error  // errors.Is, if set
		code    string // domain.Code, if set
		mention string // in the message, if set
	}{
		{name: "items fails midway", items: func(emit func(domain.Item) error) error {
			if err := emit(file("ok", "fine")); err != nil {
				return err
			}
			return boom
		}, wantErr: boom},
		{name: "items drops the emit error", items: func(emit func(domain.Item) error) error {
			_ = emit(file("ok", "fine"))
			_ = emit(file("../escape", "x"))
			_ = emit(file("later", "x"))
			return nil
		}, code: domain.CodeInvalidArgument, mention: "../escape"},
		{name: "body fails", items: items(ok, domain.Item{Path: "broken", Size: 10, Body: io.MultiReader(strings.NewReader("part"), iotest{boom})}), wantErr: boom},
		{name: "size mismatch", items: items(ok, domain.Item{Path: "short", Size: 10, Body: strings.NewReader("four")}), code: domain.CodeInvalidArgument, mention: "short"},
		{name: "other component", items: items(ok, domain.Item{Component: domain.ComponentConfig, Path: "x", Body: strings.NewReader("")}), code: domain.CodeInvalidArgument, mention: "config"},
		{name: "duplicate", items: items(ok, file("a/b", "1"), file("a/b", "2")), code: domain.CodeInvalidArgument, mention: "a/b"},
		{name: "file then folder", items: items(ok, file("a", "1"), file("a/b", "2")), code: domain.CodeInvalidArgument, mention: "a/b"},
		{name: "folder then file", items: items(ok, file("a/b/c", "1"), file("a/b", "2")), code: domain.CodeInvalidArgument, mention: "a/b"},
	}
	for _, p := range []string{"", "/abs", "../up", "a/../../up", "a/..", "..", ".", "./a", "a/./b", "a//b", "a/", `a\b`, `..\up`, "bad\xff", "ctrl\x00", "nl\n", strings.Repeat("x/", 510) + "long"} {
		cases = append(cases, struct {
			name    string
			items   func(func(domain.Item) error) error
			wantErr error
			code    string
			mention string
		}{name: "bad path " + p, items: items(ok, file("b", "2"), file(p, "bad")), code: domain.CodeInvalidArgument})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, root := setup(t)
			app := filepath.Join(root, "crm")
			writeTree(t, app, oldFiles)
			before := readTree(t, app)

			err := s.Import(context.Background(), "crm", tc.items)
			if err == nil {
				t.Fatal("Import: no error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error = %v, want %v", err, tc.wantErr)
			}
			if tc.code != "" && domain.Code(err) != tc.code {
				t.Errorf("error = %v, want code %s", err, tc.code)
			}
			if tc.mention != "" && !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error = %v, want it to name %q", err, tc.mention)
			}
			if got := readTree(t, app); !equalTrees(got, before) {
				t.Errorf("app folder changed:\n got %+v\nwant %+v", got, before)
			}
			if got, want := rootEntries(t, root), []string{"crm"}; !slices.Equal(got, want) {
				t.Errorf("root holds %q, want %q (temporary folder left)", got, want)
			}
		})
	}
}

// iotest is a reader that fails.
type iotest struct{ err error }

func (r iotest) Read([]byte) (int, error) { return 0, r.err }

func TestImportBadAppID(t *testing.T) {
	s, root := setup(t)
	for _, app := range []string{"", "..", "../x", "a/b", "A", ".tmp-a.x"} {
		if err := s.Import(context.Background(), app, itemsOf(newFiles)); domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("Import(%q) = %v, want code %s", app, err, domain.CodeInvalidArgument)
		}
	}
	if got := rootEntries(t, root); len(got) != 0 {
		t.Errorf("root holds %q, want nothing", got)
	}
}

func TestRoundTrip(t *testing.T) {
	s, root := setup(t)
	files := map[string]string{
		"a.txt": "1", "a/b": "2", "a/c/d": "3", "empty": "", ".env": "SECRET=1", "thème/été": "é",
		"big": strings.Repeat("0123456789", 300_000),
	}
	writeTree(t, filepath.Join(root, "src"), files)
	writeTree(t, filepath.Join(root, "dst"), oldFiles)

	err := s.Import(context.Background(), "dst", func(emit func(domain.Item) error) error {
		return s.Export(context.Background(), "src", emit)
	})
	if err != nil {
		t.Fatalf("Export → Import: %v", err)
	}
	src, dst := readTree(t, filepath.Join(root, "src")), readTree(t, filepath.Join(root, "dst"))
	if !equalTrees(src, dst) || !equalTrees(src, treeOf(files)) {
		t.Errorf("trees differ:\nsrc %+v\ndst %+v", src, dst)
	}
	// And the export of the copy equals the export of the original.
	a, errA := export(t, s, "src")
	b, errB := export(t, s, "dst")
	if errA != nil || errB != nil || !slices.Equal(a, b) {
		t.Errorf("exports differ (%v, %v)", errA, errB)
	}
}

// zeros is an endless reader of a repeated pattern.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func TestImportStreams(t *testing.T) {
	s, root := setup(t)
	const size = 20 << 20
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	err := s.Import(context.Background(), "crm", items(domain.Item{Path: "big.bin", Size: size, Body: io.LimitReader(zeros{}, size)}))
	runtime.ReadMemStats(&ms)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if alloc := ms.TotalAlloc - before; alloc > 4<<20 {
		t.Errorf("Import allocated %d bytes for a 20 MiB body; want it streamed", alloc)
	}
	f, err := os.Open(filepath.Join(root, "crm", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h1, h2 := sha256.New(), sha256.New()
	if _, err := io.Copy(h1, f); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(h2, io.LimitReader(zeros{}, size)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h1.Sum(nil), h2.Sum(nil)) {
		t.Error("imported content differs")
	}
}

func TestImportCancel(t *testing.T) {
	// Cancelled before, between items, and in the middle of a body.
	cases := map[string]func(cancel context.CancelFunc) func(func(domain.Item) error) error{
		"before": func(cancel context.CancelFunc) func(func(domain.Item) error) error {
			cancel()
			return itemsOf(newFiles)
		},
		"between items": func(cancel context.CancelFunc) func(func(domain.Item) error) error {
			return func(emit func(domain.Item) error) error {
				if err := emit(file("a", "1")); err != nil {
					return err
				}
				cancel()
				return emit(file("b", "2"))
			}
		},
		"in a body": func(cancel context.CancelFunc) func(func(domain.Item) error) error {
			body := &cancelAfter{r: io.LimitReader(zeros{}, 10<<20), cancel: cancel}
			return items(domain.Item{Path: "big", Size: 10 << 20, Body: body})
		},
		"after the items": func(cancel context.CancelFunc) func(func(domain.Item) error) error {
			return func(emit func(domain.Item) error) error {
				defer cancel()
				return emit(file("a", "1"))
			}
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			s, root := setup(t)
			app := filepath.Join(root, "crm")
			writeTree(t, app, oldFiles)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := s.Import(ctx, "crm", mk(cancel))
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Import = %v, want context.Canceled", err)
			}
			if got := readTree(t, app); !equalTrees(got, treeOf(oldFiles)) {
				t.Errorf("app folder changed: %+v", got)
			}
			if got, want := rootEntries(t, root), []string{"crm"}; !slices.Equal(got, want) {
				t.Errorf("root holds %q, want %q", got, want)
			}
		})
	}
}

// cancelAfter cancels after its first read.
type cancelAfter struct {
	r      io.Reader
	cancel context.CancelFunc
	reads  int
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	c.reads++
	if c.reads == 2 {
		c.cancel()
	}
	return c.r.Read(p)
}

func TestInterruptedImportRecovers(t *testing.T) {
	root := filepath.Join(t.TempDir(), "files")
	// A crash between the two renames: no app folder, its old content in
	// .old-crm.*, the new one complete in .tmp-crm.*.
	writeTree(t, filepath.Join(root, ".old-crm.CRASH"), oldFiles)
	writeTree(t, filepath.Join(root, ".tmp-crm.CRASH"), newFiles)
	s, err := dir.New(dir.Config{Root: root})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := readTree(t, filepath.Join(root, "crm")); !equalTrees(got, treeOf(oldFiles)) {
		t.Errorf("New did not move the old folder back: %+v", got)
	}
	// New removes nothing: another process may be importing.
	if got, want := rootEntries(t, root), []string{".tmp-crm.CRASH", "crm"}; !slices.Equal(got, want) {
		t.Errorf("root holds %q, want %q", got, want)
	}

	// Leftovers of this app go at its next import; those of app crm-b,
	// whose names begin alike, stay.
	writeTree(t, filepath.Join(root, ".old-crm.STALE"), map[string]string{"x": "1"})
	writeTree(t, filepath.Join(root, ".tmp-crm-b.OTHER"), map[string]string{"x": "1"})
	writeTree(t, filepath.Join(root, ".old-crm-b.OTHER"), map[string]string{"x": "1"})
	writeTree(t, filepath.Join(root, "crm-b"), map[string]string{"x": "1"})
	if err := s.Import(context.Background(), "crm", itemsOf(newFiles)); err != nil {
		t.Fatalf("Import: %v", err)
	}
	if got, want := rootEntries(t, root), []string{".old-crm-b.OTHER", ".tmp-crm-b.OTHER", "crm", "crm-b"}; !slices.Equal(got, want) {
		t.Errorf("root holds %q, want %q", got, want)
	}
	if got := readTree(t, filepath.Join(root, "crm")); !equalTrees(got, treeOf(newFiles)) {
		t.Errorf("after Import: %+v", got)
	}
}

func TestInterruptedImportSeenByExportAndImport(t *testing.T) {
	s, root := setup(t)
	// The crash happens while this process runs (or another process
	// imports): the export must not pass an app without files.
	writeTree(t, filepath.Join(root, ".old-crm.GAP"), oldFiles)
	_, err := export(t, s, "crm")
	if err == nil || !strings.Contains(err.Error(), ".old-crm.GAP") {
		t.Fatalf("Export during an interrupted import = %v; want an error naming the old folder", err)
	}
	// The next import moves it back first; a failing one leaves it so.
	if err := s.Import(context.Background(), "crm", items(file("../x", ""))); err == nil {
		t.Fatal("bad Import: no error")
	}
	if got := readTree(t, filepath.Join(root, "crm")); !equalTrees(got, treeOf(oldFiles)) {
		t.Errorf("after a failed Import: %+v, want the old folder back", got)
	}

	// Two old folders and no app folder: ambiguous, refused.
	if err := os.Rename(filepath.Join(root, "crm"), filepath.Join(root, ".old-crm.A")); err != nil {
		t.Fatal(err)
	}
	writeTree(t, filepath.Join(root, ".old-crm.B"), newFiles)
	if _, err := export(t, s, "crm"); err == nil || !strings.Contains(err.Error(), "by hand") {
		t.Errorf("Export with two old folders = %v; want an error", err)
	}
	if err := s.Import(context.Background(), "crm", itemsOf(newFiles)); err == nil || !strings.Contains(err.Error(), "by hand") {
		t.Errorf("Import with two old folders = %v; want an error", err)
	}
	if got, want := rootEntries(t, root), []string{".old-crm.A", ".old-crm.B"}; !slices.Equal(got, want) {
		t.Errorf("root holds %q, want %q", got, want)
	}
}

func TestConcurrentExportsSeeOneWholeTree(t *testing.T) {
	s, root := setup(t)
	writeTree(t, filepath.Join(root, "crm"), oldFiles)
	a, err := export(t, s, "crm")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Import(context.Background(), "crm", itemsOf(newFiles)); err != nil {
		t.Fatal(err)
	}
	b, err := export(t, s, "crm")
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 10 {
			files := oldFiles
			if i%2 == 1 {
				files = newFiles
			}
			if err := s.Import(context.Background(), "crm", itemsOf(files)); err != nil {
				t.Errorf("Import: %v", err)
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 10 {
				got, err := export(t, s, "crm")
				if err != nil {
					t.Errorf("Export: %v", err)
					continue
				}
				if !slices.Equal(got, a) && !slices.Equal(got, b) {
					t.Errorf("Export saw a mix: %v", got)
				}
			}
		})
	}
	// Another app is not held up by them.
	wg.Go(func() {
		if err := s.Import(context.Background(), "other", itemsOf(newFiles)); err != nil {
			t.Errorf("Import other: %v", err)
		}
	})
	wg.Wait()
}

func TestImportRefusesSymlinkedAppFolder(t *testing.T) {
	s, root := setup(t)
	elsewhere := filepath.Join(t.TempDir(), "real")
	writeTree(t, elsewhere, oldFiles)
	if err := os.Symlink(elsewhere, filepath.Join(root, "crm")); err != nil {
		t.Skipf("symlinks not available: %v", err)
	}
	err := s.Import(context.Background(), "crm", itemsOf(newFiles))
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Import into a symlinked app folder = %v; want an error", err)
	}
	if got := readTree(t, elsewhere); !equalTrees(got, treeOf(oldFiles)) {
		t.Errorf("the link's target changed: %+v", got)
	}
	if got, want := rootEntries(t, root), []string{"crm"}; !slices.Equal(got, want) {
		t.Errorf("root holds %q, want %q", got, want)
	}
}
