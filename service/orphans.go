package service

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// Orphans reconciles the archive store with the ledger: an object that no
// live backup owns is removed after a grace period (archive.orphan_removed),
// and a ready backup whose object is gone is marked corrupt.
type Orphans struct {
	sweep
	archives ArchiveLister
	deleter  ArchiveDeleter
	// Grace is how old an object without a live backup must be before it
	// is removed: an upload is stored before its backup is recorded.
	Grace time.Duration
}

// NewOrphans returns the orphan sweep; grace <= 0 means one hour.
func NewOrphans(ledger *Ledger, states States, apps domain.AppLister, archives ArchiveLister, deleter ArchiveDeleter, clock domain.Clock, grace time.Duration, log *slog.Logger) *Orphans {
	if grace <= 0 {
		grace = time.Hour
	}
	return &Orphans{sweep: newSweep(ledger, states, apps, clock, log), archives: archives, deleter: deleter, Grace: grace}
}

// Sweep lists the archives, then the ledger, and reconciles them
// (PlanOrphans). The objects are listed first: a backup that completes
// meanwhile is live by the time the ledger is read. A missing archive is
// confirmed by a second look before its backup is marked corrupt. Errors
// of one object are logged and the sweep goes on; the first is returned.
func (o *Orphans) Sweep(ctx context.Context) (domain.OrphanReport, error) {
	var rep domain.OrphanReport
	listed := o.clock.Now()
	objects, err := o.archives.ListArchives(ctx)
	if err != nil {
		return rep, fmt.Errorf("list archives: %w", err)
	}
	var owners domain.ArchiveOwners
	for _, app := range o.apps.Apps() {
		o.states.ReadApp(app, owners.Add)
	}
	plan := domain.PlanOrphans(&owners, objects, listed, o.Grace)
	rep.Young = plan.Young
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, obj := range plan.NoApp {
		o.log.Warn("orphaned archive names no app; left in place", "backup_id", obj.BackupID, "app", obj.App)
	}
	for _, cmd := range plan.Remove {
		removed, err := o.remove(ctx, cmd)
		if err != nil {
			o.log.Warn("remove orphaned archive", "app", cmd.App, "backup_id", cmd.BackupID, "err", err)
			note(fmt.Errorf("remove orphaned archive %s of app %s: %w", cmd.BackupID, cmd.App, err))
			continue
		}
		if removed {
			rep.Removed++
		}
	}
	for _, m := range plan.Missing {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		ok, err := o.archives.HasArchive(ctx, m.BackupID)
		if err != nil {
			note(fmt.Errorf("look for archive %s: %w", m.BackupID, err))
			continue
		}
		if ok {
			continue
		}
		o.log.Error("archive of a ready backup is missing", "app", m.App, "backup_id", m.BackupID)
		marked, err := o.ledger.MarkCorrupt(ctx, m.App, m.BackupID, "archive missing from the object store", domain.OrphanActor)
		switch {
		case marked:
			rep.Missing++
		case err == nil, domain.Code(err) == domain.CodeNotFound:
		default:
			note(fmt.Errorf("mark backup %s of app %s corrupt: %w", m.BackupID, m.App, err))
		}
	}
	// What archives that never completed left behind (their process died
	// while writing them), once older than the grace period.
	n, err := o.archives.RemoveUnfinished(ctx, listed.Add(-o.Grace))
	rep.Unfinished = n
	if n > 0 {
		o.log.Info("removed the leftovers of unfinished archives", "count", n)
	}
	if err != nil {
		note(fmt.Errorf("remove unfinished archives: %w", err))
	}
	return rep, first
}

// remove records an orphan and deletes its object. The event comes first:
// a crash in between leaves an object that the next sweep finds again and
// deletes (its command id answers the first event).
func (o *Orphans) remove(ctx context.Context, cmd domain.RemoveOrphan) (bool, error) {
	// A backup deleted just now has its archive deleted by the same
	// command: look again, so that this is not recorded as an orphan.
	if ok, err := o.archives.HasArchive(ctx, cmd.BackupID); err != nil || !ok {
		return false, err
	}
	if _, err := o.ledger.Execute(ctx, cmd, domain.Meta{Actor: domain.OrphanActor, CommandID: cmd.BackupID + ".orphan"}); err != nil {
		return false, err
	}
	o.log.Info("orphaned archive removed", "app", cmd.App, "backup_id", cmd.BackupID, "size_bytes", cmd.SizeBytes, "reason", cmd.Reason)
	return true, o.deleter.DeleteArchive(ctx, cmd.BackupID)
}
