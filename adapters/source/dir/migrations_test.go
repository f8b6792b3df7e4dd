package dir_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/adapters/source/dir"
	"github.com/backupledger/backupledger/domain"
)

func TestMigrationToNFC(t *testing.T) {
	m := dir.Migrations()
	if len(m) != 1 || m[0].Source != dir.Kind || m[0].From != 1 || dir.SchemaVersion != 2 {
		t.Fatalf("migrations %+v, schema %d", m, dir.SchemaVersion)
	}
	for _, tc := range []struct{ in, want string }{
		{"docs/cafe\u0301.txt", "docs/caf\u00e9.txt"}, // decomposed → composed
		{"docs/caf\u00e9.txt", "docs/caf\u00e9.txt"},  // composed stays
		{"plain/ascii.bin", "plain/ascii.bin"},
		{"A\u030angstro\u0308m/x", "\u00c5ngstr\u00f6m/x"},
	} {
		out, err := m[0].Apply(domain.Item{Component: "files", Path: tc.in, Size: 1, Body: strings.NewReader("x")})
		if err != nil || len(out) != 1 || out[0].Path != tc.want || out[0].Component != "files" || out[0].Size != 1 {
			t.Errorf("Apply(%q) = %+v, %v; want path %q", tc.in, out, err, tc.want)
		}
	}
	plan, err := m.Plan(dir.Kind, 1, dir.SchemaVersion)
	if err != nil || len(plan) != 1 {
		t.Errorf("Plan(1→%d) = %v, %v", dir.SchemaVersion, plan, err)
	}
}

// Version 2 exports names composed; two names that compose alike are
// refused rather than archived as one.
func TestExportComposesNames(t *testing.T) {
	root := t.TempDir()
	s, err := dir.New(dir.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(root, "wiki")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "cafe\u0301.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var paths []string
	if err := s.Export(t.Context(), "wiki", func(it domain.Item) error {
		paths = append(paths, it.Path)
		_, err := io.Copy(io.Discard, it.Body)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || paths[0] != "caf\u00e9.txt" {
		t.Errorf("exported %q, want the composed name", paths)
	}
	if err := os.WriteFile(filepath.Join(app, "caf\u00e9.txt"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = s.Export(t.Context(), "wiki", func(it domain.Item) error { _, err := io.Copy(io.Discard, it.Body); return err })
	if domain.Code(err) != domain.CodeInvalidArgument || !strings.Contains(err.Error(), "NFC") {
		t.Errorf("two names that compose alike: %v", err)
	}
}
