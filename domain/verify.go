package domain

import (
	"slices"
	"time"
)

// TypeBackupVerified records that a backup's stored archive was read and
// matched the ledger and its manifest. Registered explicitly; never
// renamed.
const TypeBackupVerified = "backup.verified"

// BackupVerified records a passed integrity check.
type BackupVerified struct {
	BackupID  string `json:"backup_id"`
	SHA256    string `json:"sha256"`
	ItemCount int    `json:"item_count"`
}

// EventType implements Event.
func (*BackupVerified) EventType() string { return TypeBackupVerified }

// RecordVerified records that a ready backup's archive passed its check.
type RecordVerified struct {
	App, BackupID string
	ItemCount     int
}

// CommandName implements Command.
func (RecordVerified) CommandName() string { return "backup.verify" }

// AppID implements Command.
func (c RecordVerified) AppID() string { return c.App }

func (c RecordVerified) decide(a *App, _ *decision) (Event, error) {
	b, err := live(a, c.BackupID)
	if err != nil {
		return nil, err
	}
	if b.Status != StatusReady || !b.CorruptAt.IsZero() {
		return nil, stateConflict(b, "verified")
	}
	return &BackupVerified{BackupID: b.ID, SHA256: b.SHA256, ItemCount: c.ItemCount}, nil
}

// VerificationDue reports whether b is due for a periodic check at now:
// ready, not known corrupt, and its last check (or completion) at least
// every before now.
func VerificationDue(b Backup, now time.Time, every time.Duration) bool {
	last := b.VerifiedAt
	if last.IsZero() {
		last = b.CompletedAt
	}
	return b.Status == StatusReady && b.CorruptAt.IsZero() && now.Sub(last) >= every
}

// DueVerifications returns the ids of a's backups that are due for a
// periodic check at now (VerificationDue), sorted.
func DueVerifications(a *App, now time.Time, every time.Duration) []string {
	var due []string
	for _, b := range a.backups {
		if VerificationDue(*b, now, every) {
			due = append(due, b.ID)
		}
	}
	slices.Sort(due)
	return due
}
