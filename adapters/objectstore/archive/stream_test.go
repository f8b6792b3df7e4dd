package archive_test

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
	"github.com/backupledger/backupledger/adapters/objectstore/archive/archivetest"
	"github.com/backupledger/backupledger/domain"
)

// The archives people upload are decided as they stream in: ours (as
// Write makes them), those of archive/zip (data descriptors after
// deflated and stored entries) and those of the zip tool. Every crafted
// invalid archive is left to Validate, so it is refused with Validate's
// words.
func TestStreamedPassDecides(t *testing.T) {
	h := domain.ArchiveHeader{
		App: "crm", BackupID: "01JSTREAMED", Name: "August 29 Monday 12:02", Description: "before the upgrade",
		CreatedAt: time.Date(2026, 11, 21, 10, 15, 0, 0, time.FixedZone("CET", 3600)), CreatedBy: "alice",
		Origin: domain.OriginManual, SchemaVersion: 3, SourceKind: "kv", Components: []string{"config", "files"},
	}
	// A stored item that holds the data descriptor's signature, and one of
	// more than a block.
	tricky := append([]byte("PK\x07\x08not the end PK\x07\x08\x00\x00\x00\x00"), archivetest.RandomBytes(3, 5000)...)
	items := []domain.Item{
		{Component: "config", Path: "settings/theme", Size: 13, Body: strings.NewReader(`{"dark":true}`)},
		{Component: "files", Path: "tricky.bin", Size: int64(len(tricky)), Body: bytes.NewReader(tricky)},
		{Component: "files", Path: "big.bin", Size: 3<<20 + 1, Body: bytes.NewReader(archivetest.RandomBytes(13, 3<<20+1))},
	}
	var ours bytes.Buffer
	m, err := archive.Write(&ours, h, func(emit func(domain.Item) error) error {
		for _, it := range items {
			if err := emit(it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.ItemCount != 3 {
		t.Fatalf("manifest %+v", m)
	}
	valid := archivetest.ValidEntries
	storedWithSig := archivetest.Entry{Name: "files/sig.bin", Body: tricky, Method: zip.Store}
	cases := map[string][]byte{
		"ours":                        ours.Bytes(),
		"archive/zip":                 archivetest.MakeZip(t, archivetest.WithManifest(t, nil, valid()...)...),
		"archive/zip, signature data": archivetest.MakeZip(t, archivetest.WithManifest(t, nil, append(valid(), storedWithSig)...)...),
		"archive/zip, manifest first": archivetest.MakeZip(t, append([]archivetest.Entry{archivetest.ManifestFile(t, archivetest.ManifestOf(valid()...))}, valid()...)...),
	}
	if zipTool, err := exec.LookPath("zip"); err == nil {
		cases["zip tool"], cases["zip tool, piped"] = zipToolArchives(t, zipTool)
	}
	for name, raw := range cases {
		if !archivetest.StreamedAgrees(t, raw, archive.Limits{}) {
			t.Errorf("%s: the streamed pass did not decide", name)
		}
	}
	for _, c := range archivetest.CraftedArchives() {
		raw := c.Build(t)
		if decided := archivetest.StreamedAgrees(t, raw, archive.Limits{}); decided != (c.Code == "") {
			t.Errorf("%s: streamed pass decided = %v for an archive whose verdict is %q", c.Name, decided, c.Code)
		}
	}
}

// zipToolArchives returns the valid entries zipped by the zip tool into a
// file, and piped (which writes data descriptors).
func zipToolArchives(t *testing.T, zipTool string) (file, piped []byte) {
	t.Helper()
	dir := t.TempDir()
	for _, e := range archivetest.WithManifest(t, nil, archivetest.ValidEntries()...) {
		p := filepath.Join(dir, filepath.FromSlash(e.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, e.Body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "tool.zip")
	cmd := exec.Command(zipTool, "-r", "-q", out, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zip: %v\n%s", err, b)
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(zipTool, "-r", "-q", "-", ".")
	cmd.Dir = dir
	if piped, err = cmd.Output(); err != nil {
		t.Fatalf("zip -: %v", err)
	}
	return file, piped
}

// What the streamed pass cannot follow it leaves undecided: bytes before
// the first entry (Validate accepts them, as archive/zip does), an
// archive cut short or without entries.
func TestStreamedPassUndecided(t *testing.T) {
	valid := archivetest.MakeZip(t, archivetest.WithManifest(t, nil, archivetest.ValidEntries()...)...)
	prefixed := append([]byte("#!/bin/sh\nexit 0\n"), valid...)
	for name, raw := range map[string][]byte{
		"prefixed":            prefixed,
		"truncated":           valid[:len(valid)-30],
		"empty":               nil,
		"a central dir alone": valid[bytes.LastIndex(valid, []byte("PK\x01\x02")):],
	} {
		if archivetest.StreamedAgrees(t, raw, archive.Limits{}) {
			t.Errorf("%s: the streamed pass decided", name)
		}
	}
	if _, err := archive.Validate(t.Context(), bytes.NewReader(prefixed), int64(len(prefixed)), archive.Limits{}); err != nil {
		t.Errorf("Validate refuses the prefixed archive: %v", err)
	}
}
