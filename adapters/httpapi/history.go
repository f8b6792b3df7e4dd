package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// History answers an app's list and state as they were at a time, folded
// from its events. Queries may implement it (*projections.Store does);
// otherwise ?as_of= answers unavailable.
type History interface {
	AppAsOf(ctx context.Context, app string, t time.Time) (projections.AppView, error)
	BackupsAsOf(ctx context.Context, app string, t time.Time) ([]projections.BackupView, error)
}

// asOf returns the ?as_of= time of r and whether there is one.
func asOf(r *http.Request) (time.Time, bool, error) {
	v := r.URL.Query().Get("as_of")
	if v == "" {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false, domain.Errorf(domain.CodeInvalidArgument, "as_of must be an RFC 3339 time such as 2026-11-22T10:15:00Z, got %q", v)
	}
	return t, true, nil
}

// history returns the History of the server's queries.
func (s *Server) history() (History, error) {
	h, ok := s.deps.Queries.(History)
	if !ok {
		return nil, domain.Errorf(domain.CodeUnavailable, "time travel (as_of) is not available on this server")
	}
	return h, nil
}

// backupsAsOf answers the list as it was at t.
func (s *Server) backupsAsOf(w http.ResponseWriter, r *http.Request, c call, t time.Time) error {
	h, err := s.history()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	l, err := h.BackupsAsOf(ctx, c.app, t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, projections.BackupList{Backups: l})
	return nil
}

// appAsOf answers the app's state as it was at t.
func (s *Server) appAsOf(w http.ResponseWriter, r *http.Request, c call, t time.Time) error {
	h, err := s.history()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	v, err := h.AppAsOf(ctx, c.app, t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
