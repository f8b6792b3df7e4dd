package domain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Replacer is the import side of a Source: a restore replaces an app's
// content with an archive's.
type Replacer interface {
	// Replace makes app's content exactly the items that items emits
	// (Item.Component and Item.Path as Export gives them): everything not
	// among them is removed. It is idempotent, and leaves either the old
	// or the new content when it fails where the source can (dir renames
	// a whole folder into place), or content that a retry of Replace
	// makes right (kv).
	Replace(ctx context.Context, app string, items func(emit func(Item) error) error) error
}

// ArchiveEntry is one entry of an archive's manifest.
type ArchiveEntry struct {
	// Path is "<component>/<path>" as in the zip.
	Path   string
	Size   int64
	SHA256 string
}

// ArchiveContents is a stored archive opened for a restore: what its
// manifest says, and its items.
type ArchiveContents struct {
	SchemaVersion int
	Source        string
	Components    []string
	Entries       []ArchiveEntry
	// Items emits every entry as an Item (Component, Path, Size, Body),
	// in the manifest's order; each Body is checked against its size and
	// SHA-256 as it is read.
	Items func(emit func(Item) error) error
}

// ArchiveReader opens stored archives for restores.
// ArchiveChecker is implemented by an ArchiveReader that can check a
// stored archive's record without reading its bytes: present, readable,
// of the ledger's size and SHA-256 (else an error wrapping
// ErrArchiveCorrupt). A restore request checks it before it is recorded.
type ArchiveChecker interface {
	CheckArchive(ctx context.Context, backupID string, size int64, sha256 string) error
}

type ArchiveReader interface {
	// ReadArchive checks the stored archive of backupID against size and
	// sha256 (a mismatch is an error wrapping ErrArchiveCorrupt) and the
	// archive rules, then calls fn with its contents. The contents are
	// valid only during fn.
	ReadArchive(ctx context.Context, backupID string, size int64, sha256 string, fn func(ArchiveContents) error) error
}

// ContentDigest is the digest of an app's content that a restore verifies:
// the hex SHA-256 of the lines "<component>/<path> <hex sha256>\n", sorted
// by path. The manifest of an archive gives it without reading the
// entries; an app's export gives it by hashing each item.
func ContentDigest(entries []ArchiveEntry) string {
	lines := make([]string, 0, len(entries))
	for _, e := range entries {
		lines = append(lines, e.Path+" "+e.SHA256+"\n")
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ItemPath is the archive path of an item: "<component>/<path>", with
// "config" for an item without a component (a source's items without one
// belong in its first component: see Restores).
func ItemPath(it Item) string {
	c := it.Component
	if c == "" {
		c = ComponentConfig
	}
	return c + "/" + strings.TrimPrefix(it.Path, "/")
}
