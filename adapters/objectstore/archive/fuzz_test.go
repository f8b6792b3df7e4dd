package archive_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
	"github.com/backupledger/backupledger/adapters/objectstore/archive/archivetest"
	"github.com/backupledger/backupledger/domain"
)

// FuzzValidateArchive feeds Validate arbitrary bytes, starting from
// the crafted archives of testdata/archives. It must never panic, refuse
// only with the archive codes, and accept only archives whose every entry
// is listed with its size and SHA-256 and has a safe path. The streamed
// pass of uploads, fed the same bytes, must accept only what Validate
// accepts, with the same manifest.
func FuzzValidateArchive(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "archives", "*.zip"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/archives (%v)", err)
	}
	for _, p := range seeds {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	lim := archive.Limits{MaxEntries: 1000, MaxUncompressedBytes: 64 << 20, MaxManifestBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, raw []byte) {
		archivetest.StreamedAgrees(t, raw, lim)
		m, err := archive.Validate(context.Background(), bytes.NewReader(raw), int64(len(raw)), lim)
		if err != nil {
			switch domain.Code(err) {
			case domain.CodeArchiveInvalid, domain.CodeArchiveVersion, domain.CodeArchiveTooLarge:
			default:
				t.Fatalf("refused with %v, not an archive code", err)
			}
			return
		}
		zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatalf("accepted, but archive/zip cannot read it: %v", err)
		}
		listed := map[string]archive.ManifestEntry{}
		for _, e := range m.Entries {
			listed[e.Path] = e
		}
		files := 0
		for _, f := range zr.File {
			if f.Name == archive.ManifestPath || strings.HasSuffix(f.Name, "/") && f.UncompressedSize64 == 0 {
				continue
			}
			files++
			if !zipPathSafe(f.Name) {
				t.Fatalf("accepted the unsafe path %q", f.Name)
			}
			e, ok := listed[f.Name]
			if !ok {
				t.Fatalf("accepted the unlisted entry %q", f.Name)
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatalf("accepted %q, which does not open: %v", f.Name, err)
			}
			h := sha256.New()
			n, err := io.Copy(h, rc)
			rc.Close()
			if err != nil || n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
				t.Fatalf("accepted %q: read %d bytes (%v), manifest says %+v", f.Name, n, err, e)
			}
		}
		if files != len(m.Entries) || m.ItemCount != files {
			t.Fatalf("accepted %d files for %d manifest entries (item_count %d)", files, len(m.Entries), m.ItemCount)
		}
	})
}

func zipPathSafe(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, `\`) {
		return false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
