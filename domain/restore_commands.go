package domain

import (
	"strings"
)

// StartMaintenance puts an app into maintenance, by hand (RestoreID empty)
// or for a restore.
type StartMaintenance struct {
	App       string
	Reason    string
	RestoreID string
}

// EndMaintenance ends an app's maintenance, by hand or at the end of a
// restore that was asked to.
type EndMaintenance struct {
	App       string
	Reason    string
	RestoreID string
}

// RequestRestore asks for a restore of a backup (of SourceApp) into App.
// The application service fills in what it knows of the backup and of the
// server: the backup must be ready and not corrupt, and its schema version
// at most ServerSchema.
type RequestRestore struct {
	App                string
	SourceApp          string
	BackupID           string
	BackupSHA256       string
	BackupSizeBytes    int64
	BackupSchema       int
	BackupSource       string
	ServerSchema       int
	PreRestoreBackup   bool
	AutoEndMaintenance bool
	NewApp             bool
}

// RecordPreBackupReady records that a restore's pre-restore backup is
// ready.
type RecordPreBackupReady struct {
	App, RestoreID, BackupID string
}

// RecordArchiveVerified records that a restore's archive matched.
type RecordArchiveVerified struct {
	App, RestoreID, SHA256 string
}

// RecordImported records that a restore replaced the app's content.
type RecordImported struct {
	App, RestoreID string
	Items          int
	FromSchema     int
	ToSchema       int
	Migrations     []string
	Digest         string
}

// CompleteRestore records a verified restore.
type CompleteRestore struct {
	App, RestoreID, Digest string
}

// FailRestore records that a restore stopped at Step.
type FailRestore struct {
	App, RestoreID, Step, Reason string
}

// CommandName implements Command.
func (StartMaintenance) CommandName() string { return "maintenance.start" }

// CommandName implements Command.
func (EndMaintenance) CommandName() string { return "maintenance.end" }

// CommandName implements Command.
func (RequestRestore) CommandName() string { return "restore.request" }

// CommandName implements Command.
func (RecordPreBackupReady) CommandName() string { return "restore.pre_backup_ready" }

// CommandName implements Command.
func (RecordArchiveVerified) CommandName() string { return "restore.archive_verified" }

// CommandName implements Command.
func (RecordImported) CommandName() string { return "restore.imported" }

// CommandName implements Command.
func (CompleteRestore) CommandName() string { return "restore.complete" }

// CommandName implements Command.
func (FailRestore) CommandName() string { return "restore.fail" }

// AppID implements Command.
func (c StartMaintenance) AppID() string { return c.App }

// AppID implements Command.
func (c EndMaintenance) AppID() string { return c.App }

// AppID implements Command.
func (c RequestRestore) AppID() string { return c.App }

// AppID implements Command.
func (c RecordPreBackupReady) AppID() string { return c.App }

// AppID implements Command.
func (c RecordArchiveVerified) AppID() string { return c.App }

// AppID implements Command.
func (c RecordImported) AppID() string { return c.App }

// AppID implements Command.
func (c CompleteRestore) AppID() string { return c.App }

// AppID implements Command.
func (c FailRestore) AppID() string { return c.App }

func maintenanceReason(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxDescriptionLen || strings.ContainsAny(s, "\x00") {
		return "", Errorf(CodeInvalidArgument, "reason must be at most %d bytes", MaxDescriptionLen)
	}
	return strings.ToValidUTF8(s, "\uFFFD"), nil
}

func (c StartMaintenance) decide(a *App, _ *decision) (Event, error) {
	reason, err := maintenanceReason(c.Reason)
	if err != nil {
		return nil, err
	}
	if c.RestoreID != "" {
		r, err := running(a, c.RestoreID)
		if err != nil {
			return nil, err
		}
		if r.MaintenanceStarted {
			return nil, Errorf(CodeAlreadyMaintenance, "restore %s has the app in maintenance already", c.RestoreID)
		}
		if reason == "" {
			reason = "restore " + c.RestoreID
		}
	} else if reason == "" {
		return nil, Errorf(CodeInvalidArgument, "a reason is required")
	}
	if a.maintenance.On {
		return nil, Errorf(CodeAlreadyMaintenance, "app %s is in maintenance since %s: %s", a.id, a.maintenance.Since.UTC().Format("2006-01-02T15:04:05Z"), a.maintenance.Reason)
	}
	return &MaintenanceStarted{Reason: reason, RestoreID: c.RestoreID}, nil
}

func (c EndMaintenance) decide(a *App, _ *decision) (Event, error) {
	reason, err := maintenanceReason(c.Reason)
	if err != nil {
		return nil, err
	}
	if !a.maintenance.On {
		return nil, Errorf(CodeNotInMaintenance, "app %s is not in maintenance", a.id)
	}
	if id := a.activeRestore; id != "" && id != c.RestoreID {
		if r := a.restores[id]; r != nil && r.Status == RestoreStatusRunning {
			return nil, Errorf(CodeRestoreInProgress, "restore %s of app %s is running; maintenance ends when it is over", id, a.id)
		}
	}
	if c.RestoreID != "" {
		r, ok := a.restores[c.RestoreID]
		if !ok || r.Status != RestoreStatusCompleted || !r.AutoEndMaintenance {
			return nil, Errorf(CodeRestoreInProgress, "restore %s may not end the maintenance", c.RestoreID)
		}
		if reason == "" {
			reason = "restore " + c.RestoreID + " completed"
		}
	}
	return &MaintenanceEnded{Reason: reason, RestoreID: c.RestoreID}, nil
}

func (c RequestRestore) decide(a *App, d *decision) (Event, error) {
	if id := a.activeRestore; id != "" {
		return nil, Errorf(CodeRestoreInProgress, "restore %s of app %s is still running", id, a.id)
	}
	if err := ValidateAppID(c.SourceApp); err != nil {
		return nil, err
	}
	if c.BackupID == "" || !IsLowerHex(c.BackupSHA256, 64) || c.BackupSizeBytes < 0 {
		return nil, Errorf(CodeInvalidArgument, "a restore needs a ready backup with its size and SHA-256")
	}
	if c.ServerSchema > 0 && c.BackupSchema > c.ServerSchema {
		return nil, Errorf(CodeBackupNewer, "backup %s has schema version %d; this server reads up to %d", c.BackupID, c.BackupSchema, c.ServerSchema)
	}
	if c.PreRestoreBackup {
		if q := a.Quota(); q >= d.rules.MaxBackups {
			return nil, Errorf(CodeQuotaExceeded, "app %s already holds %d backups, the most allowed: no room for the pre-restore backup; delete one first, or restore without it", a.id, q)
		}
	}
	return &RestoreRequested{
		RestoreID: d.newID(), SourceApp: c.SourceApp, BackupID: c.BackupID, BackupSHA256: c.BackupSHA256,
		BackupSizeBytes: c.BackupSizeBytes, BackupSchema: c.BackupSchema, BackupSource: c.BackupSource,
		PreRestoreBackup: c.PreRestoreBackup, AutoEndMaintenance: c.AutoEndMaintenance, NewApp: c.NewApp,
	}, nil
}

// running returns a running restore of a, or an error.
func running(a *App, id string) (*Restore, error) {
	r, ok := a.restores[id]
	if !ok {
		return nil, Errorf(CodeNotFound, "restore %s not found in app %s", id, a.id)
	}
	if r.Status != RestoreStatusRunning {
		return nil, Errorf(CodeRestoreInProgress, "restore %s is %s", id, r.Status)
	}
	return r, nil
}

func (c RecordPreBackupReady) decide(a *App, _ *decision) (Event, error) {
	r, err := running(a, c.RestoreID)
	if err != nil {
		return nil, err
	}
	b, ok := a.backups[c.BackupID]
	if !ok || b.Status != StatusReady || r.PreBackupID != c.BackupID || r.PreBackupReady {
		return nil, Errorf(CodeBackupStateConflict, "backup %s is not the ready pre-restore backup of restore %s", c.BackupID, c.RestoreID)
	}
	return &RestorePreBackupReady{RestoreID: c.RestoreID, BackupID: c.BackupID}, nil
}

func (c RecordArchiveVerified) decide(a *App, _ *decision) (Event, error) {
	r, err := running(a, c.RestoreID)
	if err != nil {
		return nil, err
	}
	if r.ArchiveVerified || c.SHA256 != r.BackupSHA256 {
		return nil, Errorf(CodeBackupStateConflict, "restore %s: archive not to be verified now", c.RestoreID)
	}
	return &RestoreArchiveVerified{RestoreID: c.RestoreID, SHA256: c.SHA256}, nil
}

func (c RecordImported) decide(a *App, _ *decision) (Event, error) {
	r, err := running(a, c.RestoreID)
	if err != nil {
		return nil, err
	}
	if !r.ArchiveVerified || r.Imported || !IsLowerHex(c.Digest, 64) {
		return nil, Errorf(CodeBackupStateConflict, "restore %s: import not expected now", c.RestoreID)
	}
	return &RestoreImported{RestoreID: c.RestoreID, Items: c.Items, FromSchema: c.FromSchema, ToSchema: c.ToSchema,
		Migrations: c.Migrations, Digest: c.Digest}, nil
}

func (c CompleteRestore) decide(a *App, _ *decision) (Event, error) {
	r, err := running(a, c.RestoreID)
	if err != nil {
		return nil, err
	}
	if !r.Imported || !IsLowerHex(c.Digest, 64) {
		return nil, Errorf(CodeBackupStateConflict, "restore %s cannot complete before its import is verified", c.RestoreID)
	}
	return &RestoreCompleted{RestoreID: c.RestoreID, Digest: c.Digest, PreRestoreBackup: r.PreBackupID}, nil
}

func (c FailRestore) decide(a *App, _ *decision) (Event, error) {
	r, err := running(a, c.RestoreID)
	if err != nil {
		return nil, err
	}
	reason := strings.ToValidUTF8(clip(c.Reason, MaxDescriptionLen), "\uFFFD")
	if reason == "" {
		reason = "unknown"
	}
	return &RestoreFailed{RestoreID: c.RestoreID, Step: c.Step, Reason: reason, PreRestoreBackup: r.PreBackupID}, nil
}

// RestoreRequest is what a caller asks for: a backup of App restored into
// TargetApp (App itself when empty).
type RestoreRequest struct {
	App                string
	BackupID           string
	TargetApp          string
	PreRestoreBackup   bool
	AutoEndMaintenance bool
	Password           string
}
