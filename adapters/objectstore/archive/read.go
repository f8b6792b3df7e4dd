package archive

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/klauspost/compress/flate"

	"github.com/backupledger/backupledger/domain"
)

// Contents returns the contents of the archive of r, of size bytes, whose
// manifest m Validate returned: the manifest's SchemaVersion, Source,
// Components and Entries, and an Items that emits every entry in the
// manifest's order as a domain.Item: Component its first path segment,
// Path the rest, Size and a Body read from the zip, whose read that ends
// it fails (with an error wrapping domain.ErrArchiveCorrupt) if the bytes
// differ from the entry's size or SHA-256; a body is closed when emit
// returns. Bodies also fail once ctx ends. name names the archive in
// errors. An error of archive/zip reading the directory is returned as it
// is; Items returns emit's error as it is.
func Contents(ctx context.Context, r io.ReaderAt, size int64, m Manifest, name string) (domain.ArchiveContents, error) {
	// Validate accepted the file: its directory is within the limits and
	// every entry matches the manifest.
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return domain.ArchiveContents{}, err
	}
	zr.RegisterDecompressor(zip.Deflate, newInflater)
	files := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		files[f.Name] = f
	}
	entries := make([]domain.ArchiveEntry, len(m.Entries))
	for i, e := range m.Entries {
		entries[i] = domain.ArchiveEntry{Path: e.Path, Size: e.Size, SHA256: e.SHA256}
	}
	return domain.ArchiveContents{
		SchemaVersion: m.SchemaVersion,
		Source:        m.Source,
		Components:    m.Components,
		Entries:       entries,
		Items: func(emit func(domain.Item) error) error {
			return emitEntries(ctx, name, m.Entries, files, emit)
		},
	}, nil
}

// emitEntries emits every entry of the manifest, in order, with its body
// read from files.
func emitEntries(ctx context.Context, name string, entries []ManifestEntry, files map[string]*zip.File, emit func(domain.Item) error) error {
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		f, ok := files[e.Path]
		if !ok { // Validate made sure of it
			return fmt.Errorf("archive %s has no entry %q", name, e.Path)
		}
		if err := emitEntry(ctx, f, e, emit); err != nil {
			return err
		}
	}
	return nil
}

// emitEntry emits the entry e of the zip file f and closes its body after.
func emitEntry(ctx context.Context, f *zip.File, e ManifestEntry, emit func(domain.Item) error) error {
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("open entry %q: %w", e.Path, err)
	}
	defer rc.Close()
	component, p, _ := strings.Cut(e.Path, "/")
	body := &entryBody{ctx: ctx, r: rc, entry: e, h: sha256.New()}
	return emit(domain.Item{Component: component, Path: p, Size: e.Size, Body: body})
}

// entryBody reads an entry's content and checks it against its manifest
// entry: a read past its size, the read that ends it when its size or
// SHA-256 differs, and a read that the zip reader finds damaged (CRC-32,
// deflate data, length) fail with an error wrapping domain.ErrArchiveCorrupt.
type entryBody struct {
	ctx   context.Context
	r     io.Reader
	entry ManifestEntry
	h     hash.Hash
	n     int64
	err   error // sticky
}

func (b *entryBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.ctx.Err() != nil {
		return 0, context.Cause(b.ctx)
	}
	// At most one byte more than the entry has: enough to tell it is
	// longer.
	if left := b.entry.Size - b.n; int64(len(p)) > left+1 {
		p = p[:left+1]
	}
	n, err := b.r.Read(p)
	if over := b.n + int64(n) - b.entry.Size; over > 0 {
		n -= int(over)
		b.h.Write(p[:n])
		b.n += int64(n)
		b.err = Corrupt("entry %q has more than the %d bytes its manifest lists", b.entry.Path, b.entry.Size)
		return n, b.err
	}
	b.h.Write(p[:n])
	b.n += int64(n)
	switch {
	case err == io.EOF:
		b.err = b.check()
		return n, b.err
	case errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, new(flate.CorruptInputError)):
		b.err = Corrupt("entry %q is unreadable (%s)", b.entry.Path, zipDetail(err))
		return n, b.err
	case err != nil:
		b.err = fmt.Errorf("read entry %q: %w", b.entry.Path, err)
		return n, b.err
	}
	return n, nil
}

// check compares what was read, to the end, with the manifest entry; nil
// means io.EOF.
func (b *entryBody) check() error {
	if b.n != b.entry.Size {
		return Corrupt("entry %q has %d bytes, its manifest lists %d", b.entry.Path, b.n, b.entry.Size)
	}
	if got := hex.EncodeToString(b.h.Sum(nil)); got != b.entry.SHA256 {
		return Corrupt("entry %q has sha256 %s, its manifest lists %s", b.entry.Path, got, b.entry.SHA256)
	}
	return io.EOF
}
