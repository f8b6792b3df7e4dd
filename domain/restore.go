package domain

import (
	"slices"
	"strings"
	"time"
)

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

// RestoreStatus is where a restore is.
type RestoreStatus string

// Restore statuses.
const (
	RestoreStatusRunning   RestoreStatus = "running"
	RestoreStatusCompleted RestoreStatus = "completed"
	RestoreStatusFailed    RestoreStatus = "failed"
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

func init() {
	for _, mk := range []func() Event{
		func() Event { return new(MaintenanceStarted) }, func() Event { return new(MaintenanceEnded) },
		func() Event { return new(RestoreRequested) }, func() Event { return new(RestorePreBackupReady) },
		func() Event { return new(RestoreArchiveVerified) }, func() Event { return new(RestoreImported) },
		func() Event { return new(RestoreCompleted) }, func() Event { return new(RestoreFailed) },
	} {
		registry[mk().EventType()] = mk
	}
}

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

// Maintenance is an app's maintenance status.
type Maintenance struct {
	On        bool
	Since     time.Time
	By        string
	Reason    string
	RestoreID string // the restore that started it, if one did
}

// StepRecord is one step of a restore as its events tell it.
type StepRecord struct {
	Step    string
	At      time.Time
	Outcome string
}

// Restore is one restore of a backup into an app, folded from its events.
type Restore struct {
	RestoreRequested
	App         string
	Status      RestoreStatus
	RequestedBy string
	RequestedAt time.Time
	EndedAt     time.Time
	// MaintenanceStarted is true once the restore has the app in
	// maintenance (started by it, or found on).
	MaintenanceStarted bool
	// MaintenanceWasOn is true when the app was in maintenance before.
	MaintenanceWasOn bool
	PreBackupID      string
	PreBackupReady   bool
	ArchiveVerified  bool
	Imported         bool
	ImportedSchema   int
	ImportedDigest   string
	Migrations       []string
	Digest           string
	FailedStep       string
	Error            string
	MaintenanceEnded bool
	Steps            []StepRecord
}

// Active reports whether the restore is still running: it is, until it
// failed, or completed and (if asked) ended the maintenance.
func (r *Restore) Active() bool {
	switch r.Status {
	case RestoreStatusFailed:
		return false
	case RestoreStatusCompleted:
		return r.AutoEndMaintenance && !r.MaintenanceEnded
	}
	return true
}

func (r *Restore) step(name, outcome string, at time.Time) {
	r.Steps = append(r.Steps, StepRecord{Step: name, At: at, Outcome: outcome})
}

// clone returns a deep copy.
func (r *Restore) clone() *Restore {
	c := *r
	c.Steps = slices.Clone(r.Steps)
	c.Migrations = slices.Clone(r.Migrations)
	return &c
}

// evolveRestore folds the maintenance and restore events into a.
func (a *App) evolveRestore(env *Envelope, ev Event) {
	at := env.Time
	switch e := ev.(type) {
	case *MaintenanceStarted:
		a.maintenance = Maintenance{On: true, Since: at, By: env.Actor, Reason: e.Reason, RestoreID: e.RestoreID}
		if r := a.restores[e.RestoreID]; r != nil {
			r.MaintenanceStarted = true
			r.step(StepMaintenance, "maintenance started", at)
		}
	case *MaintenanceEnded:
		a.maintenance = Maintenance{}
		if r := a.restores[e.RestoreID]; r != nil {
			r.MaintenanceEnded = true
			r.step(StepEndMaint, "maintenance ended", at)
		} else if r := a.restores[a.activeRestore]; r != nil && r.Status == RestoreStatusCompleted {
			// Ended by hand after the restore completed, before it ended
			// the maintenance itself: nothing is left for it to do.
			r.MaintenanceEnded = true
			r.step(StepEndMaint, "maintenance ended by "+env.Actor, at)
		}
		if r := a.restores[a.activeRestore]; r != nil && !r.Active() {
			a.activeRestore = ""
		}
	case *RestoreRequested:
		r := &Restore{RestoreRequested: *e, App: a.id, Status: RestoreStatusRunning, RequestedBy: env.Actor, RequestedAt: at}
		r.step(StepRequested, "requested by "+env.Actor, at)
		if a.maintenance.On {
			r.MaintenanceStarted, r.MaintenanceWasOn = true, true
			r.step(StepMaintenance, "already in maintenance", at)
		}
		a.restores[e.RestoreID] = r
		a.restoreOrder = append(a.restoreOrder, e.RestoreID)
		a.activeRestore = e.RestoreID
	case *BackupRequested:
		if r := a.restores[e.RestoreID]; r != nil && e.Origin == OriginPreRestore {
			r.PreBackupID = e.BackupID
		}
	case *RestorePreBackupReady:
		if r := a.restores[e.RestoreID]; r != nil {
			r.PreBackupID, r.PreBackupReady = e.BackupID, true
			r.step(StepPreBackup, "pre-restore backup "+e.BackupID+" ready", at)
		}
	case *RestoreArchiveVerified:
		if r := a.restores[e.RestoreID]; r != nil {
			r.ArchiveVerified = true
			r.step(StepVerifyArchive, "archive matches sha256 "+e.SHA256, at)
		}
	case *RestoreImported:
		if r := a.restores[e.RestoreID]; r != nil {
			r.Imported, r.ImportedSchema, r.ImportedDigest, r.Migrations = true, e.ToSchema, e.Digest, slices.Clone(e.Migrations)
			outcome := "imported"
			if len(e.Migrations) > 0 {
				outcome += ", migrated: " + strings.Join(e.Migrations, ", ")
			}
			r.step(StepImport, outcome, at)
		}
	case *RestoreCompleted:
		if r := a.restores[e.RestoreID]; r != nil {
			r.Status, r.Digest, r.EndedAt = RestoreStatusCompleted, e.Digest, at
			r.step(StepVerify, "verified, digest "+e.Digest, at)
			if a.activeRestore == r.RestoreID && !r.Active() {
				a.activeRestore = ""
			}
		}
	case *RestoreFailed:
		if r := a.restores[e.RestoreID]; r != nil {
			r.Status, r.FailedStep, r.Error, r.EndedAt = RestoreStatusFailed, e.Step, e.Reason, at
			r.step(e.Step, "failed: "+e.Reason, at)
			if a.activeRestore == r.RestoreID {
				a.activeRestore = ""
			}
		}
	}
}

// Maintenance returns the app's maintenance status.
func (a *App) Maintenance() Maintenance { return a.maintenance }

// Restore returns a copy of one of the app's restores.
func (a *App) Restore(id string) (Restore, bool) {
	r, ok := a.restores[id]
	if !ok {
		return Restore{}, false
	}
	return *r.clone(), true
}

// Restores returns copies of the app's restores, oldest first.
func (a *App) Restores() []Restore {
	out := make([]Restore, 0, len(a.restoreOrder))
	for _, id := range a.restoreOrder {
		out = append(out, *a.restores[id].clone())
	}
	return out
}

// ActiveRestore returns the id of the app's running restore, "" if none.
func (a *App) ActiveRestore() string { return a.activeRestore }

// RestoreActionKind is what the saga wants done next.
type RestoreActionKind int

// The saga's actions.
const (
	// ActNone: the restore is over; nothing to do.
	ActNone RestoreActionKind = iota
	// ActStartMaintenance: put the app in maintenance.
	ActStartMaintenance
	// ActRequestPreBackup: request the pre-restore backup.
	ActRequestPreBackup
	// ActWaitPreBackup: wait for the pre-restore backup to end.
	ActWaitPreBackup
	// ActRecordPreBackup: record that the pre-restore backup is ready.
	ActRecordPreBackup
	// ActVerifyArchive: check the archive and record it.
	ActVerifyArchive
	// ActImport: replace the app's content with the archive's.
	ActImport
	// ActVerify: compare the content's digest and complete.
	ActVerify
	// ActEndMaintenance: end the maintenance.
	ActEndMaintenance
	// ActFail: record the failure in Step with Reason.
	ActFail
)

// RestoreAction is the saga's next step for a restore.
type RestoreAction struct {
	Kind RestoreActionKind
	// Step names the step the action belongs to; it is also the last
	// part of the action's command id (restore id + step).
	Step   string
	Reason string // for ActFail
}

// NextRestoreAction is the restore saga (DESIGN §6): given the restore and
// the app it restores into, the action that comes next. It is a pure
// function of the folded state, so a runner that dies at any point and
// starts again resumes where the events say the restore is.
func NextRestoreAction(a *App, r *Restore) RestoreAction {
	if r.Status == RestoreStatusFailed {
		return RestoreAction{Kind: ActNone, Step: StepDone}
	}
	if r.Status == RestoreStatusCompleted {
		// Asked to, the restore ends the maintenance, also one that was on
		// before it (DESIGN §6, issue 5: "unless asked").
		if r.AutoEndMaintenance && !r.MaintenanceEnded && a.maintenance.On {
			return RestoreAction{Kind: ActEndMaintenance, Step: StepEndMaint}
		}
		return RestoreAction{Kind: ActNone, Step: StepDone}
	}
	switch {
	case !r.ArchiveVerified:
		// First, before the app goes into maintenance: a backup whose
		// archive cannot be read fails the restore with the app as it was.
		return RestoreAction{Kind: ActVerifyArchive, Step: StepVerifyArchive}
	case !r.MaintenanceStarted:
		return RestoreAction{Kind: ActStartMaintenance, Step: StepMaintenance}
	case r.PreRestoreBackup && !r.PreBackupReady:
		if r.PreBackupID == "" {
			return RestoreAction{Kind: ActRequestPreBackup, Step: StepPreBackup}
		}
		b, ok := a.backups[r.PreBackupID]
		switch {
		case !ok:
			return RestoreAction{Kind: ActFail, Step: StepPreBackup, Reason: "the pre-restore backup " + r.PreBackupID + " was deleted"}
		case b.Status == StatusReady:
			return RestoreAction{Kind: ActRecordPreBackup, Step: StepPreBackup}
		case b.Status == StatusFailed:
			return RestoreAction{Kind: ActFail, Step: StepPreBackup, Reason: "the pre-restore backup failed: " + b.Error}
		}
		return RestoreAction{Kind: ActWaitPreBackup, Step: StepPreBackup}
	case !r.Imported:
		return RestoreAction{Kind: ActImport, Step: StepImport}
	default:
		return RestoreAction{Kind: ActVerify, Step: StepVerify}
	}
}
