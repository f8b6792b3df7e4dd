package httpapi

import (
	"net/http"

	"github.com/backupledger/backupledger/usecase"
)

// maintenanceRequest is the body of POST and DELETE
// /v1/apps/{app}/maintenance.
type maintenanceRequest struct {
	Reason string `json:"reason"`
}

// restoreRequest is the body of POST /v1/apps/{app}/restores. The two
// choices must be explicit: a restore replaces everything in the target.
type restoreRequest struct {
	BackupID           string `json:"backup_id"`
	TargetApp          string `json:"target_app"`
	PreRestoreBackup   *bool  `json:"pre_restore_backup"`
	AutoEndMaintenance *bool  `json:"auto_end_maintenance"`
	// Password is the caller's password, asked again for a restore; the
	// server administrator has none. It is never logged.
	Password string `json:"password"`
}

// startMaintenance puts the app into maintenance: 200 with the app state.
func (s *Server) startMaintenance(w http.ResponseWriter, r *http.Request, c call) error {
	return s.maintenance(w, r, c, true)
}

// endMaintenance ends the app's maintenance: 200 with the app state.
func (s *Server) endMaintenance(w http.ResponseWriter, r *http.Request, c call) error {
	return s.maintenance(w, r, c, false)
}

func (s *Server) maintenance(w http.ResponseWriter, r *http.Request, c call, start bool) error {
	if err := s.app.CheckRestores(); err != nil {
		return err
	}
	var req maintenanceRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	uc, err := s.command(w, r, c)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	v, err := s.app.SetMaintenance(ctx, uc, usecase.Maintenance{App: c.app, Reason: req.Reason, Start: start})
	if err != nil {
		return err
	}
	replayed(w, uc)
	writeJSON(w, http.StatusOK, v)
	return nil
}

// createRestore requests a restore of a backup of {app} into target_app
// ({app} when absent): 202 with the restore, which lives on the target,
// and its Location.
func (s *Server) createRestore(w http.ResponseWriter, r *http.Request, c call) error {
	if err := s.app.CheckRestores(); err != nil {
		return err
	}
	var req restoreRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	uc, err := s.command(w, r, c)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	v, err := s.app.CreateRestore(withClient(ctx, r), uc, usecase.CreateRestore{
		App: c.app, BackupID: req.BackupID, TargetApp: req.TargetApp,
		PreRestoreBackup: req.PreRestoreBackup, AutoEndMaintenance: req.AutoEndMaintenance, Password: req.Password,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/apps/"+v.App+"/restores/"+v.ID)
	writeJSON(w, http.StatusAccepted, v)
	return nil
}

// getRestore answers one restore into the app.
func (s *Server) getRestore(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.app.GetRestore(r.Context(), c.query(), usecase.RestoreRef{App: c.app, ID: r.PathValue("id")})
	return respond(w, http.StatusOK, v, err)
}

// listRestores answers the restores into the app, oldest first.
func (s *Server) listRestores(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.app.ListRestores(r.Context(), c.query(), c.app)
	return respond(w, http.StatusOK, v, err)
}
