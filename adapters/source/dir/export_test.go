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
	"strconv"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/adapters/source/dir"
	"github.com/backupledger/backupledger/domain"
)

func TestSourceDescribesItself(t *testing.T) {
	s, _ := setup(t)
	if got, want := s.Kind(), "dir"; got != want {
		t.Errorf("Kind = %q, want %q", got, want)
	}
	if got, want := s.SchemaVersion(), 2; got != want {
		t.Errorf("SchemaVersion = %d, want %d", got, want)
	}
	if got, want := s.Components(), []string{domain.ComponentFiles}; !slices.Equal(got, want) {
		t.Errorf("Components = %q, want %q", got, want)
	}
}

func TestConfig(t *testing.T) {
	if err := (dir.Config{}).Validate(); err == nil {
		t.Error("Validate of an empty root: no error")
	}
	if _, err := dir.New(dir.Config{}); err == nil {
		t.Error("New with an empty root: no error")
	}

	root := filepath.Join(t.TempDir(), "a", "b", "files")
	if _, err := dir.New(dir.Config{Root: root}); err != nil {
		t.Fatalf("New: %v", err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatalf("root not created: %v", err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&^0o750 != 0 {
		t.Errorf("root mode = %v, want a directory with at most 0750", fi.Mode())
	}
	if _, err := dir.New(dir.Config{Root: root}); err != nil {
		t.Errorf("New on an existing root: %v", err)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := dir.New(dir.Config{Root: file}); err == nil {
		t.Error("New on a file: no error")
	}
}

func TestExportOrderContentAndSizes(t *testing.T) {
	s, root := setup(t)
	files := map[string]string{
		"a.txt":             "first",
		"a/b":               "nested",
		"a/c/d.json":        `{"deep":true}`,
		"empty":             "",
		".hidden":           "dot file",
		"Z-upper":           "capital",
		"thème/été.txt":     "non-ASCII",
		"with space/x y.md": "spaces",
	}
	writeTree(t, filepath.Join(root, "crm"), files)
	// An empty folder is not exported.
	if err := os.MkdirAll(filepath.Join(root, "crm", "empty-dir", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A 20 MiB file, exported as a stream.
	big := bytes.Repeat([]byte("0123456789abcdef"), 20<<20/16)
	if err := os.WriteFile(filepath.Join(root, "crm", "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	wantBig := sha256.Sum256(big)
	big = nil
	runtime.GC()

	var (
		paths []string
		open  []*os.File
		ms    runtime.MemStats
	)
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	err := s.Export(context.Background(), "crm", func(it domain.Item) error {
		paths = append(paths, it.Path)
		if it.Component != domain.ComponentFiles {
			t.Errorf("%s: component %q, want %q", it.Path, it.Component, domain.ComponentFiles)
		}
		f, ok := it.Body.(*os.File)
		if !ok {
			t.Fatalf("%s: body is %T, want the open *os.File", it.Path, it.Body)
		}
		open = append(open, f)
		if it.Path == "big.bin" {
			h := sha256.New()
			n, err := io.Copy(h, it.Body)
			if err != nil {
				return err
			}
			if n != it.Size || it.Size != 20<<20 {
				t.Errorf("big.bin: size %d, read %d, want %d", it.Size, n, 20<<20)
			}
			if !bytes.Equal(h.Sum(nil), wantBig[:]) {
				t.Error("big.bin: content differs")
			}
			return nil
		}
		b, err := io.ReadAll(it.Body)
		if err != nil {
			return err
		}
		if got, want := string(b), files[it.Path]; got != want {
			t.Errorf("%s: content %q, want %q", it.Path, got, want)
		}
		if got, want := it.Size, int64(len(files[it.Path])); got != want {
			t.Errorf("%s: size %d, want %d", it.Path, got, want)
		}
		return nil
	})
	runtime.ReadMemStats(&ms)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if alloc := ms.TotalAlloc - before; alloc > 4<<20 {
		t.Errorf("Export allocated %d bytes for a 20 MiB file; want it streamed", alloc)
	}
	want := []string{".hidden", "Z-upper", "a.txt", "a/b", "a/c/d.json", "big.bin", "empty", "thème/été.txt", "with space/x y.md"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths:\n got %q\nwant %q", paths, want)
	}
	for _, f := range open {
		if _, err := f.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s still open after emit returned (read: %v)", f.Name(), err)
		}
	}

	// The same again: the order is stable.
	items, err := export(t, s, "crm")
	if err != nil {
		t.Fatalf("second Export: %v", err)
	}
	var again []string
	for _, it := range items {
		again = append(again, it.Path)
	}
	if !slices.Equal(again, want) {
		t.Errorf("second export's paths %q, want %q", again, want)
	}
}

func TestExportMissingFolder(t *testing.T) {
	s, root := setup(t)
	items, err := export(t, s, "nothing")
	if err != nil || len(items) != 0 {
		t.Errorf("Export of a missing folder = %v, %v; want no items and no error", items, err)
	}
	if err := os.Mkdir(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	items, err = export(t, s, "empty")
	if err != nil || len(items) != 0 {
		t.Errorf("Export of an empty folder = %v, %v; want no items and no error", items, err)
	}
}

func TestExportAppsDoNotMix(t *testing.T) {
	s, root := setup(t)
	writeTree(t, filepath.Join(root, "a"), map[string]string{"x": "of a"})
	writeTree(t, filepath.Join(root, "ab"), map[string]string{"x": "of ab", "y": "of ab"})
	writeTree(t, filepath.Join(root, "a-b"), map[string]string{"z": "of a-b"})
	for app, want := range map[string][]got{
		"a":   {{"files", "x", 4, "of a"}},
		"ab":  {{"files", "x", 5, "of ab"}, {"files", "y", 5, "of ab"}},
		"a-b": {{"files", "z", 6, "of a-b"}},
	} {
		items, err := export(t, s, app)
		if err != nil {
			t.Fatalf("Export %s: %v", app, err)
		}
		if !slices.Equal(items, want) {
			t.Errorf("Export %s = %v, want %v", app, items, want)
		}
	}
}

func TestExportBadAppID(t *testing.T) {
	s, _ := setup(t)
	for _, app := range []string{"", "..", "../x", "a/b", "A", "-a", ".tmp-a.x"} {
		err := s.Export(context.Background(), app, func(domain.Item) error { return nil })
		if got := domain.Code(err); got != domain.CodeInvalidArgument {
			t.Errorf("Export(%q) = %v, want code %s", app, err, domain.CodeInvalidArgument)
		}
	}
}

func TestExportRefusesSymlinks(t *testing.T) {
	s, root := setup(t)
	app := filepath.Join(root, "crm")
	writeTree(t, app, map[string]string{"a": "real", "sub/target": "t"})
	if err := os.Symlink("target", filepath.Join(app, "sub", "link")); err != nil {
		t.Skipf("symlinks not available: %v", err)
	}
	var emitted int
	err := s.Export(context.Background(), "crm", func(domain.Item) error { emitted++; return nil })
	if err == nil {
		t.Fatal("Export with a symlink: no error")
	}
	if domain.Code(err) != domain.CodeInvalidArgument || !strings.Contains(err.Error(), filepath.Join("sub", "link")) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("error = %v; want invalid_argument naming sub/link as a symbolic link", err)
	}
	if emitted != 0 {
		t.Errorf("%d items emitted before the refusal; want none", emitted)
	}

	// A symlink to a folder is refused as well, and so is an app folder
	// that is a symlink.
	if err := os.Remove(filepath.Join(app, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(app, "sub"), filepath.Join(app, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := s.Export(context.Background(), "crm", func(domain.Item) error { return nil }); err == nil || !strings.Contains(err.Error(), "dirlink") {
		t.Errorf("Export with a folder symlink = %v; want an error naming dirlink", err)
	}
	if err := os.Symlink(app, filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	if err := s.Export(context.Background(), "alias", func(domain.Item) error { return nil }); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Export of a symlinked app folder = %v; want an error", err)
	}
}

func TestExportRefusesNamesAnArchiveCannotHold(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs a file system that accepts any byte in names")
	}
	for _, name := range []string{`back\slash`, "bad\xffutf8", "ctrl\x01char", "dir\\x/file", strings.Repeat("x", 200) + "/" + strings.Repeat("y", 200) + "/" + strings.Repeat("z", 200) + "/" + strings.Repeat("w", 200) + "/" + strings.Repeat("v", 220)} {
		s, root := setup(t)
		writeTree(t, filepath.Join(root, "crm"), map[string]string{"ok": "fine", name: "bad"})
		err := s.Export(context.Background(), "crm", func(domain.Item) error { return nil })
		if domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("name %q: Export = %v; want invalid_argument", name, err)
			continue
		}
		// The error quotes the path, escapes and all.
		last := strconv.Quote(name[strings.LastIndex(name, "/")+1:])
		if !strings.Contains(err.Error(), last[1:len(last)-1]) {
			t.Errorf("name %q: error %v does not name the file", name, err)
		}
	}
}

func TestExportEmitErrorAndCancel(t *testing.T) {
	s, root := setup(t)
	writeTree(t, filepath.Join(root, "crm"), map[string]string{"a": "1", "b": "2", "c": "3"})

	boom := errors.New("boom")
	var n int
	err := s.Export(context.Background(), "crm", func(domain.Item) error { n++; return boom })
	if !errors.Is(err, boom) || n != 1 {
		t.Errorf("Export with a failing emit = %v after %d items; want boom after 1", err, n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n = 0
	err = s.Export(ctx, "crm", func(domain.Item) error { n++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("Export cancelled in emit = %v after %d items; want context.Canceled after 1", err, n)
	}
	n = 0
	err = s.Export(ctx, "crm", func(domain.Item) error { n++; return nil })
	if !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("Export with a cancelled context = %v after %d items; want context.Canceled and none", err, n)
	}
}

func TestExportReadsOneFolderDuringAForeignSwap(t *testing.T) {
	// Another process sharing the root swaps the app folder while this one
	// exports it: the export reads on in the folder it opened, and fails
	// once that is removed; it never mixes in the new files.
	s, root := setup(t)
	app := filepath.Join(root, "crm")
	writeTree(t, app, map[string]string{"a": "old a", "b": "old b", "c": "old c"})
	moved := filepath.Join(root, ".old-crm.OTHER")
	items, n := []string{}, 0
	err := s.Export(context.Background(), "crm", func(it domain.Item) error {
		b, err := io.ReadAll(it.Body)
		if err != nil {
			return err
		}
		items = append(items, it.Path+"="+string(b))
		switch n++; n {
		case 1:
			if err := os.Rename(app, moved); err != nil {
				t.Fatal(err)
			}
			writeTree(t, app, map[string]string{"a": "new a", "b": "new b", "c": "new c"})
		case 2:
			if err := os.RemoveAll(moved); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if want := []string{"a=old a", "b=old b"}; !slices.Equal(items, want) {
		t.Errorf("exported %q, want %q", items, want)
	}
	if err == nil || !strings.Contains(err.Error(), "disappeared") {
		t.Errorf("Export = %v, want an error saying c disappeared", err)
	}
}
