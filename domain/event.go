package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Envelope is the JSON body of one event on the stream, as documented in
// docs/events.md. It is never changed incompatibly.
type Envelope struct {
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Version       int       `json:"version"`
	App           string    `json:"app"`
	Time          time.Time `json:"time"`
	Actor         string    `json:"actor"`
	CommandID     string    `json:"command_id"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	CausationID   string    `json:"causation_id,omitempty"`
	// CommandHash is the fingerprint of the request (RequestHash) of a
	// command whose id is the client's idempotency key, so that the same
	// key with another request is told from a retry; absent otherwise.
	CommandHash string          `json:"command_hash,omitempty"`
	PrevHash    string          `json:"prev_hash"`
	Data        json.RawMessage `json:"data"`
}

// Event is the data of one event type.
type Event interface {
	// EventType is the stable registered name, e.g. "backup.requested".
	EventType() string
}

// Event type names. Registered explicitly; never renamed.
const (
	TypeBackupRequested = "backup.requested"
	TypeBackupStarted   = "backup.started"
	TypeBackupCompleted = "backup.completed"
	TypeBackupFailed    = "backup.failed"
	TypeBackupRenamed   = "backup.renamed"
	TypeBackupDeleted   = "backup.deleted"
	TypeBackupUploaded  = "backup.uploaded"
	TypeBackupCorrupted = "backup.corrupted"
)

// HashEvent returns the hex SHA-256 of an event's raw message body: the
// prev_hash the next event of the same app carries.
func HashEvent(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// Origin says why a backup exists.
type Origin string

// Origins of DESIGN §1.
const (
	OriginManual     Origin = "manual"
	OriginNightly    Origin = "nightly"
	OriginPreRestore Origin = "pre_restore"
	OriginUpload     Origin = "upload"
)

// Valid reports whether o is a known origin.
func (o Origin) Valid() bool {
	switch o {
	case OriginManual, OriginNightly, OriginPreRestore, OriginUpload:
		return true
	}
	return false
}

// BackupRequested records that a backup was asked for; it is then queued.
type BackupRequested struct {
	BackupID    string    `json:"backup_id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Origin      Origin    `json:"origin"`
	ExpiresAt   time.Time `json:"expires_at"`
	// RestoreID names the restore a pre-restore backup is made for.
	RestoreID string `json:"restore_id,omitempty"`
	// Night and Try name the night (YYYY-MM-DD) and the try of a nightly
	// backup (origin nightly only).
	Night string `json:"night,omitempty"`
	Try   int    `json:"try,omitempty"`
}

// BackupStarted records that a worker began (or, with a higher attempt,
// began again) to write the backup's archive.
type BackupStarted struct {
	BackupID string `json:"backup_id"`
	Attempt  int    `json:"attempt"`
	Worker   string `json:"worker,omitempty"`
}

// BackupCompleted records that the archive is stored and the backup ready.
type BackupCompleted struct {
	BackupID      string `json:"backup_id"`
	SizeBytes     int64  `json:"size_bytes"`
	SHA256        string `json:"sha256"`
	ItemCount     int    `json:"item_count"`
	SchemaVersion int    `json:"schema_version"`
	// Source is the kind of source the archive was exported from.
	Source string `json:"source,omitempty"`
}

// BackupFailed records that a backup could not be made, and why.
type BackupFailed struct {
	BackupID string `json:"backup_id"`
	Reason   string `json:"reason"`
}

// BackupRenamed records a new name.
type BackupRenamed struct {
	BackupID     string `json:"backup_id"`
	Name         string `json:"name"`
	PreviousName string `json:"previous_name"`
}

// BackupDeleted records that a backup left the list; its archive is removed.
type BackupDeleted struct {
	BackupID string `json:"backup_id"`
}

// BackupUploaded records an archive brought in from outside: a new backup,
// ready at once, with origin upload. It is not restored.
type BackupUploaded struct {
	BackupID      string    `json:"backup_id"`
	Name          string    `json:"name"`
	Description   string    `json:"description,omitempty"`
	ExpiresAt     time.Time `json:"expires_at"`
	SizeBytes     int64     `json:"size_bytes"`
	SHA256        string    `json:"sha256"`
	ItemCount     int       `json:"item_count"`
	SchemaVersion int       `json:"schema_version"`
	Source        string    `json:"source"`
	// Original names the backup the archive was made of, as its manifest
	// says (possibly of another app or installation).
	Original ArchiveOrigin `json:"original"`
}

// ArchiveOrigin is what an uploaded archive's manifest says about the backup
// it was made of.
type ArchiveOrigin struct {
	App       string    `json:"app"`
	BackupID  string    `json:"backup_id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// BackupCorrupted records that a backup's stored archive does not match
// what the ledger recorded of it.
type BackupCorrupted struct {
	BackupID string `json:"backup_id"`
	Reason   string `json:"reason"`
}

// EventType implements Event.
func (*BackupUploaded) EventType() string { return TypeBackupUploaded }

// EventType implements Event.
func (*BackupCorrupted) EventType() string { return TypeBackupCorrupted }

// EventType implements Event.
func (*BackupRequested) EventType() string { return TypeBackupRequested }

// EventType implements Event.
func (*BackupStarted) EventType() string { return TypeBackupStarted }

// EventType implements Event.
func (*BackupCompleted) EventType() string { return TypeBackupCompleted }

// EventType implements Event.
func (*BackupFailed) EventType() string { return TypeBackupFailed }

// EventType implements Event.
func (*BackupRenamed) EventType() string { return TypeBackupRenamed }

// EventType implements Event.
func (*BackupDeleted) EventType() string { return TypeBackupDeleted }

// BackupID returns the backup an event concerns, or "".
func BackupID(ev Event) string {
	switch e := ev.(type) {
	case *BackupRequested:
		return e.BackupID
	case *BackupStarted:
		return e.BackupID
	case *BackupCompleted:
		return e.BackupID
	case *BackupFailed:
		return e.BackupID
	case *BackupRenamed:
		return e.BackupID
	case *BackupDeleted:
		return e.BackupID
	case *BackupUploaded:
		return e.BackupID
	case *BackupCorrupted:
		return e.BackupID
	case *BackupExpired:
		return e.BackupID
	case *BackupVerified:
		return e.BackupID
	}
	return ""
}
