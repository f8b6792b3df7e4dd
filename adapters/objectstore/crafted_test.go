package objectstore_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/domain"
)

var update = flag.Bool("update", false, "rewrite testdata/archives from the crafted archives")

// zent is one entry of a crafted zip.
type zent struct {
	name string
	body []byte
	// method defaults to deflate.
	method uint16
	mode   fs.FileMode
	// raw entries are written with CreateRaw: body is already compressed,
	// and hdr sets CRC and sizes.
	raw bool
	hdr func(*zip.FileHeader)
}

var craftTime = time.Date(2026, 11, 21, 10, 15, 0, 0, time.UTC)

// makeZip builds a zip of the entries, in order, with archive/zip.
func makeZip(t testing.TB, ents ...zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: craftTime}
		if e.method != 0 || e.raw {
			fh.Method = e.method
		}
		if e.mode != 0 {
			fh.SetMode(e.mode)
		}
		if e.hdr != nil {
			e.hdr(fh)
		}
		var (
			w   interface{ Write([]byte) (int, error) }
			err error
		)
		if e.raw {
			w, err = zw.CreateRaw(fh)
		} else {
			w, err = zw.CreateHeader(fh)
		}
		if err != nil {
			t.Fatalf("zip %s: %v", e.name, err)
		}
		if _, err := w.Write(e.body); err != nil {
			t.Fatalf("zip %s: %v", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// manifestOf returns a valid manifest listing the entries with content
// (not directories, not manifest.json).
func manifestOf(ents ...zent) objectstore.Manifest {
	m := objectstore.Manifest{
		FormatVersion: 1, App: "crm", BackupID: "01JD5Q3ZK6N8W2X4Y7T9R1M3P5", Name: "November 21 Saturday 11:15",
		Description: "crafted", CreatedAt: craftTime, CreatedBy: "alice", Origin: "manual", SchemaVersion: 1,
		Source: "dir", Components: []string{"config", "files"}, Entries: []objectstore.ManifestEntry{},
	}
	for _, e := range ents {
		if e.name == objectstore.ManifestPath || strings.HasSuffix(e.name, "/") {
			continue
		}
		m.Entries = append(m.Entries, objectstore.ManifestEntry{Path: e.name, Size: int64(len(e.body)), SHA256: sha(e.body)})
	}
	m.ItemCount = len(m.Entries)
	return m
}

func manifestEntry(t testing.TB, m objectstore.Manifest) zent {
	t.Helper()
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return zent{name: objectstore.ManifestPath, body: raw}
}

// withManifest appends a valid manifest of ents, changed by edit.
func withManifest(t testing.TB, edit func(*objectstore.Manifest), ents ...zent) []zent {
	m := manifestOf(ents...)
	if edit != nil {
		edit(&m)
	}
	return append(ents, manifestEntry(t, m))
}

// crafted is an archive made to test one rule: the code ValidateArchive
// answers and a word of the detail it must give.
type crafted struct {
	name   string
	build  func(t testing.TB) []byte
	code   string // "" means valid
	detail string
}

func validEntries() []zent {
	return []zent{
		{name: "config/settings/theme", body: []byte(`{"dark":true}`)},
		{name: "config/tables/users.json", body: bytes.Repeat([]byte(`{"id":1,"name":"x"},`), 500)},
		{name: "files/logo.bin", body: randomBytes(9, 3000), method: zip.Store},
	}
}

func craftedArchives() []crafted {
	valid := func(t testing.TB) []byte { return makeZip(t, withManifest(t, nil, validEntries()...)...) }
	one := func(e zent, edit func(*objectstore.Manifest)) func(t testing.TB) []byte {
		return func(t testing.TB) []byte {
			return makeZip(t, withManifest(t, edit, append(validEntries(), e)...)...)
		}
	}
	zeros := make([]byte, 16<<20)
	return []crafted{
		{"valid", valid, "", ""},
		{"valid_with_directories", func(t testing.TB) []byte {
			ents := []zent{{name: "config/", mode: fs.ModeDir | 0o755}, {name: "config/settings/", mode: fs.ModeDir | 0o755}}
			return makeZip(t, withManifest(t, nil, append(ents, validEntries()...)...)...)
		}, "", ""},
		{"zip_slip", one(zent{name: "config/../../etc/passwd", body: []byte("root")}, nil), domain.CodeArchiveInvalid, `".."`},
		{"absolute_path", one(zent{name: "/etc/passwd", body: []byte("root")}, nil), domain.CodeArchiveInvalid, "absolute path"},
		{"backslash", one(zent{name: `config\..\evil`, body: []byte("x")}, nil), domain.CodeArchiveInvalid, "backslash"},
		{"dot_segment", one(zent{name: "config/./a", body: []byte("x")}, nil), domain.CodeArchiveInvalid, `"."`},
		{"empty_segment", one(zent{name: "config//a", body: []byte("x")}, nil), domain.CodeArchiveInvalid, "empty"},
		{"not_in_component", one(zent{name: "etc/passwd", body: []byte("x")}, nil), domain.CodeArchiveInvalid, "component"},
		{"top_level_file", one(zent{name: "readme.txt", body: []byte("x")}, nil), domain.CodeArchiveInvalid, "component"},
		{"symlink", one(zent{name: "config/link", body: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777}, nil), domain.CodeArchiveInvalid, "symbolic link"},
		{"fifo", one(zent{name: "config/pipe", mode: fs.ModeNamedPipe | 0o644}, nil), domain.CodeArchiveInvalid, "not a regular file"},
		{"duplicate_path", one(zent{name: "config/settings/theme", body: []byte(`{"dark":true}`)}, func(m *objectstore.Manifest) {
			m.Entries, m.ItemCount = m.Entries[:len(m.Entries)-1], m.ItemCount-1
		}), domain.CodeArchiveInvalid, "twice"},
		{"bomb", one(zent{name: "files/zeros", body: zeros}, nil), domain.CodeArchiveInvalid, "zip bomb"},
		{"bomb_lying_header", func(t testing.TB) []byte {
			var c bytes.Buffer
			zw := zip.NewWriter(&c)
			w, _ := zw.Create("x")
			_, _ = w.Write(zeros)
			_ = zw.Close()
			zr, _ := zip.NewReader(bytes.NewReader(c.Bytes()), int64(c.Len()))
			rc, _ := zr.File[0].OpenRaw()
			var deflated bytes.Buffer
			_, _ = deflated.ReadFrom(rc)
			small := zeros[:100]
			e := zent{name: "files/zeros", body: deflated.Bytes(), raw: true, method: zip.Deflate, hdr: func(fh *zip.FileHeader) {
				fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = crc32.ChecksumIEEE(small), uint64(deflated.Len()), 100
			}}
			return makeZip(t, withManifest(t, func(m *objectstore.Manifest) {
				m.Entries[len(m.Entries)-1] = objectstore.ManifestEntry{Path: "files/zeros", Size: 100, SHA256: sha(small)}
			}, append(validEntries(), e)...)...)
		}, domain.CodeArchiveInvalid, "inflates to more than"},
		{"wrong_digest", func(t testing.TB) []byte {
			return makeZip(t, withManifest(t, func(m *objectstore.Manifest) { m.Entries[0].SHA256 = strings.Repeat("ab", 32) }, validEntries()...)...)
		}, domain.CodeArchiveInvalid, "sha256"},
		{"wrong_size", func(t testing.TB) []byte {
			return makeZip(t, withManifest(t, func(m *objectstore.Manifest) { m.Entries[1].Size++ }, validEntries()...)...)
		}, domain.CodeArchiveInvalid, "lists"},
		{"bad_crc", func(t testing.TB) []byte {
			body := []byte("stored body")
			e := zent{name: "files/crc", body: body, raw: true, method: zip.Store, hdr: func(fh *zip.FileHeader) {
				fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = 12345, uint64(len(body)), uint64(len(body))
			}}
			return makeZip(t, withManifest(t, nil, append(validEntries(), e)...)...)
		}, domain.CodeArchiveInvalid, "CRC-32"},
		{"corrupt_deflate", func(t testing.TB) []byte {
			body := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			e := zent{name: "files/garbage", body: body, raw: true, method: zip.Deflate, hdr: func(fh *zip.FileHeader) {
				fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = 0, uint64(len(body)), 5
			}}
			return makeZip(t, withManifest(t, func(m *objectstore.Manifest) {
				m.Entries[len(m.Entries)-1] = objectstore.ManifestEntry{Path: "files/garbage", Size: 5, SHA256: sha([]byte("12345"))}
			}, append(validEntries(), e)...)...)
		}, domain.CodeArchiveInvalid, "files/garbage"},
		{"unlisted_entry", func(t testing.TB) []byte {
			ents := validEntries()
			m := manifestOf(ents...)
			return makeZip(t, append(append(ents, zent{name: "files/extra", body: []byte("x")}), manifestEntry(t, m))...)
		}, domain.CodeArchiveInvalid, "not listed"},
		{"missing_entry", func(t testing.TB) []byte {
			ents := validEntries()
			m := manifestOf(ents...)
			return makeZip(t, append(ents[1:], manifestEntry(t, m))...)
		}, domain.CodeArchiveInvalid, "no such entry"},
		{"missing_manifest", func(t testing.TB) []byte { return makeZip(t, validEntries()...) }, domain.CodeArchiveInvalid, "no manifest.json"},
		{"manifest_twice", func(t testing.TB) []byte {
			ents := withManifest(t, nil, validEntries()...)
			return makeZip(t, append(ents, ents[len(ents)-1])...)
		}, domain.CodeArchiveInvalid, "twice"},
		{"unknown_format_version", func(t testing.TB) []byte {
			return makeZip(t, withManifest(t, func(m *objectstore.Manifest) { m.FormatVersion = 99 }, validEntries()...)...)
		}, domain.CodeArchiveVersion, "99"},
		{"manifest_not_json", func(t testing.TB) []byte {
			return makeZip(t, append(validEntries(), zent{name: "manifest.json", body: []byte(`{"format_version": 1, "app": `)})...)
		}, domain.CodeArchiveInvalid, "manifest.json"},
		{"manifest_wrong_type", func(t testing.TB) []byte {
			raw, _ := json.Marshal(manifestOf(validEntries()...))
			raw = bytes.Replace(raw, []byte(`"item_count":3`), []byte(`"item_count":"3"`), 1)
			return makeZip(t, append(validEntries(), zent{name: "manifest.json", body: raw})...)
		}, domain.CodeArchiveInvalid, "item_count"},
		{"manifest_bad_app", func(t testing.TB) []byte {
			return makeZip(t, withManifest(t, func(m *objectstore.Manifest) { m.App = "Bad App" }, validEntries()...)...)
		}, domain.CodeArchiveInvalid, "app"},
		{"item_count_mismatch", func(t testing.TB) []byte {
			return makeZip(t, withManifest(t, func(m *objectstore.Manifest) { m.ItemCount = 7 }, validEntries()...)...)
		}, domain.CodeArchiveInvalid, "item_count"},
		{"encrypted", one(zent{name: "files/secret", body: []byte("x"), hdr: func(fh *zip.FileHeader) { fh.Flags |= 0x1 }}, nil), domain.CodeArchiveInvalid, "encrypted"},
		{"unsupported_method", one(zent{name: "files/bz", body: []byte("x"), raw: true, method: 12, hdr: func(fh *zip.FileHeader) {
			fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = crc32.ChecksumIEEE([]byte("x")), 1, 1
		}}, nil), domain.CodeArchiveInvalid, "compression method 12"},
		{"directory_with_content", one(zent{name: "config/dir/", raw: true, method: zip.Store, hdr: func(fh *zip.FileHeader) {
			// archive/zip writes no data for a directory; the sizes claim some.
			fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = crc32.ChecksumIEEE([]byte("hidden")), 6, 6
		}}, nil), domain.CodeArchiveInvalid, "has content"},
		{"overlapping_entries", func(t testing.TB) []byte {
			body := bytes.Repeat([]byte("overlap "), 100)
			ents := append(validEntries(), zent{name: "files/a", body: body}, zent{name: "files/b", body: body})
			raw := makeZip(t, withManifest(t, nil, ents...)...)
			// Point files/b's directory record at files/a's local header.
			return patchHeaderOffset(t, raw, "files/b", "files/a")
		}, domain.CodeArchiveInvalid, "overlap"},
		{"truncated", func(t testing.TB) []byte { b := valid(t); return b[:len(b)*2/3] }, domain.CodeArchiveInvalid, "not a zip"},
		{"truncated_entry_data", func(t testing.TB) []byte {
			// Cut out the middle but keep the directory: the entries' data
			// runs past where it should.
			b := valid(t)
			return append(b[:200:200], b[len(b)-1200:]...)
		}, domain.CodeArchiveInvalid, ""},
		{"not_a_zip", func(testing.TB) []byte { return []byte("this is not a zip file, just some text\n") }, domain.CodeArchiveInvalid, "not a zip"},
		{"empty_file", func(testing.TB) []byte { return nil }, domain.CodeArchiveInvalid, "not a zip"},
	}
}

// patchHeaderOffset makes the central directory record of entry name
// point at the local header of entry target.
func patchHeaderOffset(t testing.TB, raw []byte, name, target string) []byte {
	t.Helper()
	out := bytes.Clone(raw)
	offsets := map[string]uint32{}
	var recs = map[string]int{}
	for i := 0; i+46 <= len(out); i++ {
		if binary.LittleEndian.Uint32(out[i:]) != 0x02014b50 {
			continue
		}
		n := int(binary.LittleEndian.Uint16(out[i+28:]))
		entry := string(out[i+46 : i+46+n])
		offsets[entry] = binary.LittleEndian.Uint32(out[i+42:])
		recs[entry] = i
	}
	i, ok := recs[name]
	off, ok2 := offsets[target]
	if !ok || !ok2 {
		t.Fatalf("no directory records of %s and %s", name, target)
	}
	binary.LittleEndian.PutUint32(out[i+42:], off)
	return out
}

// TestCraftedArchivesFiles keeps testdata/archives (the fuzz seeds) in step
// with craftedArchives: go test -run TestCraftedArchivesFiles -args -update
// rewrites them. Each file must still get its verdict.
func TestCraftedArchivesFiles(t *testing.T) {
	dir := filepath.Join("testdata", "archives")
	for _, c := range craftedArchives() {
		path := filepath.Join(dir, c.name+".zip")
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.build(t), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestCraftedArchivesFiles -args -update)", err)
		}
		_, err = objectstore.ValidateArchive(t.Context(), bytes.NewReader(raw), int64(len(raw)), objectstore.Limits{})
		checkVerdict(t, c, err)
	}
}

func checkVerdict(t *testing.T, c crafted, err error) {
	t.Helper()
	if c.code == "" {
		if err != nil {
			t.Errorf("%s: refused: %v", c.name, err)
		}
		return
	}
	if got := domain.Code(err); got != c.code {
		t.Errorf("%s: err = %v (code %q), want code %q", c.name, err, got, c.code)
		return
	}
	if !strings.Contains(domain.Public(err), c.detail) {
		t.Errorf("%s: detail %q does not mention %q", c.name, domain.Public(err), c.detail)
	}
}
