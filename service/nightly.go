package service

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/backupledger/backupledger/domain"
)

// Nightly makes the nightly backups: Sweep, run every minute or so by each
// backupd, requests every night that is due and retries every failed try.
// It keeps no state: what was done is in the ledger, so a restart neither
// loses nor repeats a night, and replicas sweeping at once record each try
// once (NightlyCommandID).
type Nightly struct {
	sweep
}

// NewNightly returns the nightly planner.
func NewNightly(ledger *Ledger, states States, apps domain.AppLister, clock domain.Clock, log *slog.Logger) *Nightly {
	return &Nightly{newSweep(ledger, states, apps, clock, log)}
}

// Sweep requests what is due and returns how many tries it recorded
// (backups requested or nights skipped). An app whose night is not due is
// left alone; an error of one app is logged and the sweep goes on; the
// first is returned.
//
// The first try of a night is due once its slot has passed and the
// schedule (or, without one, the app) existed before that slot: enabling a
// schedule at 10:00 for 02:00 makes the first backup the next night, not
// at once. After a downtime only the latest night is made.
func (s *Nightly) Sweep(ctx context.Context) (int, error) {
	var (
		n     int
		first error
	)
	for _, app := range s.apps.Apps() {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		done, err := s.SweepApp(ctx, app)
		if done {
			n++
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return n, first
}

// SweepApp is Sweep for one app (a timer of its schedule fired): it
// reports whether it recorded a try.
func (s *Nightly) SweepApp(ctx context.Context, app string) (bool, error) {
	now := s.clock.Now()
	def := s.ledger.Rules().Nightly
	var due []domain.RequestNightly
	s.states.ReadApp(app, func(a *domain.App) { due = domain.DueNightly(a, def, now) })
	if len(due) == 0 {
		return false, nil
	}
	cmd := due[0]
	res, err := s.ledger.Execute(ctx, cmd, domain.Meta{Actor: domain.NightlyActor, CommandID: domain.NightlyCommandID(cmd.Night, cmd.Try)})
	switch {
	case err == nil && !res.Duplicate:
		if res.EventType == domain.TypeNightlySkipped {
			s.log.Warn("nightly backup skipped", "app", app, "night", cmd.Night, "try", cmd.Try)
		} else {
			s.log.Info("nightly backup requested", "app", app, "night", cmd.Night, "try", cmd.Try, "backup_id", res.BackupID)
		}
		return true, nil
	case err == nil, domain.Code(err) == domain.CodeBackupStateConflict:
		// Another replica was first, or the state moved on.
		return false, nil
	}
	s.log.Warn("request nightly backup", "app", app, "night", cmd.Night, "try", cmd.Try, "err", err)
	return false, fmt.Errorf("nightly backup of app %s, night %s: %w", app, cmd.Night, err)
}
