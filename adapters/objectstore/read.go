package objectstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

var _ service.ArchiveReader = (*Archives)(nil)

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
// once ctx ends (archive.Contents). The contents are valid only during fn:
// the temporary file is removed when ReadArchive returns. Memory does not
// grow with the size of the archive, only with its number of entries
// (bounded by the limits).
//
// A missing object, or bytes that differ from size and sha256, return an
// error wrapping domain.ErrArchiveCorrupt and fn is not called (as for
// OpenArchive: the ledger says the archive is there). An archive that
// ValidateArchive refuses returns its *domain.Error as it is. A bad
// backup id returns an *domain.Error with CodeInvalidArgument. fn's error
// is returned as it is; errors of the object store, of the temporary file
// and ctx's cause are returned wrapped.
func (a *Archives) ReadArchive(ctx context.Context, backupID string, size int64, sha256Hex string, fn func(domain.ArchiveContents) error) error {
	if err := archive.CheckBackupID(backupID); err != nil {
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
	m, err := archive.Validate(ctx, sp.f, sp.size, lim)
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return err
		}
		return fmt.Errorf("read archive %s: %w", backupID, err)
	}
	contents, err := archive.Contents(ctx, sp.f, sp.size, m, backupID)
	if err != nil {
		return fmt.Errorf("read archive %s: %w", backupID, err)
	}
	return fn(contents)
}
