package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// sweep is what every periodic sweep reads and writes: the ledger it
// records with, the fold it reads each app from, the apps to visit, the
// clock and the log. Sweeper, Nightly, Verifier and Orphans embed it.
type sweep struct {
	ledger *Ledger
	states States
	apps   domain.AppLister
	clock  domain.Clock
	log    *slog.Logger
}

// newSweep returns a sweep; a nil log discards.
func newSweep(ledger *Ledger, states States, apps domain.AppLister, clock domain.Clock, log *slog.Logger) sweep {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return sweep{ledger: ledger, states: states, apps: apps, clock: clock, log: log}
}

// Every is the one runner of the periodic sweeps: it returns a loop that
// runs sweep (named what, for the log) once ready returns (this process's
// fold has caught up), and then every period, until ctx ends; it then
// returns nil. A failed sweep is logged and tried again at the next tick.
// Every replica sweeps; the sweeps' command ids make a second replica's
// work a no-op.
func Every(period time.Duration, what string, ready func(context.Context) error, sweep func(context.Context) (int, error), log *slog.Logger) func(context.Context) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context) error {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			if err := ready(ctx); err != nil {
				return nil // stopping
			}
			if _, err := sweep(ctx); err != nil && ctx.Err() == nil {
				log.Warn(what+" sweep", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}
}
