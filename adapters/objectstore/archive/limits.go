package archive

// Defaults of Limits.
const (
	// DefaultMaxArchiveBytes bounds the zip file.
	DefaultMaxArchiveBytes = 2 << 30
	// DefaultMaxEntries bounds the zip's entries.
	DefaultMaxEntries = 100_000
	// DefaultMaxUncompressedBytes bounds the sum of the entries' sizes.
	DefaultMaxUncompressedBytes = 8 << 30
	// DefaultMaxRatio bounds how many times its compressed size an entry
	// larger than 1 MiB may inflate to.
	DefaultMaxRatio = 200
	// DefaultMaxManifestBytes bounds manifest.json.
	DefaultMaxManifestBytes = 64 << 20
)

// Limits bound what Validate accepts. Zero fields take the Default
// values above.
type Limits struct {
	// MaxArchiveBytes bounds the zip file (CodeArchiveTooLarge).
	MaxArchiveBytes int64
	// MaxEntries bounds the zip's entries, manifest and directory entries
	// included.
	MaxEntries int
	// MaxUncompressedBytes bounds the sum of the entries' sizes.
	MaxUncompressedBytes int64
	// MaxRatio bounds uncompressed/compressed size of each entry that is
	// larger than ratioFloor.
	MaxRatio int
	// MaxManifestBytes bounds manifest.json.
	MaxManifestBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxArchiveBytes <= 0 {
		l.MaxArchiveBytes = DefaultMaxArchiveBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxUncompressedBytes <= 0 {
		l.MaxUncompressedBytes = DefaultMaxUncompressedBytes
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	if l.MaxManifestBytes <= 0 {
		l.MaxManifestBytes = DefaultMaxManifestBytes
	}
	return l
}

const (
	// ratioFloor is the size up to which an entry may inflate whatever its
	// compression ratio: small documents of repeated bytes are no bomb.
	ratioFloor = 1 << 20
	// maxDirectoryBytes bounds the zip's central directory, which is held
	// in memory while the archive is read.
	maxDirectoryBytes = 64 << 20
	// maxExtraLen bounds each entry's extra field and comment.
	maxExtraLen = 1024
)
