package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/backupledger/backupledger/domain"
)

// Archive layout constants; docs/archive.md is their specification.
const (
	// FormatVersion is the version of the archive format this package
	// writes. A change that an older reader would misread gets a new
	// version; adding optional manifest fields does not.
	FormatVersion = 1
	// ManifestPath is the zip entry that holds the Manifest, written last.
	ManifestPath = "manifest.json"
	// ComponentConfig is the component that items without a component go
	// into when the header names none; its entries are named
	// "config/<item path>".
	ComponentConfig = domain.ComponentConfig
	// MaxEntryNameLen is the longest entry name, "<component>/<path>", in
	// bytes.
	MaxEntryNameLen = 1024
	// MaxComponentLen is the longest component name in bytes.
	MaxComponentLen = 64
)

// supportedVersions are the format versions this package reads.
var supportedVersions = []int{1}

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
	// Components names the top-level folders of the entries, e.g.
	// "config", sorted; a component may have no entries.
	Components []string `json:"components"`
	// ItemCount is len(Entries).
	ItemCount int `json:"item_count"`
	// Entries lists every entry of the archive except the manifest (and
	// directory entries, which carry no content), in the order they were
	// written.
	Entries []ManifestEntry `json:"entries"`
}

// ManifestEntry describes one zip entry: its path in the zip, and the size
// and SHA-256 (lower-case hex) of its uncompressed content.
type ManifestEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ParseManifest decodes and checks the content of manifest.json: valid
// JSON of the known field types (unknown fields are ignored), a supported
// format_version (else CodeArchiveVersion), and the header fields and
// entries as docs/archive.md says. It does not look at the zip.
//
// A refused manifest returns an *domain.Error: CodeArchiveVersion for a
// format version this package does not read, CodeArchiveInvalid with a
// message that says what is wrong for anything else.
func ParseManifest(raw []byte) (Manifest, error) {
	if !utf8.Valid(raw) {
		return Manifest{}, invalid("manifest.json is not valid UTF-8")
	}
	// The version first, so that a later version whose fields differ is
	// reported as such rather than as a malformed manifest.
	var head struct {
		FormatVersion *json.RawMessage `json:"format_version"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return Manifest{}, invalid("manifest.json is not a JSON object: %s", jsonDetail(err))
	}
	if head.FormatVersion == nil {
		return Manifest{}, invalid("manifest.json has no format_version")
	}
	var version int
	if err := json.Unmarshal(*head.FormatVersion, &version); err != nil {
		return Manifest{}, invalid("manifest.json: format_version %s is not an integer", truncate(string(*head.FormatVersion), 40))
	}
	if !slices.Contains(supportedVersions, version) {
		return Manifest{}, domain.Errorf(domain.CodeArchiveVersion, "archive format_version %d is not supported; this server reads version %s", version, joinInts(supportedVersions))
	}

	m, err := DecodeManifest(raw)
	if err != nil {
		return Manifest{}, err
	}
	if err := checkHeader(m); err != nil {
		return Manifest{}, err
	}
	return m, checkEntries(m)
}

// DecodeManifest decodes manifest.json of a supported version without
// checking its fields, for an archive that was checked before. Malformed
// JSON returns an *domain.Error with CodeArchiveInvalid.
func DecodeManifest(raw []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, invalid("manifest.json: %s", jsonDetail(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Manifest{}, invalid("manifest.json: data after the JSON object")
	}
	return m, nil
}

// checkHeader checks the manifest's fields but its entries.
func checkHeader(m Manifest) error {
	if err := domain.ValidateAppID(m.App); err != nil {
		return invalid("manifest.json: app %q is not an app id ([a-z0-9][a-z0-9_-]{0,62})", truncate(m.App, 80))
	}
	if CheckBackupID(m.BackupID) != nil {
		return invalid("manifest.json: backup_id %q must be 1 to 128 characters of [A-Za-z0-9_.-]", truncate(m.BackupID, 80))
	}
	if _, err := domain.NormalizeName(m.Name); err != nil {
		return invalid("manifest.json: name: %s", domain.Public(err))
	}
	if _, err := domain.NormalizeDescription(m.Description); err != nil {
		return invalid("manifest.json: description: %s", domain.Public(err))
	}
	if m.CreatedAt.IsZero() {
		return invalid("manifest.json has no created_at")
	}
	if len(m.CreatedBy) > 256 || strings.ContainsFunc(m.CreatedBy, isControl) {
		return invalid("manifest.json: created_by must be at most 256 bytes without control characters")
	}
	if !domain.Origin(m.Origin).Valid() {
		return invalid("manifest.json: origin %q is not one of manual, nightly, pre_restore, upload", truncate(m.Origin, 40))
	}
	if m.SchemaVersion < 0 {
		return invalid("manifest.json: schema_version %d is negative", m.SchemaVersion)
	}
	if !IsName(m.Source) {
		return invalid("manifest.json: source %q must be 1 to %d characters of [a-z0-9_-]", truncate(m.Source, 80), MaxComponentLen)
	}
	if len(m.Components) == 0 {
		return invalid("manifest.json lists no components")
	}
	for i, c := range m.Components {
		if !IsName(c) {
			return invalid("manifest.json: component %q must be 1 to %d characters of [a-z0-9_-], starting with a letter or digit", truncate(c, 80), MaxComponentLen)
		}
		if slices.Contains(m.Components[:i], c) {
			return invalid("manifest.json lists component %q twice", c)
		}
	}
	return nil
}

// checkEntries checks the manifest's entries: as many as item_count,
// each once, with a safe path under a listed component, a size and a
// SHA-256.
func checkEntries(m Manifest) error {
	if m.Entries == nil {
		return invalid("manifest.json has no entries list")
	}
	if m.ItemCount != len(m.Entries) {
		return invalid("manifest.json: item_count is %d but entries lists %d", m.ItemCount, len(m.Entries))
	}
	seen := make(map[string]struct{}, len(m.Entries))
	for _, e := range m.Entries {
		if err := checkEntryName(e.Path); err != nil {
			return invalid("manifest.json: entry %q: %s", truncate(e.Path, 200), err)
		}
		if c, _, _ := strings.Cut(e.Path, "/"); !slices.Contains(m.Components, c) {
			return invalid("manifest.json: entry %q is not under a listed component (%s)", e.Path, strings.Join(m.Components, ", "))
		}
		if _, dup := seen[e.Path]; dup {
			return invalid("manifest.json lists entry %q twice", e.Path)
		}
		seen[e.Path] = struct{}{}
		if e.Size < 0 {
			return invalid("manifest.json: entry %q has a negative size", e.Path)
		}
		if !domain.IsLowerHex(e.SHA256, 64) {
			return invalid("manifest.json: entry %q: sha256 must be 64 lower-case hex digits", e.Path)
		}
	}
	return nil
}

// checkEntryName accepts "<component>/<path>": a relative slash-separated
// name of at most MaxEntryNameLen bytes without empty, "." or ".."
// segments, backslashes or control characters, in valid UTF-8, whose first
// segment is a component name. The error says what is wrong.
func checkEntryName(name string) error {
	c, p, ok := strings.Cut(name, "/")
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > MaxEntryNameLen:
		return fmt.Errorf("longer than %d bytes", MaxEntryNameLen)
	case !utf8.ValidString(name):
		return errors.New("not valid UTF-8")
	case strings.HasPrefix(name, "/"):
		return errors.New("absolute path")
	case strings.Contains(name, `\`):
		return errors.New("contains a backslash")
	case strings.ContainsFunc(name, isControl):
		return errors.New("contains a control character")
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New(`must be relative, without empty, "." or ".." segments`)
		}
	}
	if !ok || p == "" {
		return errors.New("not inside a component folder")
	}
	if !IsName(c) {
		return fmt.Errorf("component %q must be 1 to %d characters of [a-z0-9_-], starting with a letter or digit", c, MaxComponentLen)
	}
	return nil
}

// IsName reports whether s is a component or source name:
// [a-z0-9][a-z0-9_-]{0,63}.
func IsName(s string) bool {
	if s == "" || len(s) > MaxComponentLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// CheckBackupID accepts a backup id, 1 to 128 characters of
// [A-Za-z0-9_.-] (a ULID, or a test's name): the manifest's backup_id,
// and the name of an archive's object. Any other returns an
// *domain.Error with CodeInvalidArgument.
func CheckBackupID(id string) error {
	if id == "" || len(id) > 128 {
		return domain.Errorf(domain.CodeInvalidArgument, "backup id must be 1 to 128 characters of [A-Za-z0-9_.-]")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return domain.Errorf(domain.CodeInvalidArgument, "backup id %q must be 1 to 128 characters of [A-Za-z0-9_.-]", id)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// jsonDetail describes a JSON decoding error without Go type names.
func jsonDetail(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q has the wrong type (a JSON %s)", te.Field, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
