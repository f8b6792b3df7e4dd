package domain

import (
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ImportedArchive is what a validated, stored upload says of itself.
type ImportedArchive struct {
	// ArchiveInfo is the stored archive's size, SHA-256 and entry count.
	ArchiveInfo
	// App, BackupID, Name, Description and CreatedAt are the manifest's:
	// the backup the archive was made of, possibly elsewhere.
	App           string
	BackupID      string
	Name          string
	Description   string
	CreatedAt     time.Time
	SchemaVersion int
	Source        string
	Components    []string
}

// ArchiveStream is an archive being read.
type ArchiveStream struct {
	io.ReadCloser
	// Size is the number of bytes the stream yields.
	Size int64
	// SHA256 is the lowercase hex SHA-256 of those bytes.
	SHA256 string
}

// StagedArchive is an archive put where a NATS client can fetch it.
type StagedArchive struct {
	Bucket    string    `json:"bucket"`
	Object    string    `json:"object"`
	Size      int64     `json:"size_bytes"`
	SHA256    string    `json:"sha256"`
	ExpiresAt time.Time `json:"expires_at"`
}

// IntegrityActor is the actor recorded when the service itself finds an
// archive corrupt.
const IntegrityActor = "system:integrity"

// Upload is an archive someone brings in.
type Upload struct {
	App string
	// Name nil means the default name.
	Name        *string
	Description string
	// Body is the zip; or, for NATS, StagedObject names it in the staging
	// bucket.
	Body         io.Reader
	StagedObject string
}

// DownloadFileName is the file name an archive is offered under:
// <name>_<YYYY-MM-DD_HH-MM>.zip with the creation time in loc, the name made
// safe for file systems (path separators, reserved and control characters
// become "_"). It may contain non-ASCII letters.
func DownloadFileName(b Backup, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	// 255 bytes is the usual limit of a file name; the suffix takes 21.
	const maxName = 255 - len("_2006-01-02_15-04.zip")
	var sb strings.Builder
	for _, r := range strings.TrimSpace(b.Name) {
		if unicode.IsControl(r) || strings.ContainsRune(`/\:*?"<>|`, r) {
			r = '_'
		}
		if sb.Len()+utf8.RuneLen(r) > maxName {
			break
		}
		sb.WriteRune(r)
	}
	name := strings.Trim(sb.String(), ". ")
	if name == "" {
		name = "backup"
	}
	return name + "_" + b.CreatedAt.In(loc).Format("2006-01-02_15-04") + ".zip"
}
