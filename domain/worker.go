package domain

import (
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
