package domain_test

import (
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

func TestDecideExpire(t *testing.T) {
	b := requested("b1", domain.OriginManual) // expires t0 + 60 days
	inUse := restoreRequested("r1", false)
	inUse.SourceApp, inUse.BackupID = "crm", "b1"
	runDecide(t, []decideCase{
		{name: "before its expiry", given: []given{g(0, b)}, now: t0.Add(60*24*time.Hour - time.Second),
			when: domain.ExpireBackup{App: "crm", BackupID: "b1"}, code: domain.CodeBackupStateConflict},
		{name: "at its expiry", given: []given{g(0, b)}, now: t0.Add(60 * 24 * time.Hour),
			when: domain.ExpireBackup{App: "crm", BackupID: "b1"},
			want: &domain.BackupExpired{BackupID: "b1", ExpiresAt: t0.Add(60 * 24 * time.Hour)}},
		{name: "in use by a restore", given: []given{g(0, b), g(time.Hour, inUse)}, now: t0.Add(61 * 24 * time.Hour),
			when: domain.ExpireBackup{App: "crm", BackupID: "b1"}, code: domain.CodeRestoreInProgress},
		{name: "gone already", given: []given{g(0, b), g(time.Hour, &domain.BackupExpired{BackupID: "b1"})}, now: t0.Add(61 * 24 * time.Hour),
			when: domain.ExpireBackup{App: "crm", BackupID: "b1"}, code: domain.CodeNotFound},
	})
}
