package objectstore_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"testing"

	"github.com/backupledger/backupledger/adapters/objectstore"
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
	m := manifestOf()
	for i := range 70000 {
		name := fmt.Sprintf("config/k%05d", i)
		body := []byte{byte(i)}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: craftTime})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(body)
		m.Entries = append(m.Entries, objectstore.ManifestEntry{Path: name, Size: 1, SHA256: sha(body)})
	}
	m.ItemCount = len(m.Entries)
	me := manifestEntry(t, m)
	w, _ := zw.Create(me.name)
	_, _ = w.Write(me.body)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	got, err := objectstore.ValidateArchive(t.Context(), bytes.NewReader(raw), int64(len(raw)), objectstore.Limits{})
	if err != nil || got.ItemCount != 70000 {
		t.Fatalf("ValidateArchive: %d items, %v", got.ItemCount, err)
	}
	_, err = objectstore.ValidateArchive(t.Context(), bytes.NewReader(raw), int64(len(raw)), objectstore.Limits{MaxEntries: 70000})
	if domain.Code(err) != domain.CodeArchiveInvalid {
		t.Fatalf("70001 entries with a limit of 70000: %v", err)
	}
}
