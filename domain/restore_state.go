package domain

import (
	"slices"
	"time"
)

// RestoreStatus is where a restore is.
type RestoreStatus string

// Restore statuses.
const (
	RestoreStatusRunning   RestoreStatus = "running"
	RestoreStatusCompleted RestoreStatus = "completed"
	RestoreStatusFailed    RestoreStatus = "failed"
)

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
