package objectstore

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

var _ domain.ArchiveReader = (*Archives)(nil)

// ReadArchive opens the stored archive of backupID for a restore. Its
// ledger entry says size and sha256 (lower-case hex).
//
// The object is spooled to a temporary file in Config.TempDir and verified
// on the way against size and sha256, then checked by ValidateArchive
// with Config.Limits (every entry against the manifest). Only then is fn
// called, with the manifest's SchemaVersion, Source, Components and
// Entries, and an Items that emits every entry in the manifest's order as
// a domain.Item: Component its first path segment, Path the rest, Size and
// a Body read from the zip, whose read that ends it fails (with an error
// wrapping domain.ErrArchiveCorrupt) if the bytes differ from the entry's
// size or SHA-256; a body is closed when emit returns. Bodies also fail
// once ctx ends. The contents are valid only during fn: the temporary file
// is removed when ReadArchive returns. Memory does not grow with the size
// of the archive, only with its number of entries (bounded by the limits).
//
// A missing object, or bytes that differ from size and sha256, return an
// error wrapping domain.ErrArchiveCorrupt and fn is not called (as for
// OpenArchive: the ledger says the archive is there). An archive that
// ValidateArchive refuses returns its *domain.Error as it is. A bad
// backup id returns an *domain.Error with CodeInvalidArgument. fn's error
// is returned as it is; errors of the object store, of the temporary file
// and ctx's cause are returned wrapped.
func (a *Archives) ReadArchive(ctx context.Context, backupID string, size int64, sha256Hex string, fn func(domain.ArchiveContents) error) error {
	if err := checkBackupID(backupID); err != nil {
		return err
	}
	rc, err := a.openVerified(ctx, backupID, size, sha256Hex)
	if err != nil {
		return fmt.Errorf("read archive %s: %w", backupID, err)
	}
	sp, err := a.spool(ctx, rc, "restore")
	if cerr := rc.Close(); err == nil && cerr != nil {
		sp.remove()
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("read archive %s: %w", backupID, err)
	}
	defer sp.remove()

	// The archive rules of uploads, but no size limit beyond the ledger's
	// word: this service may have written a larger archive itself.
	lim := a.cfg.Limits()
	lim.MaxArchiveBytes = max(lim.MaxArchiveBytes, sp.size)
	m, err := ValidateArchive(ctx, sp.f, sp.size, lim)
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return err
		}
		return fmt.Errorf("read archive %s: %w", backupID, err)
	}
	// ValidateArchive accepted the file: its directory is within the
	// limits and every entry matches the manifest.
	zr, err := zip.NewReader(sp.f, sp.size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("read archive %s: %w", backupID, err)
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
	return fn(domain.ArchiveContents{
		SchemaVersion: m.SchemaVersion,
		Source:        m.Source,
		Components:    m.Components,
		Entries:       entries,
		Items: func(emit func(domain.Item) error) error {
			return emitEntries(ctx, backupID, m.Entries, files, emit)
		},
	})
}

// emitEntries emits every entry of the manifest, in order, with its body
// read from files.
func emitEntries(ctx context.Context, backupID string, entries []ManifestEntry, files map[string]*zip.File, emit func(domain.Item) error) error {
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		f, ok := files[e.Path]
		if !ok { // ValidateArchive made sure of it
			return fmt.Errorf("archive %s has no entry %q", backupID, e.Path)
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
		b.err = corrupt("entry %q has more than the %d bytes its manifest lists", b.entry.Path, b.entry.Size)
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
		b.err = corrupt("entry %q is unreadable (%s)", b.entry.Path, zipDetail(err))
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
		return corrupt("entry %q has %d bytes, its manifest lists %d", b.entry.Path, b.n, b.entry.Size)
	}
	if got := hex.EncodeToString(b.h.Sum(nil)); got != b.entry.SHA256 {
		return corrupt("entry %q has sha256 %s, its manifest lists %s", b.entry.Path, got, b.entry.SHA256)
	}
	return io.EOF
}
