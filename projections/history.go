package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// HistoryReader reads messages of some subjects back from the stream, in
// stream order (*jetstream.EventStore).
type HistoryReader interface {
	// Messages calls fn with each message of the subjects of tokens until
	// fn returns false or the messages end.
	Messages(ctx context.Context, tokens []string, fn func(domain.StoredMessage) bool) error
}

// asOf folds app's events up to and including time t: the app as it was
// then. It reads the app's messages with the keys' and checks them as
// Apply does, so that a refused message changes the past no more than the
// present.
func (s *Store) asOf(ctx context.Context, app string, t time.Time) (*domain.App, error) {
	if err := domain.ValidateAppID(app); err != nil {
		return nil, err
	}
	if s.hist == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "time travel is not configured on this server")
	}
	a := domain.NewApp(app, s.commandMemory)
	check := s.newCheck()
	err := s.hist.Messages(ctx, []string{app, domain.KeysStream}, func(m domain.StoredMessage) bool {
		v := check.Check(m)
		switch {
		case m.Token != app:
		case !v.Accepted():
			a.Refuse(m.Seq)
		case v.Env == nil || v.Env.App != app:
			a.Apply(m.Seq, v.Hash, &domain.Envelope{}, nil) // as the projection does
		case v.Env.Time.After(t):
			return false
		default:
			a.Apply(m.Seq, v.Hash, v.Env, v.Event)
		}
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
