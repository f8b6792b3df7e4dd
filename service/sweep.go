package service

import (
	"log/slog"

	"github.com/backupledger/backupledger/domain"
)

// sweep is what every periodic sweep reads and writes: the ledger it
// records with, the fold it reads each app from, the apps to visit, the
// clock and the log. Sweeper, Nightly, Verifier and Orphans embed it.
type sweep struct {
	ledger *domain.Ledger
	states domain.States
	apps   domain.AppLister
	clock  domain.Clock
	log    *slog.Logger
}

// newSweep returns a sweep; a nil log discards.
func newSweep(ledger *domain.Ledger, states domain.States, apps domain.AppLister, clock domain.Clock, log *slog.Logger) sweep {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return sweep{ledger: ledger, states: states, apps: apps, clock: clock, log: log}
}
