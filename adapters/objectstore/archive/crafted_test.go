package archive_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
	"github.com/backupledger/backupledger/adapters/objectstore/archive/archivetest"
)

var update = flag.Bool("update", false, "rewrite testdata/archives from the crafted archives")

// TestCraftedArchivesFiles keeps testdata/archives (the fuzz seeds) in step
// with archivetest.CraftedArchives: go test -run TestCraftedArchivesFiles
// -args -update rewrites them. Each file must still get its verdict.
func TestCraftedArchivesFiles(t *testing.T) {
	dir := filepath.Join("testdata", "archives")
	for _, c := range archivetest.CraftedArchives() {
		path := filepath.Join(dir, c.Name+".zip")
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.Build(t), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestCraftedArchivesFiles -args -update)", err)
		}
		_, err = archive.Validate(t.Context(), bytes.NewReader(raw), int64(len(raw)), archive.Limits{})
		archivetest.CheckVerdict(t, c, err)
	}
}
