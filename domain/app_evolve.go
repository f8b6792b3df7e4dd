package domain

import (
	"slices"
	"strings"
	"time"
)

// Apply folds one event into the state. seq is its stream sequence, hash the
// SHA-256 of its raw body. Apply never fails and never validates: the
// decision was made before the event was written. ev may be nil for an event
// type this process does not know; the chain still advances.
func (a *App) Apply(seq uint64, hash string, env *Envelope, ev Event) {
	a.seq = seq
	a.lastHash = hash
	a.events++
	a.remember(CommandKey(env.Actor, env.CommandID), CommandRecord{Seq: seq, Type: env.Type, BackupID: BackupID(ev), RestoreID: RestoreID(ev), Hash: env.CommandHash})
	if a.events == 1 {
		a.firstAt = env.Time
	}
	a.evolve(seq, env, ev)
}

// evolve is the app's evolve: every event of an app's subject, and what it
// changes, in one switch. It never fails and never validates.
func (a *App) evolve(seq uint64, env *Envelope, ev Event) {
	at := env.Time
	switch e := ev.(type) {
	// Backups.
	case *BackupRequested:
		a.backups[e.BackupID] = &Backup{
			ID: e.BackupID, App: a.id, Name: e.Name, Description: e.Description,
			Status: StatusQueued, Origin: e.Origin, CreatedBy: env.Actor,
			CreatedAt: at, ExpiresAt: e.ExpiresAt, Seq: seq,
		}
		// Clocks of several processes may disagree: the interval counts
		// from the latest manual request, never an earlier one.
		if e.Origin == OriginManual {
			if at.After(a.lastManualAt) {
				a.lastManualAt = at
			}
			a.recentManual = append(a.recentManual, manualRequest{backupID: e.BackupID, at: at})
			if len(a.recentManual) > recentManualKept {
				a.recentManual = a.recentManual[1:]
			}
		}
		// A nightly backup is its night's latest try.
		if e.Night != "" {
			a.night.Night, a.night.Try, a.night.BackupID, a.night.Skipped = e.Night, e.Try, e.BackupID, ""
		}
		// A pre-restore backup belongs to its restore.
		if r := a.restores[e.RestoreID]; r != nil && e.Origin == OriginPreRestore {
			r.PreBackupID = e.BackupID
		}
	case *BackupStarted:
		if b := a.backups[e.BackupID]; b != nil {
			b.Status = StatusRunning
			b.Attempt = e.Attempt
			b.StartedAt = at
		}
	case *BackupCompleted:
		if b := a.backups[e.BackupID]; b != nil {
			b.Status = StatusReady
			b.CompletedAt = at
			b.SizeBytes = e.SizeBytes
			b.SHA256 = e.SHA256
			b.ItemCount = e.ItemCount
			b.SchemaVersion = e.SchemaVersion
			b.Source = e.Source
			b.Error = ""
			a.lastReadyAt = at
		}
	case *BackupUploaded:
		orig := e.Original
		a.backups[e.BackupID] = &Backup{
			ID: e.BackupID, App: a.id, Name: e.Name, Description: e.Description,
			Status: StatusReady, Origin: OriginUpload, CreatedBy: env.Actor,
			CreatedAt: at, CompletedAt: at, ExpiresAt: e.ExpiresAt, Seq: seq,
			SizeBytes: e.SizeBytes, SHA256: e.SHA256, ItemCount: e.ItemCount,
			SchemaVersion: e.SchemaVersion, Source: e.Source, Original: &orig,
		}
	case *BackupCorrupted:
		if b := a.backups[e.BackupID]; b != nil {
			b.CorruptAt = at
			b.CorruptReason = e.Reason
		}
	case *BackupFailed:
		if b := a.backups[e.BackupID]; b != nil {
			b.Status = StatusFailed
			b.CompletedAt = at
			b.Error = e.Reason
		}
		// Backups fail by the system alone: a failed manual backup does
		// not count toward the minimum interval.
		a.forgetManual(e.BackupID)
	case *BackupRenamed:
		if b := a.backups[e.BackupID]; b != nil {
			b.Name = e.Name
		}
	case *BackupDeleted:
		delete(a.backups, e.BackupID)
		a.deleted[e.BackupID] = true
	case *BackupExpired:
		delete(a.backups, e.BackupID)
		a.deleted[e.BackupID] = true
	case *BackupVerified:
		if b := a.backups[e.BackupID]; b != nil {
			b.VerifiedAt = at
		}
	case *ArchiveOrphanRemoved:
		// Recorded for the audit log: no live backup owned the archive,
		// so the app's state does not change.

	// Nightly backups.
	case *ScheduleSet:
		a.night.Schedule = &Schedule{Enabled: e.Enabled, Time: e.Time, TimeZone: e.TimeZone}
		a.night.ScheduledAt = at
	case *NightlySkipped:
		a.night.Night, a.night.Try, a.night.BackupID, a.night.Skipped = e.Night, e.Try, "", e.Reason

	// Maintenance and restores.
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

// forgetManual drops the manual request of backup id from the ones the
// minimum interval is measured from, and measures it again from the latest
// of the others.
func (a *App) forgetManual(id string) {
	i := slices.IndexFunc(a.recentManual, func(r manualRequest) bool { return r.backupID == id })
	if i < 0 {
		return
	}
	a.recentManual = slices.Delete(a.recentManual, i, i+1)
	a.lastManualAt = time.Time{}
	for _, r := range a.recentManual {
		if r.at.After(a.lastManualAt) {
			a.lastManualAt = r.at
		}
	}
}
