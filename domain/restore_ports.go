package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

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
