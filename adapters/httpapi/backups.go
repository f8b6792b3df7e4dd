package httpapi

import (
	"net/http"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
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
	m, err := s.commandMeta(w, r, c)
	if err != nil {
		return err
	}
	cmd := domain.RequestBackup{App: c.app, Name: req.Name, Description: req.Description, Origin: domain.OriginManual}
	res, err := s.execute(r.Context(), w, cmd, m, domain.TypeBackupRequested, "")
	if err != nil {
		return err
	}
	b, err := s.deps.Queries.Backup(c.app, res.BackupID)
	if err != nil {
		// Only a replay can get here: the backup it created was deleted
		// since.
		return err
	}
	w.Header().Set("Location", "/v1/apps/"+c.app+"/backups/"+b.ID)
	writeJSON(w, http.StatusAccepted, projections.AsRequested(b))
	return nil
}

// listBackups answers the app's live backups, oldest first; with
// ?as_of=, those that were live then.
func (s *Server) listBackups(w http.ResponseWriter, r *http.Request, c call) error {
	if t, ok, err := asOf(r); err != nil || ok {
		if err != nil {
			return err
		}
		return s.backupsAsOf(w, r, c, t)
	}
	writeJSON(w, http.StatusOK, projections.BackupList{Backups: s.deps.Queries.Backups(c.app)})
	return nil
}

// allBackups answers the live backups of every app the caller may see.
func (s *Server) allBackups(w http.ResponseWriter, _ *http.Request, c call) error {
	list := s.deps.Queries.AllBackups(func(app string) bool { return s.visible(c.p, app) })
	writeJSON(w, http.StatusOK, projections.BackupList{Backups: list})
	return nil
}

// getBackup answers one live backup.
func (s *Server) getBackup(w http.ResponseWriter, r *http.Request, c call) error {
	b, err := s.deps.Queries.Backup(c.app, r.PathValue("id"))
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
	if req.Name == nil {
		return domain.Errorf(domain.CodeInvalidArgument, "field \"name\" is required")
	}
	m, err := s.commandMeta(w, r, c)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	cmd := domain.RenameBackup{App: c.app, BackupID: id, Name: *req.Name}
	if _, err := s.execute(r.Context(), w, cmd, m, domain.TypeBackupRenamed, id); err != nil {
		return err
	}
	b, err := s.deps.Queries.Backup(c.app, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// deleteBackup deletes a backup and its archive: 204. A retry with the same
// Idempotency-Key answers 204 again.
func (s *Server) deleteBackup(w http.ResponseWriter, r *http.Request, c call) error {
	m, err := s.commandMeta(w, r, c)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	cmd := domain.DeleteBackup{App: c.app, BackupID: id}
	if _, err := s.execute(r.Context(), w, cmd, m, domain.TypeBackupDeleted, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getApp answers the app's state; an app without events is empty. With
// ?as_of=, the state as it was then.
func (s *Server) getApp(w http.ResponseWriter, r *http.Request, c call) error {
	if t, ok, err := asOf(r); err != nil || ok {
		if err != nil {
			return err
		}
		return s.appAsOf(w, r, c, t)
	}
	writeJSON(w, http.StatusOK, s.deps.Queries.App(c.app))
	return nil
}

// verifyBackup reads a ready backup's archive and checks it: 200 with the
// backup, verified (verified_at) or found corrupt (corrupt_at).
func (s *Server) verifyBackup(w http.ResponseWriter, r *http.Request, c call) error {
	if s.deps.Verifier == nil {
		return domain.Errorf(domain.CodeUnavailable, "archive checks are not configured on this server")
	}
	m, err := s.commandMeta(w, r, c)
	if err != nil {
		return err
	}
	// As long as the archive takes to read: the client waits for it.
	if _, err := s.deps.Verifier.Verify(r.Context(), c.app, r.PathValue("id"), m); err != nil {
		return err
	}
	b, err := s.deps.Queries.Backup(c.app, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// quote estimates a backup of the app made now: its archive's size and
// what keeping it costs a month. It changes nothing.
func (s *Server) quote(w http.ResponseWriter, r *http.Request, c call) error {
	if s.deps.Quoter == nil {
		return domain.Errorf(domain.CodeUnavailable, "quotes are not configured on this server")
	}
	q, err := s.deps.Quoter.Quote(r.Context(), c.app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, projections.QuoteViewOf(q))
	return nil
}

// retention answers when each backup of the app expires and why, and
// which rule would refuse the next backup: a dry run.
func (s *Server) retention(w http.ResponseWriter, _ *http.Request, c call) error {
	r, err := s.deps.Commands.Retention(c.app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, projections.RetentionViewOf(r))
	return nil
}

// appLog answers the app's log, oldest first.
func (s *Server) appLog(w http.ResponseWriter, _ *http.Request, c call) error {
	writeJSON(w, http.StatusOK, projections.LogList{Entries: s.deps.Queries.AppLog(c.app)})
	return nil
}

// backupLog answers one backup's log, also after the backup was deleted.
func (s *Server) backupLog(w http.ResponseWriter, r *http.Request, c call) error {
	entries, err := s.deps.Queries.BackupLog(c.app, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, projections.LogList{Entries: entries})
	return nil
}
