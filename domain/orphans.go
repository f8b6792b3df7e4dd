package domain

import (
	"slices"
	"strings"
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

// OrphanReport is what one orphan sweep did.
type OrphanReport struct {
	// Removed are the orphaned objects removed, Missing the ready backups
	// marked corrupt because their archive is gone.
	Removed, Missing int
	// Young are the orphans left for a later sweep because they are
	// younger than the grace period.
	Young int
	// Unfinished are the archives never completed (an upload or backup
	// whose process died) whose leftovers were removed from the store.
	Unfinished int
}

// owner is what the ledger knows of a backup id.
type owner struct {
	app    string
	status Status // "" when deleted or expired
	// completedAt of a ready backup that is not marked corrupt.
	completedAt time.Time
	corrupt     bool
}

// ArchiveOwners is what the ledger knows of the backup ids an archive
// object may belong to: the live backups and the deleted or expired ones of
// the apps added. The zero value is empty and ready to use.
type ArchiveOwners struct {
	byID map[string]owner
}

// Add records the backups of a, live and gone.
func (o *ArchiveOwners) Add(a *App) {
	if o.byID == nil {
		o.byID = map[string]owner{}
	}
	for id := range a.deleted {
		o.byID[id] = owner{app: a.id}
	}
	for _, b := range a.backups {
		o.byID[b.ID] = owner{app: a.id, status: b.Status, completedAt: b.CompletedAt, corrupt: !b.CorruptAt.IsZero()}
	}
}

// MissingArchive names a ready backup whose archive object was not listed.
type MissingArchive struct {
	App      string
	BackupID string
}

// OrphanPlan is what the orphan policy decides of one listing.
type OrphanPlan struct {
	// Remove are the orphans to record, whose objects are then deleted,
	// in the order of the listing.
	Remove []RemoveOrphan
	// Young counts the orphans left for a later sweep because they are
	// younger than the grace period.
	Young int
	// NoApp are orphans that name no valid app; they are left in place.
	NoApp []ArchiveObject
	// Missing are the ready backups, not marked corrupt and completed
	// before the listing, whose object was not listed, sorted by backup
	// id: the sweep looks again before it marks one corrupt.
	Missing []MissingArchive
}

// PlanOrphans is the orphan policy: given what the ledger knows of the
// backups (owners), the objects listed at listed, and the grace period,
// which objects are orphans to remove, which are too young, and which
// ready backups seem to have lost their archive. An object is an orphan
// when no queued, running or ready backup owns it. It is a pure function;
// Orphans.Sweep lists, executes and deletes.
func PlanOrphans(owners *ArchiveOwners, objects []ArchiveObject, listed time.Time, grace time.Duration) OrphanPlan {
	var plan OrphanPlan
	stored := make(map[string]bool, len(objects))
	for _, obj := range objects {
		stored[obj.BackupID] = true
		own, known := owners.byID[obj.BackupID]
		if known && own.status != "" && own.status != StatusFailed {
			continue
		}
		if listed.Sub(obj.StoredAt) < grace {
			plan.Young++
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
			obj.App = app
			plan.NoApp = append(plan.NoApp, obj)
			continue
		}
		plan.Remove = append(plan.Remove, RemoveOrphan{App: app, BackupID: obj.BackupID, SizeBytes: obj.SizeBytes, StoredAt: obj.StoredAt, Reason: reason})
	}
	for id, own := range owners.byID {
		if own.status != StatusReady || own.corrupt || stored[id] || !own.completedAt.Before(listed) {
			continue
		}
		plan.Missing = append(plan.Missing, MissingArchive{App: own.app, BackupID: id})
	}
	slices.SortFunc(plan.Missing, func(a, b MissingArchive) int { return strings.Compare(a.BackupID, b.BackupID) })
	return plan
}
