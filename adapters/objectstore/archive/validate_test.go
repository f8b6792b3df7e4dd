package archive_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"testing"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
	"github.com/backupledger/backupledger/adapters/objectstore/archive/archivetest"
	"github.com/backupledger/backupledger/domain"
)

// More than 65535 entries need zip64's end of central directory: the
// directory check reads it as archive/zip does.
func TestValidateArchiveZip64Directory(t *testing.T) {
	if testing.Short() {
		t.Skip("70000 entries")
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	m := archivetest.ManifestOf()
	for i := range 70000 {
		name := fmt.Sprintf("config/k%05d", i)
		body := []byte{byte(i)}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: archivetest.Time})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(body)
		m.Entries = append(m.Entries, archive.ManifestEntry{Path: name, Size: 1, SHA256: archivetest.SHA256(body)})
	}
	m.ItemCount = len(m.Entries)
	me := archivetest.ManifestFile(t, m)
	w, _ := zw.Create(me.Name)
	_, _ = w.Write(me.Body)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	got, err := archive.Validate(t.Context(), bytes.NewReader(raw), int64(len(raw)), archive.Limits{})
	if err != nil || got.ItemCount != 70000 {
		t.Fatalf("Validate: %d items, %v", got.ItemCount, err)
	}
	_, err = archive.Validate(t.Context(), bytes.NewReader(raw), int64(len(raw)), archive.Limits{MaxEntries: 70000})
	if domain.Code(err) != domain.CodeArchiveInvalid {
		t.Fatalf("70001 entries with a limit of 70000: %v", err)
	}
}
