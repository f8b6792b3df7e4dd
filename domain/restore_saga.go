package domain

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
