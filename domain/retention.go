package domain

import (
	"fmt"
	"time"
)

// BackupRetention says when one backup expires, and why.
type BackupRetention struct {
	ID        string
	Name      string
	Origin    Origin
	Status    Status
	CreatedAt time.Time
	ExpiresAt time.Time
	Reason    string
}

// NextBackup says whether a backup asked for now would be accepted, and
// if not, which rule refuses it.
type NextBackup struct {
	Allowed    bool
	Code       string
	Detail     string
	RetryAfter time.Duration
}

// Retention is a dry run of the retention rules for an app: when each
// backup expires, and what a new backup would meet. It changes nothing.
type Retention struct {
	App         string
	Now         time.Time
	Retention   time.Duration
	MaxBackups  int
	QuotaUsed   int
	MinInterval time.Duration
	Backups     []BackupRetention
	Next        NextBackup
}

// RetentionOf explains the retention of a, the state of app, at now under
// rules: each backup's expiry and the reason, the quota used, and whether
// a backup may be requested now (and if not, why and when).
func RetentionOf(a *App, app string, now time.Time, rules Rules) Retention {
	r := Retention{App: app, Now: now, Retention: rules.Retention, MaxBackups: rules.MaxBackups, MinInterval: rules.MinInterval}
	r.QuotaUsed = a.Quota()
	for _, b := range a.Backups() {
		reason := fmt.Sprintf("kept %s after it was made (retention %s), then deleted with its archive", days(rules.Retention), days(rules.Retention))
		if b.Origin == OriginUpload {
			reason = fmt.Sprintf("kept %s after it was uploaded (retention %s), then deleted with its archive", days(rules.Retention), days(rules.Retention))
		}
		if !b.ExpiresAt.IsZero() && !now.Before(b.ExpiresAt) {
			reason = "expired; the next sweep deletes it with its archive"
		}
		r.Backups = append(r.Backups, BackupRetention{ID: b.ID, Name: b.Name, Origin: b.Origin, Status: b.Status,
			CreatedAt: b.CreatedAt, ExpiresAt: b.ExpiresAt, Reason: reason})
	}
	_, err := Decide(a, RequestBackup{App: app}, now, rules, func() string { return "dry-run" })
	if err == nil {
		r.Next = NextBackup{Allowed: true}
		return r
	}
	r.Next = NextBackup{Code: Code(err), Detail: Public(err), RetryAfter: RetryAfter(err)}
	return r
}

// days says a duration in days when it is whole days.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		n := int(d / (24 * time.Hour))
		if n == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", n)
	}
	return d.String()
}
