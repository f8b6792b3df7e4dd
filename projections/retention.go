package projections

import (
	"math"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// RetentionView is the JSON of GET /v1/apps/{app}/retention: when each
// backup expires and why, and which rule would refuse the next backup.
type RetentionView struct {
	App              string                `json:"app"`
	Now              time.Time             `json:"now"`
	RetentionSeconds int64                 `json:"retention_seconds"`
	QuotaUsed        int                   `json:"quota_used"`
	QuotaLimit       int                   `json:"quota_limit"`
	MinIntervalSecs  int64                 `json:"min_interval_seconds"`
	Backups          []BackupRetentionView `json:"backups"`
	NextBackup       NextBackupView        `json:"next_backup"`
}

// BackupRetentionView is one backup's expiry.
type BackupRetentionView struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	Origin           string    `json:"origin"`
	Status           string    `json:"status"`
	CreatedAt        time.Time `json:"created_at"`
	ExpiresAt        time.Time `json:"expires_at"`
	ExpiresInSeconds int64     `json:"expires_in_seconds"`
	Reason           string    `json:"reason"`
}

// NextBackupView says whether a backup asked for now would be accepted.
type NextBackupView struct {
	Allowed           bool   `json:"allowed"`
	Code              string `json:"code,omitempty"`
	Detail            string `json:"detail,omitempty"`
	RetryAfterSeconds int64  `json:"retry_after_seconds,omitempty"`
}

// RetentionViewOf is the view of r.
func RetentionViewOf(r domain.Retention) RetentionView {
	v := RetentionView{App: r.App, Now: r.Now.UTC(), RetentionSeconds: int64(r.Retention / time.Second), QuotaUsed: r.QuotaUsed,
		QuotaLimit: r.MaxBackups, MinIntervalSecs: int64(r.MinInterval / time.Second), Backups: []BackupRetentionView{},
		NextBackup: NextBackupView{Allowed: r.Next.Allowed, Code: r.Next.Code, Detail: r.Next.Detail}}
	if r.Next.RetryAfter > 0 {
		v.NextBackup.RetryAfterSeconds = int64(math.Ceil(r.Next.RetryAfter.Seconds()))
	}
	for _, b := range r.Backups {
		in := int64(math.Ceil(b.ExpiresAt.Sub(r.Now).Seconds()))
		v.Backups = append(v.Backups, BackupRetentionView{ID: b.ID, Name: b.Name, Origin: string(b.Origin), Status: string(b.Status),
			CreatedAt: b.CreatedAt.UTC(), ExpiresAt: b.ExpiresAt.UTC(), ExpiresInSeconds: max(in, 0), Reason: b.Reason})
	}
	return v
}
