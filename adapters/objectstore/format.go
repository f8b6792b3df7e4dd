package objectstore

import (
	"context"
	"io"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
)

// The archive format is package archive's; these names keep this
// package's API as it was.
const (
	// FormatVersion is archive.FormatVersion, the version of the archive
	// format written.
	FormatVersion = archive.FormatVersion
	// ManifestPath is archive.ManifestPath, the zip entry of the manifest.
	ManifestPath = archive.ManifestPath
	// ComponentConfig is archive.ComponentConfig, the component of items
	// that name none when the header names none either.
	ComponentConfig = archive.ComponentConfig
	// MaxEntryNameLen is archive.MaxEntryNameLen, the longest entry name
	// in bytes.
	MaxEntryNameLen = archive.MaxEntryNameLen
	// MaxComponentLen is archive.MaxComponentLen, the longest component
	// name in bytes.
	MaxComponentLen = archive.MaxComponentLen
)

// Manifest is archive.Manifest, the content of an archive's
// manifest.json.
type Manifest = archive.Manifest

// ManifestEntry is archive.ManifestEntry, one entry of a Manifest.
type ManifestEntry = archive.ManifestEntry

// Limits is archive.Limits, the limits on what ValidateArchive accepts;
// Config.Limits gives those of uploads.
type Limits = archive.Limits

// ValidateArchive is archive.Validate: it checks that the size bytes of r
// are an archive within lim that follows every rule of docs/archive.md,
// and returns its manifest. A refused archive returns an *domain.Error
// with CodeArchiveTooLarge, CodeArchiveVersion or CodeArchiveInvalid; an
// error of r, or the end of ctx, is returned as it is.
func ValidateArchive(ctx context.Context, r io.ReaderAt, size int64, lim Limits) (Manifest, error) {
	return archive.Validate(ctx, r, size, lim)
}
