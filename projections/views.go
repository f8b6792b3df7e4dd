package projections

import (
	"time"

	"github.com/backupledger/backupledger/domain"
)

// BackupView is the JSON of one backup in every API (DESIGN §7).
type BackupView struct {
	ID            string     `json:"id"`
	App           string     `json:"app"`
	Name          string     `json:"name"`
	Description   string     `json:"description"`
	Status        string     `json:"status"`
	Origin        string     `json:"origin"`
	CreatedBy     string     `json:"created_by"`
	CreatedAt     time.Time  `json:"created_at"`
	CompletedAt   *time.Time `json:"completed_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	SchemaVersion int        `json:"schema_version"`
	SizeBytes     int64      `json:"size_bytes"`
	SHA256        *string    `json:"sha256"`
	ItemCount     int        `json:"item_count"`
	Error         *string    `json:"error"`
	// Source is the kind of source the archive came from ("kv", "dir").
	Source string `json:"source,omitempty"`
	// CorruptAt is set once the stored archive was found not to match the
	// ledger; CorruptReason says how.
	CorruptAt     *time.Time `json:"corrupt_at"`
	CorruptReason *string    `json:"corrupt_reason"`
	// VerifiedAt is when the archive last passed an integrity check.
	VerifiedAt *time.Time `json:"verified_at"`
	// Original is, for an uploaded backup, the backup its manifest names.
	Original *domain.ArchiveOrigin `json:"original,omitempty"`
}

// BackupList is the JSON of a list of backups.
type BackupList struct {
	Backups []BackupView `json:"backups"`
}

// AppView is the JSON of an app's state.
type AppView struct {
	App string `json:"app"`
	// BackupCount counts live backups of every status.
	BackupCount int `json:"backup_count"`
	// QuotaUsed counts the backups that count against the quota.
	QuotaUsed    int            `json:"quota_used"`
	QuotaLimit   int            `json:"quota_limit"`
	ByStatus     map[string]int `json:"backups_by_status"`
	LastBackupAt *time.Time     `json:"last_backup_at"`
	// LastSeq is the stream sequence of the app's last event.
	LastSeq uint64 `json:"last_seq"`
	Events  int    `json:"events"`
	// Maintenance is the app's maintenance: while it is on, the app's
	// configuration cannot be changed through the APIs.
	Maintenance MaintenanceView `json:"maintenance"`
	// ActiveRestore is the id of the restore running into the app, ""
	// when none is.
	ActiveRestore string `json:"active_restore"`
	// StoredBytes is the size of the app's backups' archives.
	StoredBytes int64 `json:"stored_bytes"`
}

// LogEntry is one line of an app's or a backup's log: who did what, when,
// with what result.
type LogEntry struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Event    string    `json:"event"`
	BackupID string    `json:"backup_id,omitempty"`
	Message  string    `json:"message"`
	Result   string    `json:"result"`
}

// LogList is the JSON of a log.
type LogList struct {
	Entries []LogEntry `json:"entries"`
}

// NewBackupView converts the domain's backup into its API form.
func NewBackupView(b domain.Backup) BackupView {
	v := BackupView{
		ID: b.ID, App: b.App, Name: b.Name, Description: b.Description, Status: string(b.Status),
		Origin: string(b.Origin), CreatedBy: b.CreatedBy, CreatedAt: b.CreatedAt.UTC(),
		ExpiresAt: b.ExpiresAt.UTC(), SchemaVersion: b.SchemaVersion, SizeBytes: b.SizeBytes, ItemCount: b.ItemCount,
	}
	if !b.CompletedAt.IsZero() {
		t := b.CompletedAt.UTC()
		v.CompletedAt = &t
	}
	if b.SHA256 != "" {
		s := b.SHA256
		v.SHA256 = &s
	}
	if b.Error != "" {
		e := b.Error
		v.Error = &e
	}
	v.Source = b.Source
	if !b.CorruptAt.IsZero() {
		t, r := b.CorruptAt.UTC(), b.CorruptReason
		v.CorruptAt, v.CorruptReason = &t, &r
	}
	if b.Original != nil {
		o := *b.Original
		v.Original = &o
	}
	if !b.VerifiedAt.IsZero() {
		t := b.VerifiedAt.UTC()
		v.VerifiedAt = &t
	}
	return v
}

// AsRequested is v as its request left it: queued, nothing of its archive
// yet. The answer to a create is that, also when a worker picked the
// backup up before the answer was written (DESIGN §7: "202 with the
// backup (queued)").
func AsRequested(v BackupView) BackupView {
	v.Status = string(domain.StatusQueued)
	v.CompletedAt, v.SHA256, v.Error, v.CorruptAt, v.CorruptReason, v.VerifiedAt = nil, nil, nil, nil, nil, nil
	v.SchemaVersion, v.SizeBytes, v.ItemCount, v.Source = 0, 0, 0, ""
	return v
}
