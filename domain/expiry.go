package domain

import (
	"time"
)

// TypeBackupExpired records that a backup reached its expiry: it leaves the
// list (its archive is deleted), its log stays. Registered explicitly; never
// renamed.
const TypeBackupExpired = "backup.expired"

// ExpiryActor is the actor of the expiry sweeper's events.
const ExpiryActor = "system:expiry"

// BackupExpired records the end of a backup's retention.
type BackupExpired struct {
	BackupID  string    `json:"backup_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EventType implements Event.
func (*BackupExpired) EventType() string { return TypeBackupExpired }

// ExpireBackup ends a backup whose expiry has passed.
type ExpireBackup struct {
	App      string
	BackupID string
}

// CommandName implements Command.
func (ExpireBackup) CommandName() string { return "backup.expire" }

// AppID implements Command.
func (c ExpireBackup) AppID() string { return c.App }

func (c ExpireBackup) decide(a *App, d *decision) (Event, error) {
	b, err := live(a, c.BackupID)
	if err != nil {
		return nil, err
	}
	if b.ExpiresAt.IsZero() || d.now.Before(b.ExpiresAt) {
		return nil, Errorf(CodeBackupStateConflict, "backup %s expires at %s, not yet", b.ID, b.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if id := a.activeRestore; id != "" {
		if r := a.restores[id]; r != nil && (r.PreBackupID == b.ID || r.SourceApp == a.id && r.BackupID == b.ID) {
			return nil, Errorf(CodeRestoreInProgress, "backup %s is in use by restore %s; it expires after it", b.ID, id)
		}
	}
	return &BackupExpired{BackupID: b.ID, ExpiresAt: b.ExpiresAt.UTC()}, nil
}

// DueExpiries is the expiry policy: the commands that expire the backups
// of a whose expiry has passed at now, in the order of a.Backups(). It is a
// pure function of the folded state; the Sweeper executes what it returns.
func DueExpiries(a *App, now time.Time) []ExpireBackup {
	var out []ExpireBackup
	for _, b := range a.Backups() {
		if !b.ExpiresAt.IsZero() && !now.Before(b.ExpiresAt) {
			out = append(out, ExpireBackup{App: a.id, BackupID: b.ID})
		}
	}
	return out
}

// AppLister lists the apps the fold knows.
type AppLister interface {
	Apps() []string
}
