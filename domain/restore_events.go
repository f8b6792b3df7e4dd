package domain

// Maintenance and restore event types (DESIGN §6). All are events of the
// target app's subject. Registered explicitly; never renamed.
const (
	TypeMaintenanceStarted     = "maintenance.started"
	TypeMaintenanceEnded       = "maintenance.ended"
	TypeRestoreRequested       = "restore.requested"
	TypeRestorePreBackup       = "restore.pre_backup_ready"
	TypeRestoreArchiveVerified = "restore.archive_verified"
	TypeRestoreImported        = "restore.imported"
	TypeRestoreCompleted       = "restore.completed"
	TypeRestoreFailed          = "restore.failed"
)

// Restore steps, in order. A restore.failed names the step that failed.
const (
	StepRequested     = "requested"
	StepMaintenance   = "maintenance"
	StepPreBackup     = "pre_restore_backup"
	StepVerifyArchive = "verify_archive"
	StepImport        = "import"
	StepVerify        = "verify"
	StepEndMaint      = "end_maintenance"
	StepDone          = "done"
)

// MaintenanceStarted records that an app went into maintenance: its
// configuration cannot be changed through the service.
type MaintenanceStarted struct {
	Reason    string `json:"reason"`
	RestoreID string `json:"restore_id,omitempty"`
}

// MaintenanceEnded records the end of an app's maintenance.
type MaintenanceEnded struct {
	Reason    string `json:"reason,omitempty"`
	RestoreID string `json:"restore_id,omitempty"`
}

// RestoreRequested records a restore of a backup (of SourceApp) into this
// app, and what the backup is: the runner checks the archive against it.
type RestoreRequested struct {
	RestoreID          string `json:"restore_id"`
	SourceApp          string `json:"source_app"`
	BackupID           string `json:"backup_id"`
	BackupSHA256       string `json:"backup_sha256"`
	BackupSizeBytes    int64  `json:"backup_size_bytes"`
	BackupSchema       int    `json:"backup_schema_version"`
	BackupSource       string `json:"backup_source"`
	PreRestoreBackup   bool   `json:"pre_restore_backup"`
	AutoEndMaintenance bool   `json:"auto_end_maintenance"`
	// NewApp is set when the target app did not exist before.
	NewApp bool `json:"new_app,omitempty"`
}

// RestorePreBackupReady records that the pre-restore backup is ready.
type RestorePreBackupReady struct {
	RestoreID string `json:"restore_id"`
	BackupID  string `json:"backup_id"`
}

// RestoreArchiveVerified records that the backup's archive matched its
// recorded SHA-256 and size just before the import.
type RestoreArchiveVerified struct {
	RestoreID string `json:"restore_id"`
	SHA256    string `json:"sha256"`
}

// RestoreImported records that the target's content was replaced by the
// archive's (migrated from FromSchema to ToSchema when they differ).
type RestoreImported struct {
	RestoreID  string   `json:"restore_id"`
	Items      int      `json:"items"`
	FromSchema int      `json:"from_schema_version"`
	ToSchema   int      `json:"to_schema_version"`
	Migrations []string `json:"migrations,omitempty"`
	// Digest is the ContentDigest the app's content must have now: that
	// of the imported (migrated) items.
	Digest string `json:"digest"`
}

// RestoreCompleted records a verified restore: the digest of the target's
// content equals the expected one.
type RestoreCompleted struct {
	RestoreID        string `json:"restore_id"`
	Digest           string `json:"digest"`
	PreRestoreBackup string `json:"pre_restore_backup_id,omitempty"`
}

// RestoreFailed records why and where a restore stopped. The app stays in
// maintenance; PreRestoreBackup names the backup to roll back with.
type RestoreFailed struct {
	RestoreID        string `json:"restore_id"`
	Step             string `json:"step"`
	Reason           string `json:"reason"`
	PreRestoreBackup string `json:"pre_restore_backup_id,omitempty"`
}

// EventType implements Event.
func (*MaintenanceStarted) EventType() string { return TypeMaintenanceStarted }

// EventType implements Event.
func (*MaintenanceEnded) EventType() string { return TypeMaintenanceEnded }

// EventType implements Event.
func (*RestoreRequested) EventType() string { return TypeRestoreRequested }

// EventType implements Event.
func (*RestorePreBackupReady) EventType() string { return TypeRestorePreBackup }

// EventType implements Event.
func (*RestoreArchiveVerified) EventType() string { return TypeRestoreArchiveVerified }

// EventType implements Event.
func (*RestoreImported) EventType() string { return TypeRestoreImported }

// EventType implements Event.
func (*RestoreCompleted) EventType() string { return TypeRestoreCompleted }

// EventType implements Event.
func (*RestoreFailed) EventType() string { return TypeRestoreFailed }

// RestoreID returns the restore an event belongs to, "" for others.
func RestoreID(ev Event) string {
	switch e := ev.(type) {
	case *RestoreRequested:
		return e.RestoreID
	case *RestorePreBackupReady:
		return e.RestoreID
	case *RestoreArchiveVerified:
		return e.RestoreID
	case *RestoreImported:
		return e.RestoreID
	case *RestoreCompleted:
		return e.RestoreID
	case *RestoreFailed:
		return e.RestoreID
	case *MaintenanceStarted:
		return e.RestoreID
	case *MaintenanceEnded:
		return e.RestoreID
	case *BackupRequested:
		return e.RestoreID
	}
	return ""
}
