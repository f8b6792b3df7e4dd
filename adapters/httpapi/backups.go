package httpapi

import (
	"net/http"

	"github.com/backupledger/backupledger/usecase"
)

// createRequest is the body of POST /v1/apps/{app}/backups. A null or
// absent name means the default name.
type createRequest struct {
	Name        *string `json:"name"`
	Description string  `json:"description"`
}

// renameRequest is the body of PATCH /v1/apps/{app}/backups/{id}.
type renameRequest struct {
	Name *string `json:"name"`
}

// createBackup requests a backup: 202 with the queued backup and its
// Location. A retry with the same Idempotency-Key answers the same backup.
func (s *Server) createBackup(w http.ResponseWriter, r *http.Request, c call) error {
	var req createRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	uc, err := s.command(w, r, c)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	b, err := s.app.CreateBackup(ctx, uc, usecase.CreateBackup{App: c.app, Name: req.Name, Description: req.Description})
	if err != nil {
		return err
	}
	replayed(w, uc)
	w.Header().Set("Location", "/v1/apps/"+c.app+"/backups/"+b.ID)
	writeJSON(w, http.StatusAccepted, b)
	return nil
}

// listBackups answers the app's live backups, oldest first; with
// ?as_of=, those that were live then.
func (s *Server) listBackups(w http.ResponseWriter, r *http.Request, c call) error {
	t, err := asOf(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	l, err := s.app.ListBackups(ctx, c.query(), usecase.ListBackups{App: c.app, AsOf: t})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

// allBackups answers the live backups of every app the caller may see.
func (s *Server) allBackups(w http.ResponseWriter, r *http.Request, c call) error {
	writeJSON(w, http.StatusOK, s.app.AllBackups(r.Context(), c.query()))
	return nil
}

// getBackup answers one live backup.
func (s *Server) getBackup(w http.ResponseWriter, r *http.Request, c call) error {
	b, err := s.app.GetBackup(r.Context(), c.query(), usecase.BackupRef{App: c.app, ID: r.PathValue("id")})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// renameBackup renames a backup: 200 with the renamed backup.
func (s *Server) renameBackup(w http.ResponseWriter, r *http.Request, c call) error {
	var req renameRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	uc, err := s.command(w, r, c)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	b, err := s.app.RenameBackup(ctx, uc, usecase.RenameBackup{App: c.app, ID: r.PathValue("id"), Name: req.Name})
	if err != nil {
		return err
	}
	replayed(w, uc)
	writeJSON(w, http.StatusOK, b)
	return nil
}

// deleteBackup deletes a backup and its archive: 204. A retry with the same
// Idempotency-Key answers 204 again.
func (s *Server) deleteBackup(w http.ResponseWriter, r *http.Request, c call) error {
	uc, err := s.command(w, r, c)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	if err := s.app.DeleteBackup(ctx, uc, usecase.BackupRef{App: c.app, ID: r.PathValue("id")}); err != nil {
		return err
	}
	replayed(w, uc)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getApp answers the app's state; a registered app without events is
// empty. With ?as_of=, the state as it was then.
func (s *Server) getApp(w http.ResponseWriter, r *http.Request, c call) error {
	t, err := asOf(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	v, err := s.app.GetApp(ctx, c.query(), usecase.GetApp{App: c.app, AsOf: t})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// verifyBackup reads a ready backup's archive and checks it: 200 with the
// backup, verified (verified_at) or found corrupt (corrupt_at).
func (s *Server) verifyBackup(w http.ResponseWriter, r *http.Request, c call) error {
	if err := s.app.CheckVerifier(); err != nil {
		return err
	}
	uc, err := s.command(w, r, c)
	if err != nil {
		return err
	}
	// As long as the archive takes to read: the client waits for it.
	b, err := s.app.VerifyBackup(r.Context(), uc, usecase.BackupRef{App: c.app, ID: r.PathValue("id")})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// quote estimates a backup of the app made now: its archive's size and
// what keeping it costs a month. It changes nothing.
func (s *Server) quote(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.app.Quote(r.Context(), c.query(), c.app)
	return respond(w, http.StatusOK, v, err)
}

// retention answers when each backup of the app expires and why, and
// which rule would refuse the next backup: a dry run.
func (s *Server) retention(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.app.Retention(r.Context(), c.query(), c.app)
	return respond(w, http.StatusOK, v, err)
}

// appLog answers the app's log, oldest first.
func (s *Server) appLog(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.app.AppLog(r.Context(), c.query(), c.app)
	return respond(w, http.StatusOK, v, err)
}

// backupLog answers one backup's log, also after the backup was deleted.
func (s *Server) backupLog(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.app.BackupLog(r.Context(), c.query(), usecase.BackupRef{App: c.app, ID: r.PathValue("id")})
	return respond(w, http.StatusOK, v, err)
}
