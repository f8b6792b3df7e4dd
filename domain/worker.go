package domain

import (
	"context"
	"io"
	"time"
)

// Components of an archive: the top-level folders its entries live in.
const (
	// ComponentConfig holds configuration documents (source "kv").
	ComponentConfig = "config"
	// ComponentFiles holds files (source "dir").
	ComponentFiles = "files"
)

// Item is one exported document or file of an app.
type Item struct {
	// Component is the archive folder the item belongs in, e.g. "config";
	// empty means the source's first component.
	Component string
	// Path is the item's path inside its component, e.g. "settings/theme".
	Path string
	// Size is the item's size in bytes.
	Size int64
	// Body yields the item's content; it is read once.
	Body io.Reader
}

// Source is where an app's structure and configuration live.
type Source interface {
	// Kind names the source, e.g. "kv"; the archive records it.
	Kind() string
	// SchemaVersion is the version of the structure this server exports.
	SchemaVersion() int
	// Components names the archive components the source exports into,
	// e.g. ["config"]; an archive lists them even when they are empty.
	Components() []string
	// Export calls emit for every item of app, in a stable order.
	Export(ctx context.Context, app string, emit func(Item) error) error
}

// ArchiveHeader is what an archive's manifest says about its backup.
type ArchiveHeader struct {
	App           string
	BackupID      string
	Name          string
	Description   string
	CreatedAt     time.Time
	CreatedBy     string
	Origin        Origin
	SchemaVersion int
	SourceKind    string
	Components    []string
}

// ArchiveInfo is what the ledger records of a stored archive.
type ArchiveInfo struct {
	SizeBytes int64
	SHA256    string
	ItemCount int
}

// ArchiveStore stores archives, one per backup id.
type ArchiveStore interface {
	ArchiveDeleter
	// WriteArchive streams an archive of the items that export emits into
	// the store under h.BackupID, replacing a partial one.
	WriteArchive(ctx context.Context, h ArchiveHeader, export func(emit func(Item) error) error) (ArchiveInfo, error)
}

// Job is one delivery of a requested backup to a worker.
type Job struct {
	App      string
	BackupID string
	// Seq is the stream sequence of the backup.requested event.
	Seq uint64
	// Attempt counts deliveries of the job, from 1.
	Attempt int
	// Final is set on the last delivery: the backup is then failed rather
	// than tried once more.
	Final         bool
	EventID       string
	CorrelationID string
}

// WorkerActor is the actor recorded for the events workers append.
const WorkerActor = "system:worker"

// Sources picks the source each app's configuration lives in.
type Sources interface {
	// For returns the source of app.
	For(app string) Source
}

// SourceSet is a default source and the apps that use another one.
type SourceSet struct {
	Default Source
	ByApp   map[string]Source
}

var _ Sources = SourceSet{}

// For implements Sources.
func (s SourceSet) For(app string) Source {
	if src, ok := s.ByApp[app]; ok {
		return src
	}
	return s.Default
}
