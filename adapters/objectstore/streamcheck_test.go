package objectstore_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/domain"
)

// streamedAgrees runs the streamed pass over raw in reads of several sizes
// and checks that, when it decides, ValidateArchive accepts raw with the
// same manifest. It reports whether the pass decided.
func streamedAgrees(t testing.TB, raw []byte, lim objectstore.Limits) bool {
	t.Helper()
	decided := 0
	steps := []int{1 << 20, 4096, 7}
	if len(raw) > 1<<20 {
		steps = steps[:2]
	}
	for _, step := range steps {
		m, err := objectstore.StreamVerdict(context.Background(), raw, step, lim)
		if err != nil {
			if !errors.Is(err, objectstore.ErrUndecided) {
				t.Fatalf("streamed pass (reads of %d) answered %v, not undecided", step, err)
			}
			continue
		}
		decided++
		want, err := objectstore.ValidateArchive(context.Background(), bytes.NewReader(raw), int64(len(raw)), lim)
		if err != nil {
			t.Fatalf("streamed pass accepted what ValidateArchive refuses: %v", err)
		}
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("streamed pass read the manifest\n%+v\nValidateArchive\n%+v", m, want)
		}
	}
	if decided != 0 && decided != len(steps) {
		t.Fatalf("streamed pass decided for %d of %d read sizes", decided, len(steps))
	}
	return decided > 0
}

// The archives people upload are decided as they stream in: ours, those of
// archive/zip (data descriptors after deflated and stored entries) and
// those of the zip tool. Every crafted invalid archive is left to
// ValidateArchive, so it is refused with ValidateArchive's words.
func TestStreamedPassDecides(t *testing.T) {
	a, _ := setup(t)
	h := header("01JSTREAMED")
	h.Components = []string{"config", "files"}
	// A stored item that holds the data descriptor's signature, and one of
	// more than a block.
	tricky := append([]byte("PK\x07\x08not the end PK\x07\x08\x00\x00\x00\x00"), randomBytes(3, 5000)...)
	info, err := a.WriteArchive(t.Context(), h, emitItems(
		domain.Item{Component: "config", Path: "settings/theme", Size: 13, Body: strings.NewReader(`{"dark":true}`)},
		domain.Item{Component: "files", Path: "tricky.bin", Size: int64(len(tricky)), Body: bytes.NewReader(tricky)},
		domain.Item{Component: "files", Path: "big.bin", Size: 3<<20 + 1, Body: bytes.NewReader(randomBytes(13, 3<<20+1))},
	))
	if err != nil {
		t.Fatal(err)
	}
	ours, _ := readAll(t, a, h.BackupID)
	if info.ItemCount != 3 {
		t.Fatalf("archive info %+v", info)
	}
	storedWithSig := zent{name: "files/sig.bin", body: tricky, method: zip.Store}
	cases := map[string][]byte{
		"ours":                        ours,
		"archive/zip":                 makeZip(t, withManifest(t, nil, validEntries()...)...),
		"archive/zip, signature data": makeZip(t, withManifest(t, nil, append(validEntries(), storedWithSig)...)...),
		"archive/zip, manifest first": makeZip(t, append([]zent{manifestEntry(t, manifestOf(validEntries()...))}, validEntries()...)...),
	}
	if zipTool, err := exec.LookPath("zip"); err == nil {
		dir := t.TempDir()
		for _, e := range withManifest(t, nil, validEntries()...) {
			p := filepath.Join(dir, filepath.FromSlash(e.name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, e.body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out := filepath.Join(t.TempDir(), "tool.zip")
		cmd := exec.Command(zipTool, "-r", "-q", out, ".")
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zip: %v\n%s", err, b)
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		cases["zip tool"] = raw
		// Piped, the zip tool writes data descriptors.
		cmd = exec.Command(zipTool, "-r", "-q", "-", ".")
		cmd.Dir = dir
		if cases["zip tool, piped"], err = cmd.Output(); err != nil {
			t.Fatalf("zip -: %v", err)
		}
	}
	for name, raw := range cases {
		if !streamedAgrees(t, raw, objectstore.Limits{}) {
			t.Errorf("%s: the streamed pass did not decide", name)
		}
	}
	for _, c := range craftedArchives() {
		raw := c.build(t)
		if decided := streamedAgrees(t, raw, objectstore.Limits{}); decided != (c.code == "") {
			t.Errorf("%s: streamed pass decided = %v for an archive whose verdict is %q", c.name, decided, c.code)
		}
	}
}

// What the streamed pass cannot follow it leaves undecided: bytes before
// the first entry (ValidateArchive accepts them, as archive/zip does), an
// archive cut short or without entries.
func TestStreamedPassUndecided(t *testing.T) {
	valid := makeZip(t, withManifest(t, nil, validEntries()...)...)
	prefixed := append([]byte("#!/bin/sh\nexit 0\n"), valid...)
	for name, raw := range map[string][]byte{
		"prefixed":            prefixed,
		"truncated":           valid[:len(valid)-30],
		"empty":               nil,
		"a central dir alone": valid[bytes.LastIndex(valid, []byte("PK\x01\x02")):],
	} {
		if streamedAgrees(t, raw, objectstore.Limits{}) {
			t.Errorf("%s: the streamed pass decided", name)
		}
	}
	if _, err := objectstore.ValidateArchive(t.Context(), bytes.NewReader(prefixed), int64(len(prefixed)), objectstore.Limits{}); err != nil {
		t.Errorf("ValidateArchive refuses the prefixed archive: %v", err)
	}
}
