package service

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/backupledger/backupledger/domain"
)

// Sweeper expires the backups whose retention has passed.
type Sweeper struct {
	sweep
}

// NewSweeper returns a sweeper over the apps the projection knows.
func NewSweeper(ledger *Ledger, states States, apps domain.AppLister, clock domain.Clock, log *slog.Logger) *Sweeper {
	return &Sweeper{newSweep(ledger, states, apps, clock, log)}
}

// Sweep expires every backup whose expiry has passed, and returns how many
// it expired. Each expiry's command id is the backup id and "expire", so
// that several replicas sweeping at once record it once. An error of one
// backup is logged and the sweep goes on; the first is returned.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	now := s.clock.Now()
	var (
		n     int
		first error
	)
	for _, app := range s.apps.Apps() {
		var due []domain.ExpireBackup
		s.states.ReadApp(app, func(a *domain.App) { due = domain.DueExpiries(a, now) })
		for _, cmd := range due {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			id := cmd.BackupID
			res, err := s.ledger.Execute(ctx, cmd, domain.Meta{Actor: domain.ExpiryActor, CommandID: id + ".expire"})
			switch {
			case err == nil && !res.Duplicate:
				n++
				s.log.Info("backup expired", "app", app, "backup_id", id)
			case err == nil, domain.Code(err) == domain.CodeNotFound:
			case domain.Code(err) == domain.CodeRestoreInProgress || domain.Code(err) == domain.CodeBackupStateConflict:
				s.log.Info("backup not expired now", "app", app, "backup_id", id, "why", err)
			default:
				s.log.Warn("expire backup", "app", app, "backup_id", id, "err", err)
				if first == nil {
					first = fmt.Errorf("expire backup %s of app %s: %w", id, app, err)
				}
			}
		}
	}
	return n, first
}
