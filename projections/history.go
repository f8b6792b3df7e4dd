package projections

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// HistoryReader reads one app's events back from the stream, oldest first
// (*jetstream.EventStore).
type HistoryReader interface {
	// AppEvents calls fn with each event's stream sequence and raw body
	// until fn returns false or the events end.
	AppEvents(ctx context.Context, app string, fn func(seq uint64, raw []byte) bool) error
}

// history is the reader of SetHistory.
type history struct{ r atomic.Value } // HistoryReader

// SetHistory gives the store the reader that time travel (AppAsOf,
// BackupsAsOf) folds past states from; without it they answer unavailable.
func (s *Store) SetHistory(h HistoryReader) { s.hist.r.Store(&h) }

// asOf folds app's events up to and including time t: the app as it was
// then.
func (s *Store) asOf(ctx context.Context, app string, t time.Time) (*domain.App, error) {
	if err := domain.ValidateAppID(app); err != nil {
		return nil, err
	}
	p, _ := s.hist.r.Load().(*HistoryReader)
	if p == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "time travel is not configured on this server")
	}
	a := domain.NewApp(app, s.commandMemory)
	err := (*p).AppEvents(ctx, app, func(seq uint64, raw []byte) bool {
		d, err := decode(raw)
		if err != nil {
			a.Apply(seq, domain.HashEvent(raw), &domain.Envelope{}, nil) // as the projection does
			return true
		}
		if d.env.Time.After(t) {
			return false
		}
		a.Apply(seq, domain.HashEvent(raw), d.env, d.ev)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("history of app %s: %w", app, err)
	}
	return a, nil
}

// AppAsOf answers the state of app as it was at t, folded from its events.
func (s *Store) AppAsOf(ctx context.Context, app string, t time.Time) (AppView, error) {
	a, err := s.asOf(ctx, app, t)
	if err != nil {
		return AppView{}, err
	}
	v := AppView{App: app, QuotaLimit: s.maxBackups, ByStatus: map[string]int{}}
	for _, st := range []domain.Status{domain.StatusQueued, domain.StatusRunning, domain.StatusReady, domain.StatusFailed} {
		v.ByStatus[string(st)] = 0
	}
	fillAppView(&v, a)
	return v, nil
}

// BackupsAsOf answers the backup list of app as it was at t.
func (s *Store) BackupsAsOf(ctx context.Context, app string, t time.Time) ([]BackupView, error) {
	a, err := s.asOf(ctx, app, t)
	if err != nil {
		return nil, err
	}
	out := []BackupView{}
	for _, b := range a.Backups() {
		out = append(out, NewBackupView(b))
	}
	return out, nil
}
