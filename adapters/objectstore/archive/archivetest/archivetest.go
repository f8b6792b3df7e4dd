// Package archivetest crafts archives, valid and not, for the tests of
// package archive and of its users: a zip of chosen entries (MakeZip), a
// manifest of them (WithManifest), and one archive for each rule of
// docs/archive.md with the verdict it gets (CraftedArchives).
package archivetest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
	"github.com/backupledger/backupledger/domain"
)

// Entry is one entry of a Crafted zip.
type Entry struct {
	Name string
	Body []byte
	// Method defaults to deflate.
	Method uint16
	Mode   fs.FileMode
	// Raw entries are written with CreateRaw: Body is already compressed,
	// and Hdr sets CRC and sizes.
	Raw bool
	Hdr func(*zip.FileHeader)
}

// Time is the modification time of crafted entries, and the creation
// time of their manifests.
var Time = time.Date(2026, 11, 21, 10, 15, 0, 0, time.UTC)

// MakeZip builds a zip of the entries, in order, with archive/zip.
func MakeZip(t testing.TB, ents ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		fh := &zip.FileHeader{Name: e.Name, Method: zip.Deflate, Modified: Time}
		if e.Method != 0 || e.Raw {
			fh.Method = e.Method
		}
		if e.Mode != 0 {
			fh.SetMode(e.Mode)
		}
		if e.Hdr != nil {
			e.Hdr(fh)
		}
		var (
			w   interface{ Write([]byte) (int, error) }
			err error
		)
		if e.Raw {
			w, err = zw.CreateRaw(fh)
		} else {
			w, err = zw.CreateHeader(fh)
		}
		if err != nil {
			t.Fatalf("zip %s: %v", e.Name, err)
		}
		if _, err := w.Write(e.Body); err != nil {
			t.Fatalf("zip %s: %v", e.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ManifestOf returns a valid manifest listing the entries with content
// (not directories, not manifest.json).
func ManifestOf(ents ...Entry) archive.Manifest {
	m := archive.Manifest{
		FormatVersion: 1, App: "crm", BackupID: "01JD5Q3ZK6N8W2X4Y7T9R1M3P5", Name: "November 21 Saturday 11:15",
		Description: "crafted", CreatedAt: Time, CreatedBy: "alice", Origin: "manual", SchemaVersion: 1,
		Source: "dir", Components: []string{"config", "files"}, Entries: []archive.ManifestEntry{},
	}
	for _, e := range ents {
		if e.Name == archive.ManifestPath || strings.HasSuffix(e.Name, "/") {
			continue
		}
		m.Entries = append(m.Entries, archive.ManifestEntry{Path: e.Name, Size: int64(len(e.Body)), SHA256: SHA256(e.Body)})
	}
	m.ItemCount = len(m.Entries)
	return m
}

// ManifestFile is the entry manifest.json with m, indented.
func ManifestFile(t testing.TB, m archive.Manifest) Entry {
	t.Helper()
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Name: archive.ManifestPath, Body: raw}
}

// WithManifest appends a valid manifest of ents, changed by edit.
func WithManifest(t testing.TB, edit func(*archive.Manifest), ents ...Entry) []Entry {
	m := ManifestOf(ents...)
	if edit != nil {
		edit(&m)
	}
	return append(ents, ManifestFile(t, m))
}

// Crafted is an archive made to test one rule: the code archive.Validate
// answers and a word of the detail it must give.
type Crafted struct {
	Name   string
	Build  func(t testing.TB) []byte
	Code   string // "" means valid
	Detail string
}

// ValidEntries are three entries of a valid archive: two of the
// component config, deflated, and one of files, stored.
func ValidEntries() []Entry {
	return []Entry{
		{Name: "config/settings/theme", Body: []byte(`{"dark":true}`)},
		{Name: "config/tables/users.json", Body: bytes.Repeat([]byte(`{"id":1,"name":"x"},`), 500)},
		{Name: "files/logo.bin", Body: RandomBytes(9, 3000), Method: zip.Store},
	}
}

// CraftedArchives are the archives of the rules of docs/archive.md, a
// valid one first; testdata/archives of package archive holds them.
func CraftedArchives() []Crafted {
	valid := func(t testing.TB) []byte { return MakeZip(t, WithManifest(t, nil, ValidEntries()...)...) }
	one := func(e Entry, edit func(*archive.Manifest)) func(t testing.TB) []byte {
		return func(t testing.TB) []byte {
			return MakeZip(t, WithManifest(t, edit, append(ValidEntries(), e)...)...)
		}
	}
	zeros := make([]byte, 16<<20)
	return []Crafted{
		{"valid", valid, "", ""},
		{"valid_with_directories", func(t testing.TB) []byte {
			ents := []Entry{{Name: "config/", Mode: fs.ModeDir | 0o755}, {Name: "config/settings/", Mode: fs.ModeDir | 0o755}}
			return MakeZip(t, WithManifest(t, nil, append(ents, ValidEntries()...)...)...)
		}, "", ""},
		{"zip_slip", one(Entry{Name: "config/../../etc/passwd", Body: []byte("root")}, nil), domain.CodeArchiveInvalid, `".."`},
		{"absolute_path", one(Entry{Name: "/etc/passwd", Body: []byte("root")}, nil), domain.CodeArchiveInvalid, "absolute path"},
		{"backslash", one(Entry{Name: `config\..\evil`, Body: []byte("x")}, nil), domain.CodeArchiveInvalid, "backslash"},
		{"dot_segment", one(Entry{Name: "config/./a", Body: []byte("x")}, nil), domain.CodeArchiveInvalid, `"."`},
		{"empty_segment", one(Entry{Name: "config//a", Body: []byte("x")}, nil), domain.CodeArchiveInvalid, "empty"},
		{"not_in_component", one(Entry{Name: "etc/passwd", Body: []byte("x")}, nil), domain.CodeArchiveInvalid, "component"},
		{"top_level_file", one(Entry{Name: "readme.txt", Body: []byte("x")}, nil), domain.CodeArchiveInvalid, "component"},
		{"symlink", one(Entry{Name: "config/link", Body: []byte("/etc/passwd"), Mode: fs.ModeSymlink | 0o777}, nil), domain.CodeArchiveInvalid, "symbolic link"},
		{"fifo", one(Entry{Name: "config/pipe", Mode: fs.ModeNamedPipe | 0o644}, nil), domain.CodeArchiveInvalid, "not a regular file"},
		{"duplicate_path", one(Entry{Name: "config/settings/theme", Body: []byte(`{"dark":true}`)}, func(m *archive.Manifest) {
			m.Entries, m.ItemCount = m.Entries[:len(m.Entries)-1], m.ItemCount-1
		}), domain.CodeArchiveInvalid, "twice"},
		{"bomb", one(Entry{Name: "files/zeros", Body: zeros}, nil), domain.CodeArchiveInvalid, "zip bomb"},
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
			e := Entry{Name: "files/zeros", Body: deflated.Bytes(), Raw: true, Method: zip.Deflate, Hdr: func(fh *zip.FileHeader) {
				fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = crc32.ChecksumIEEE(small), uint64(deflated.Len()), 100
			}}
			return MakeZip(t, WithManifest(t, func(m *archive.Manifest) {
				m.Entries[len(m.Entries)-1] = archive.ManifestEntry{Path: "files/zeros", Size: 100, SHA256: SHA256(small)}
			}, append(ValidEntries(), e)...)...)
		}, domain.CodeArchiveInvalid, "inflates to more than"},
		{"wrong_digest", func(t testing.TB) []byte {
			return MakeZip(t, WithManifest(t, func(m *archive.Manifest) { m.Entries[0].SHA256 = strings.Repeat("ab", 32) }, ValidEntries()...)...)
		}, domain.CodeArchiveInvalid, "sha256"},
		{"wrong_size", func(t testing.TB) []byte {
			return MakeZip(t, WithManifest(t, func(m *archive.Manifest) { m.Entries[1].Size++ }, ValidEntries()...)...)
		}, domain.CodeArchiveInvalid, "lists"},
		{"bad_crc", func(t testing.TB) []byte {
			body := []byte("stored body")
			e := Entry{Name: "files/crc", Body: body, Raw: true, Method: zip.Store, Hdr: func(fh *zip.FileHeader) {
				fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = 12345, uint64(len(body)), uint64(len(body))
			}}
			return MakeZip(t, WithManifest(t, nil, append(ValidEntries(), e)...)...)
		}, domain.CodeArchiveInvalid, "CRC-32"},
		{"corrupt_deflate", func(t testing.TB) []byte {
			body := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			e := Entry{Name: "files/garbage", Body: body, Raw: true, Method: zip.Deflate, Hdr: func(fh *zip.FileHeader) {
				fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = 0, uint64(len(body)), 5
			}}
			return MakeZip(t, WithManifest(t, func(m *archive.Manifest) {
				m.Entries[len(m.Entries)-1] = archive.ManifestEntry{Path: "files/garbage", Size: 5, SHA256: SHA256([]byte("12345"))}
			}, append(ValidEntries(), e)...)...)
		}, domain.CodeArchiveInvalid, "files/garbage"},
		{"unlisted_entry", func(t testing.TB) []byte {
			ents := ValidEntries()
			m := ManifestOf(ents...)
			return MakeZip(t, append(append(ents, Entry{Name: "files/extra", Body: []byte("x")}), ManifestFile(t, m))...)
		}, domain.CodeArchiveInvalid, "not listed"},
		{"missing_entry", func(t testing.TB) []byte {
			ents := ValidEntries()
			m := ManifestOf(ents...)
			return MakeZip(t, append(ents[1:], ManifestFile(t, m))...)
		}, domain.CodeArchiveInvalid, "no such entry"},
		{"missing_manifest", func(t testing.TB) []byte { return MakeZip(t, ValidEntries()...) }, domain.CodeArchiveInvalid, "no manifest.json"},
		{"manifest_twice", func(t testing.TB) []byte {
			ents := WithManifest(t, nil, ValidEntries()...)
			return MakeZip(t, append(ents, ents[len(ents)-1])...)
		}, domain.CodeArchiveInvalid, "twice"},
		{"unknown_format_version", func(t testing.TB) []byte {
			return MakeZip(t, WithManifest(t, func(m *archive.Manifest) { m.FormatVersion = 99 }, ValidEntries()...)...)
		}, domain.CodeArchiveVersion, "99"},
		{"manifest_not_json", func(t testing.TB) []byte {
			return MakeZip(t, append(ValidEntries(), Entry{Name: "manifest.json", Body: []byte(`{"format_version": 1, "app": `)})...)
		}, domain.CodeArchiveInvalid, "manifest.json"},
		{"manifest_wrong_type", func(t testing.TB) []byte {
			raw, _ := json.Marshal(ManifestOf(ValidEntries()...))
			raw = bytes.Replace(raw, []byte(`"item_count":3`), []byte(`"item_count":"3"`), 1)
			return MakeZip(t, append(ValidEntries(), Entry{Name: "manifest.json", Body: raw})...)
		}, domain.CodeArchiveInvalid, "item_count"},
		{"manifest_bad_app", func(t testing.TB) []byte {
			return MakeZip(t, WithManifest(t, func(m *archive.Manifest) { m.App = "Bad App" }, ValidEntries()...)...)
		}, domain.CodeArchiveInvalid, "app"},
		{"item_count_mismatch", func(t testing.TB) []byte {
			return MakeZip(t, WithManifest(t, func(m *archive.Manifest) { m.ItemCount = 7 }, ValidEntries()...)...)
		}, domain.CodeArchiveInvalid, "item_count"},
		{"encrypted", one(Entry{Name: "files/secret", Body: []byte("x"), Hdr: func(fh *zip.FileHeader) { fh.Flags |= 0x1 }}, nil), domain.CodeArchiveInvalid, "encrypted"},
		{"unsupported_method", one(Entry{Name: "files/bz", Body: []byte("x"), Raw: true, Method: 12, Hdr: func(fh *zip.FileHeader) {
			fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = crc32.ChecksumIEEE([]byte("x")), 1, 1
		}}, nil), domain.CodeArchiveInvalid, "compression method 12"},
		{"directory_with_content", one(Entry{Name: "config/dir/", Raw: true, Method: zip.Store, Hdr: func(fh *zip.FileHeader) {
			// archive/zip writes no data for a directory; the sizes claim some.
			fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = crc32.ChecksumIEEE([]byte("hidden")), 6, 6
		}}, nil), domain.CodeArchiveInvalid, "has content"},
		{"overlapping_entries", func(t testing.TB) []byte {
			body := bytes.Repeat([]byte("overlap "), 100)
			ents := append(ValidEntries(), Entry{Name: "files/a", Body: body}, Entry{Name: "files/b", Body: body})
			raw := MakeZip(t, WithManifest(t, nil, ents...)...)
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

// CheckVerdict fails t unless err is the verdict c wants.
func CheckVerdict(t *testing.T, c Crafted, err error) {
	t.Helper()
	if c.Code == "" {
		if err != nil {
			t.Errorf("%s: refused: %v", c.Name, err)
		}
		return
	}
	if got := domain.Code(err); got != c.Code {
		t.Errorf("%s: err = %v (code %q), want code %q", c.Name, err, got, c.Code)
		return
	}
	if !strings.Contains(domain.Public(err), c.Detail) {
		t.Errorf("%s: detail %q does not mention %q", c.Name, domain.Public(err), c.Detail)
	}
}

// RandomBytes returns n bytes of a random stream seeded with seed.
func RandomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = r.Read(b)
	return b
}

// SHA256 is the lower-case hex SHA-256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
