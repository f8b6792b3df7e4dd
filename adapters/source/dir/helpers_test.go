package dir_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"

	"github.com/backupledger/backupledger/adapters/source/dir"
	"github.com/backupledger/backupledger/domain"
)

// setup returns a Source on a new root.
func setup(t *testing.T) (*dir.Source, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "files")
	s, err := dir.New(dir.Config{Root: root})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, root
}

// writeTree writes files (slash path → content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		name := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tree is what a folder holds: files (slash path → content) and folders.
type tree struct {
	files map[string]string
	dirs  []string
}

// readTree reads everything under dir; nil if dir does not exist.
func readTree(t *testing.T, dir string) *tree {
	t.Helper()
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	tr := &tree{files: map[string]string{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
		case d.IsDir():
			tr.dirs = append(tr.dirs, rel)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tr.files[rel] = string(b)
		default:
			t.Errorf("%s: unexpected %v", p, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tr.dirs)
	return tr
}

func equalTrees(a, b *tree) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.files) != len(b.files) || !slices.Equal(a.dirs, b.dirs) {
		return false
	}
	for p, c := range a.files {
		if d, ok := b.files[p]; !ok || c != d {
			return false
		}
	}
	return true
}

// rootEntries returns the names in root, sorted.
func rootEntries(t *testing.T, root string) []string {
	t.Helper()
	es, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// got is one exported item with its content read.
type got struct {
	Component, Path string
	Size            int64
	Content         string
}

// export exports app and reads every item.
func export(t *testing.T, s *dir.Source, app string) ([]got, error) {
	t.Helper()
	var items []got
	err := s.Export(context.Background(), app, func(it domain.Item) error {
		b, err := io.ReadAll(it.Body)
		if err != nil {
			return err
		}
		items = append(items, got{it.Component, it.Path, it.Size, string(b)})
		return nil
	})
	return items, err
}

// itemsOf returns an items function that emits files in the order of paths.
func itemsOf(files map[string]string, paths ...string) func(func(domain.Item) error) error {
	if paths == nil {
		for p := range files {
			paths = append(paths, p)
		}
		slices.Sort(paths)
	}
	return func(emit func(domain.Item) error) error {
		for _, p := range paths {
			c := files[p]
			if err := emit(domain.Item{Component: domain.ComponentFiles, Path: p, Size: int64(len(c)), Body: bytes.NewReader([]byte(c))}); err != nil {
				return err
			}
		}
		return nil
	}
}

// treeOf is the tree that files make.
func treeOf(files map[string]string) *tree {
	tr := &tree{files: files}
	seen := map[string]bool{}
	for p := range files {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if !seen[d] {
				seen[d] = true
				tr.dirs = append(tr.dirs, d)
			}
		}
	}
	slices.Sort(tr.dirs)
	return tr
}
