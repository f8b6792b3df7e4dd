package objectstore_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

var _ service.ArchiveReader = (*objectstore.Archives)(nil)

// readItem is one item of ReadArchive with its body read.
type readItem struct {
	Component, Path string
	Size            int64
	Body            []byte
}

// readItems reads every item of c, each body to its end.
func readItems(c domain.ArchiveContents) ([]readItem, error) {
	var got []readItem
	err := c.Items(func(it domain.Item) error {
		b, err := io.ReadAll(it.Body)
		if err != nil {
			return err
		}
		got = append(got, readItem{it.Component, it.Path, it.Size, b})
		return nil
	})
	return got, err
}

func TestReadArchiveRoundTrip(t *testing.T) {
	a, _, tmp := setupTemp(t, objectstore.Config{})
	want := []readItem{
		{"files", "big.bin", 2<<20 + 7, randomBytes(31, 2<<20+7)},
		{"config", "settings/theme", 13, []byte(`{"dark":true}`)},
		{"config", "empty", 0, []byte{}},
		{"files", "unicodé/ü.txt", int64(len("grüße")), []byte("grüße")},
		{"config", "tables/users.json", 20000, []byte(strings.Repeat(`{"id":1,"name":"x"},`, 1000))},
	}
	var items []domain.Item
	for _, w := range want {
		items = append(items, domain.Item{Component: w.Component, Path: w.Path, Size: w.Size, Body: bytes.NewReader(w.Body)})
	}
	// An item without a component goes into the header's first one, and
	// comes back so.
	items = append(items, domain.Item{Path: "no-component", Size: 2, Body: strings.NewReader("nc")})
	want = append(want, readItem{"files", "no-component", 2, []byte("nc")})
	h := header("01JREAD")
	h.Components = []string{"files", "config"}
	info, err := a.WriteArchive(t.Context(), h, emitItems(items...))
	if err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}

	calls := 0
	err = a.ReadArchive(t.Context(), "01JREAD", info.SizeBytes, info.SHA256, func(c domain.ArchiveContents) error {
		calls++
		if c.SchemaVersion != h.SchemaVersion || c.Source != h.SourceKind {
			t.Errorf("schema version %d, source %q; want %d, %q", c.SchemaVersion, c.Source, h.SchemaVersion, h.SourceKind)
		}
		if want := []string{"config", "files"}; !slices.Equal(c.Components, want) {
			t.Errorf("components %q, want %q", c.Components, want)
		}
		if ents, _ := os.ReadDir(tmp); len(ents) != 1 {
			t.Errorf("%d files in the temp dir during fn, want the spooled archive", len(ents))
		}
		got, err := readItems(c)
		if err != nil {
			return err
		}
		if !slices.EqualFunc(got, want, func(a, b readItem) bool {
			return a.Component == b.Component && a.Path == b.Path && a.Size == b.Size && bytes.Equal(a.Body, b.Body)
		}) {
			for i := range min(len(got), len(want)) {
				g, w := got[i], want[i]
				if g.Component != w.Component || g.Path != w.Path || g.Size != w.Size || !bytes.Equal(g.Body, w.Body) {
					t.Errorf("item %d: %s/%s of %d bytes (%d read), want %s/%s of %d", i, g.Component, g.Path, g.Size, len(g.Body), w.Component, w.Path, w.Size)
				}
			}
			t.Fatalf("got %d items, want %d", len(got), len(want))
		}
		// The entries are the manifest's, in its order, and give the
		// digest of the items' real content.
		var fromItems []domain.ArchiveEntry
		for i, it := range got {
			sum := sha256.Sum256(it.Body)
			e := domain.ArchiveEntry{Path: domain.ItemPath(domain.Item{Component: it.Component, Path: it.Path}), Size: it.Size, SHA256: hex.EncodeToString(sum[:])}
			if i >= len(c.Entries) || c.Entries[i] != e {
				t.Errorf("entry %d = %+v, want %+v", i, c.Entries[i:min(i+1, len(c.Entries))], e)
			}
			fromItems = append(fromItems, e)
		}
		if len(c.Entries) != len(got) {
			t.Errorf("%d entries for %d items", len(c.Entries), len(got))
		}
		if got, want := domain.ContentDigest(c.Entries), domain.ContentDigest(fromItems); got != want {
			t.Errorf("ContentDigest(Entries) = %s, want %s (of the items)", got, want)
		}
		// Items may be read again while fn runs.
		again, err := readItems(c)
		if err != nil || len(again) != len(want) {
			t.Errorf("second Items: %d items, %v", len(again), err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ReadArchive: %v", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times, want once", calls)
	}
	assertNoTempFiles(t, tmp)
}

func TestReadArchiveEmpty(t *testing.T) {
	a, _, tmp := setupTemp(t, objectstore.Config{})
	info, err := a.WriteArchive(t.Context(), header("01JEMPTY"), emitItems())
	if err != nil {
		t.Fatal(err)
	}
	err = a.ReadArchive(t.Context(), "01JEMPTY", info.SizeBytes, info.SHA256, func(c domain.ArchiveContents) error {
		got, err := readItems(c)
		if len(got) != 0 || len(c.Entries) != 0 || !slices.Equal(c.Components, []string{"config"}) {
			t.Errorf("items %v, entries %v, components %q; want none and [config]", got, c.Entries, c.Components)
		}
		return err
	})
	if err != nil {
		t.Fatalf("ReadArchive: %v", err)
	}
	assertNoTempFiles(t, tmp)
}

func TestReadArchiveRefused(t *testing.T) {
	ctx := context.Background()
	a, js, tmp := setupTemp(t, objectstore.Config{})
	raw, info := writeMixed(t, a, "01JCORRUPT")
	_, other := writeMixed(t, a, "01JOTHER")
	// An archive that is stored as the ledger says but that breaks the
	// archive rules (an upload limit lowered since), to see that
	// ValidateArchive runs: a second Archives on the same buckets.
	strict, err := objectstore.New(ctx, js, objectstore.Config{TempDir: tmp, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		a       *objectstore.Archives
		damage  func(t *testing.T)
		id      string
		size    int64
		sha     string
		corrupt string // a detail of an error wrapping ErrArchiveCorrupt
		code    string // else the code of a *domain.Error
	}{
		{name: "size differs", id: "01JOTHER", size: other.SizeBytes + 1, sha: other.SHA256, corrupt: "ledger has"},
		{name: "sha256 differs", id: "01JOTHER", size: other.SizeBytes, sha: info.SHA256, corrupt: "ledger has " + info.SHA256},
		{name: "unknown backup", id: "01JNEVERWRITTEN", size: info.SizeBytes, sha: info.SHA256, corrupt: "archive missing"},
		{name: "bad backup id", id: "../x", size: info.SizeBytes, sha: info.SHA256, code: domain.CodeInvalidArgument},
		{name: "archive rules", a: strict, id: "01JOTHER", size: other.SizeBytes, sha: other.SHA256, code: domain.CodeArchiveInvalid},
		{name: "recorded digest differs", damage: func(t *testing.T) { overwrite(t, js, "01JCORRUPT", raw) },
			id: "01JCORRUPT", size: info.SizeBytes, sha: info.SHA256, corrupt: "ledger has " + info.SHA256},
		{name: "stored bytes differ", damage: func(t *testing.T) {
			forgeDigest(t, js, overwrite(t, js, "01JCORRUPT", raw), "01JCORRUPT", info.SHA256)
		}, id: "01JCORRUPT", size: info.SizeBytes, sha: info.SHA256, corrupt: "ledger has"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.damage != nil {
				tt.damage(t)
			}
			ar := a
			if tt.a != nil {
				ar = tt.a
			}
			called := false
			err := ar.ReadArchive(ctx, tt.id, tt.size, tt.sha, func(domain.ArchiveContents) error { called = true; return nil })
			if tt.corrupt != "" {
				wantCorrupt(t, err, tt.corrupt)
			} else {
				wantCode(t, err, tt.code)
			}
			if called {
				t.Error("fn called")
			}
			assertNoTempFiles(t, tmp)
		})
	}
}

func TestReadArchiveBodiesAreChecked(t *testing.T) {
	// The spooled file is damaged after it was validated (a bad disk):
	// the body of the damaged entry fails as it is read.
	a, _, tmp := setupTemp(t, objectstore.Config{})
	_, info := writeMixed(t, a, "01JBODY")
	var got []string
	err := a.ReadArchive(t.Context(), "01JBODY", info.SizeBytes, info.SHA256, func(c domain.ArchiveContents) error {
		damage(t, tmp, "files/big.bin")
		return c.Items(func(it domain.Item) error {
			if _, err := io.Copy(io.Discard, it.Body); err != nil {
				return err
			}
			got = append(got, domain.ItemPath(it))
			return nil
		})
	})
	wantCorrupt(t, err, `"files/big.bin"`)
	if want := []string{"config/settings/theme"}; !slices.Equal(got, want) {
		t.Errorf("read %q before the damaged entry, want %q", got, want)
	}
	assertNoTempFiles(t, tmp)
}

// damage flips a byte in the middle of the data of entry name in the one
// file of dir, a zip.
func damage(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("temp dir: %v, %d files", err, len(ents))
	}
	path := filepath.Join(dir, ents[0].Name())
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	i := slices.IndexFunc(zr.File, func(f *zip.File) bool { return f.Name == name })
	if i < 0 {
		t.Fatalf("no entry %s", name)
	}
	off, err := zr.File[i].DataOffset()
	if err != nil {
		t.Fatal(err)
	}
	off += int64(zr.File[i].CompressedSize64 / 2)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestReadArchiveErrorsOfFnAndCtx(t *testing.T) {
	a, _, tmp := setupTemp(t, objectstore.Config{})
	_, info := writeMixed(t, a, "01JFN")
	boom := errors.New("boom")

	err := a.ReadArchive(t.Context(), "01JFN", info.SizeBytes, info.SHA256, func(domain.ArchiveContents) error { return boom })
	if err != boom {
		t.Errorf("ReadArchive = %v, want fn's error as it is", err)
	}
	err = a.ReadArchive(t.Context(), "01JFN", info.SizeBytes, info.SHA256, func(c domain.ArchiveContents) error {
		return c.Items(func(domain.Item) error { return boom })
	})
	if !errors.Is(err, boom) {
		t.Errorf("ReadArchive = %v, want emit's error", err)
	}

	// ctx ends while fn reads: the body and Items fail.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	n := 0
	err = a.ReadArchive(ctx, "01JFN", info.SizeBytes, info.SHA256, func(c domain.ArchiveContents) error {
		return c.Items(func(it domain.Item) error {
			n++
			cancel()
			_, err := io.Copy(io.Discard, it.Body)
			return err
		})
	})
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("ReadArchive cancelled in fn = %v after %d items, want context.Canceled after 1", err, n)
	}
	err = a.ReadArchive(ctx, "01JFN", info.SizeBytes, info.SHA256, func(domain.ArchiveContents) error {
		t.Error("fn called with an ended context")
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ReadArchive with an ended context = %v, want context.Canceled", err)
	}
	assertNoTempFiles(t, tmp)
}

// A 128 MiB archive of incompressible items is read back, every body to
// its end, without the archive or an item ever being in memory as a whole.
// Fetching the object costs what copying OpenArchive's stream of it into a
// file costs (the embedded server and the client buffer chunks in this
// process's heap); reading the items from the spooled file costs a few MiB.
func TestReadArchiveStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 128 MiB")
	}
	a, _, tmp := setupTemp(t, objectstore.Config{})
	const (
		items    = 32
		itemSize = 4 << 20
		total    = items * itemSize
	)
	info, err := a.WriteArchive(t.Context(), header("01JBIGREAD"), func(emit func(domain.Item) error) error {
		for i := range items {
			body := io.LimitReader(rand.NewChaCha8([32]byte{byte(i)}), itemSize)
			if err := emit(domain.Item{Path: fmt.Sprintf("%02d.bin", i), Size: itemSize, Body: body}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	growth := func(f func() error) int64 {
		t.Helper()
		base := liveHeap()
		stop := heapPeak()
		err := f()
		peak := stop()
		if err != nil {
			t.Fatal(err)
		}
		return int64(peak) - int64(base)
	}

	stream := growth(func() error {
		s, err := a.OpenArchive(t.Context(), "01JBIGREAD", info.SizeBytes, info.SHA256, "")
		if err != nil {
			return err
		}
		defer s.Close()
		f, err := os.Create(filepath.Join(t.TempDir(), "copy.zip"))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(f, s)
		return err
	})
	var (
		read     int64
		itemsMem int64
	)
	whole := growth(func() error {
		return a.ReadArchive(t.Context(), "01JBIGREAD", info.SizeBytes, info.SHA256, func(c domain.ArchiveContents) error {
			itemsMem = growth(func() error {
				return c.Items(func(it domain.Item) error {
					n, err := io.Copy(io.Discard, it.Body)
					read += n
					return err
				})
			})
			return nil
		})
	})
	t.Logf("archive %d MiB; peak heap growth %.1f MiB while reading items, %.1f MiB in all (OpenArchive's stream of it into a file: %.1f MiB)",
		info.SizeBytes>>20, float64(itemsMem)/(1<<20), float64(whole)/(1<<20), float64(stream)/(1<<20))
	if read != total {
		t.Fatalf("read %d bytes of items, want %d", read, total)
	}
	if limit := int64(16 << 20); itemsMem > limit {
		t.Errorf("live heap grew by %d MiB while reading the items of a %d MiB archive; limit %d MiB", itemsMem>>20, total>>20, limit>>20)
	}
	// The server's buffer pools vary from run to run; holding the archive
	// would add 128 MiB.
	if limit := max(stream, 16<<20) + 64<<20; whole > limit {
		t.Errorf("live heap grew by %d MiB while reading a %d MiB archive, %d MiB with OpenArchive", whole>>20, total>>20, stream>>20)
	}
	assertNoTempFiles(t, tmp)
}
