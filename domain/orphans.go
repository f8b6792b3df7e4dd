package domain

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// TypeArchiveOrphanRemoved records that a stored archive without a live
// backup (no ledger entry, or one that failed, was deleted or expired) was
// removed. Registered explicitly; never renamed.
const TypeArchiveOrphanRemoved = "archive.orphan_removed"

// OrphanActor is the actor of the orphan sweep's events.
const OrphanActor = "system:orphans"

// ArchiveOrphanRemoved records the removal of an orphaned archive object.
type ArchiveOrphanRemoved struct {
	BackupID  string    `json:"backup_id"`
	SizeBytes int64     `json:"size_bytes"`
	StoredAt  time.Time `json:"stored_at"`
	// Reason says why no live backup owns it.
	Reason string `json:"reason"`
}

// EventType implements Event.
func (*ArchiveOrphanRemoved) EventType() string { return TypeArchiveOrphanRemoved }

func init() {
	registry[TypeArchiveOrphanRemoved] = func() Event { return new(ArchiveOrphanRemoved) }
}

// RemoveOrphan records that the archive object BackupID of App has no live
// backup. It is refused while a queued, running or ready backup has that id.
type RemoveOrphan struct {
	App       string
	BackupID  string
	SizeBytes int64
	StoredAt  time.Time
	Reason    string
}

// CommandName implements Command.
func (RemoveOrphan) CommandName() string { return "archive.remove_orphan" }

// AppID implements Command.
func (c RemoveOrphan) AppID() string { return c.App }

func (c RemoveOrphan) decide(a *App, _ *decision) (Event, error) {
	if c.BackupID == "" || len(c.BackupID) > 64 {
		return nil, Errorf(CodeInvalidArgument, "an orphan needs the backup id of its object")
	}
	if b, ok := a.backups[c.BackupID]; ok && b.Status != StatusFailed {
		return nil, Errorf(CodeBackupStateConflict, "backup %s is %s: its archive is no orphan", b.ID, b.Status)
	}
	return &ArchiveOrphanRemoved{BackupID: c.BackupID, SizeBytes: c.SizeBytes, StoredAt: c.StoredAt.UTC(), Reason: clip(c.Reason, 500)}, nil
}

// ArchiveObject is one stored archive as the object store lists it.
type ArchiveObject struct {
	BackupID string
	// App is the app its metadata names ("" if none).
	App       string
	SizeBytes int64
	StoredAt  time.Time
}

// ArchiveLister lists the stored archives.
type ArchiveLister interface {
	// ListArchives returns every complete archive object.
	ListArchives(ctx context.Context) ([]ArchiveObject, error)
	// HasArchive reports whether the archive of backupID is stored.
	HasArchive(ctx context.Context, backupID string) (bool, error)
}

// OrphanReport is what one orphan sweep did.
type OrphanReport struct {
	// Removed are the orphaned objects removed, Missing the ready backups
	// marked corrupt because their archive is gone.
	Removed, Missing int
	// Young are the orphans left for a later sweep because they are
	// younger than the grace period.
	Young int
}

// Orphans reconciles the archive store with the ledger: an object that no
// live backup owns is removed after a grace period (archive.orphan_removed),
// and a ready backup whose object is gone is marked corrupt.
type Orphans struct {
	ledger   *Ledger
	states   States
	apps     AppLister
	archives ArchiveLister
	deleter  ArchiveDeleter
	clock    Clock
	// Grace is how old an object without a live backup must be before it
	// is removed: an upload is stored before its backup is recorded.
	Grace time.Duration
	log   *slog.Logger
}

// NewOrphans returns the orphan sweep; grace <= 0 means one hour.
func NewOrphans(ledger *Ledger, states States, apps AppLister, archives ArchiveLister, deleter ArchiveDeleter, clock Clock, grace time.Duration, log *slog.Logger) *Orphans {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if grace <= 0 {
		grace = time.Hour
	}
	return &Orphans{ledger: ledger, states: states, apps: apps, archives: archives, deleter: deleter, clock: clock, Grace: grace, log: log}
}

// owner is what the ledger knows of a backup id.
type owner struct {
	app    string
	status Status // "" when deleted or expired
	// completedAt of a ready backup that is not marked corrupt.
	completedAt time.Time
	corrupt     bool
}

// Sweep lists the archives, then the ledger, and reconciles them. The
// objects are listed first: a backup that completes meanwhile is live by
// the time the ledger is read. A missing archive is confirmed by a second
// look before its backup is marked corrupt. Errors of one object are
// logged and the sweep goes on; the first is returned.
func (o *Orphans) Sweep(ctx context.Context) (OrphanReport, error) {
	var rep OrphanReport
	listed := o.clock.Now()
	objects, err := o.archives.ListArchives(ctx)
	if err != nil {
		return rep, fmt.Errorf("list archives: %w", err)
	}
	owners := map[string]owner{}
	for _, app := range o.apps.Apps() {
		o.states.ReadApp(app, func(a *App) {
			for id := range a.deleted {
				owners[id] = owner{app: app}
			}
			for _, b := range a.backups {
				owners[b.ID] = owner{app: app, status: b.Status, completedAt: b.CompletedAt, corrupt: !b.CorruptAt.IsZero()}
			}
		})
	}
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	stored := make(map[string]bool, len(objects))
	for _, obj := range objects {
		stored[obj.BackupID] = true
		own, known := owners[obj.BackupID]
		if known && own.status != "" && own.status != StatusFailed {
			continue
		}
		if listed.Sub(obj.StoredAt) < o.Grace {
			rep.Young++
			continue
		}
		app, reason := own.app, "no backup of this id is in the ledger"
		switch {
		case !known:
			app = obj.App
		case own.status == StatusFailed:
			reason = "its backup failed"
		default:
			reason = "its backup was deleted or expired"
		}
		if ValidateAppID(app) != nil {
			o.log.Warn("orphaned archive names no app; left in place", "backup_id", obj.BackupID, "app", app)
			continue
		}
		removed, err := o.remove(ctx, app, obj, reason)
		if err != nil {
			o.log.Warn("remove orphaned archive", "app", app, "backup_id", obj.BackupID, "err", err)
			note(fmt.Errorf("remove orphaned archive %s of app %s: %w", obj.BackupID, app, err))
			continue
		}
		if removed {
			rep.Removed++
		}
	}
	for id, own := range owners {
		if own.status != StatusReady || own.corrupt || stored[id] || !own.completedAt.Before(listed) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		ok, err := o.archives.HasArchive(ctx, id)
		if err != nil {
			note(fmt.Errorf("look for archive %s: %w", id, err))
			continue
		}
		if ok {
			continue
		}
		o.log.Error("archive of a ready backup is missing", "app", own.app, "backup_id", id)
		marked, err := o.ledger.markCorrupt(ctx, own.app, id, "archive missing from the object store", OrphanActor)
		switch {
		case marked:
			rep.Missing++
		case err == nil, Code(err) == CodeNotFound:
		default:
			note(fmt.Errorf("mark backup %s of app %s corrupt: %w", id, own.app, err))
		}
	}
	return rep, first
}

// remove records an orphan and deletes its object. The event comes first:
// a crash in between leaves an object that the next sweep finds again and
// deletes (its command id answers the first event).
func (o *Orphans) remove(ctx context.Context, app string, obj ArchiveObject, reason string) (bool, error) {
	// A backup deleted just now has its archive deleted by the same
	// command: look again, so that this is not recorded as an orphan.
	if ok, err := o.archives.HasArchive(ctx, obj.BackupID); err != nil || !ok {
		return false, err
	}
	_, err := o.ledger.Execute(ctx, RemoveOrphan{App: app, BackupID: obj.BackupID, SizeBytes: obj.SizeBytes, StoredAt: obj.StoredAt, Reason: reason},
		Meta{Actor: OrphanActor, CommandID: obj.BackupID + ".orphan"})
	if err != nil {
		return false, err
	}
	o.log.Info("orphaned archive removed", "app", app, "backup_id", obj.BackupID, "size_bytes", obj.SizeBytes, "reason", reason)
	return true, o.deleter.DeleteArchive(ctx, obj.BackupID)
}
