package objectstore

import "time"

// Archive layout constants; docs/archive.md is their specification.
const (
	// FormatVersion is the version of the archive format this package
	// writes. A change that an older reader would misread gets a new
	// version; adding optional manifest fields does not.
	FormatVersion = 1
	// ManifestPath is the zip entry that holds the Manifest, written last.
	ManifestPath = "manifest.json"
	// ComponentConfig is the component that a source's items go into; its
	// entries are named "config/<item path>".
	ComponentConfig = "config"
)

// Manifest is the content of an archive's manifest.json.
type Manifest struct {
	FormatVersion int       `json:"format_version"`
	App           string    `json:"app"`
	BackupID      string    `json:"backup_id"`
	Name          string    `json:"name"`
	Description   string    `json:"description"`
	CreatedAt     time.Time `json:"created_at"`
	CreatedBy     string    `json:"created_by"`
	Origin        string    `json:"origin"`
	SchemaVersion int       `json:"schema_version"`
	// Source is the kind of the source the items were exported from.
	Source string `json:"source"`
	// Components names the top-level folders of the entries, e.g. "config".
	Components []string `json:"components"`
	// ItemCount is len(Entries).
	ItemCount int `json:"item_count"`
	// Entries lists every entry of the archive except the manifest, in the
	// order they were written.
	Entries []ManifestEntry `json:"entries"`
}

// ManifestEntry describes one zip entry: its path in the zip, and the size
// and SHA-256 (lower-case hex) of its uncompressed content.
type ManifestEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}
