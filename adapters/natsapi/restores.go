package natsapi

import (
	"context"

	"github.com/backupledger/backupledger/usecase"
)

// MaintenanceRequest is the body of maintenance.start (Reason required)
// and maintenance.end (Reason optional).
type MaintenanceRequest struct {
	App    string `json:"app"`
	Reason string `json:"reason,omitempty"`
	CommandFields
}

// CreateRestoreRequest is the body of restores.create: a backup of App
// restored into TargetApp (App when empty). PreRestoreBackup and
// AutoEndMaintenance must be given. Password is the caller's, asked
// again for a restore (the server administrator has none); it is never
// logged.
type CreateRestoreRequest struct {
	App                string `json:"app"`
	BackupID           string `json:"backup_id"`
	TargetApp          string `json:"target_app,omitempty"`
	PreRestoreBackup   *bool  `json:"pre_restore_backup"`
	AutoEndMaintenance *bool  `json:"auto_end_maintenance"`
	Password           string `json:"password,omitempty"`
	CommandFields
}

// RestoreRequest names one restore: the body of restores.get. App is the
// app the backup was restored into.
type RestoreRequest struct {
	App string `json:"app"`
	ID  string `json:"id"`
}

// startMaintenance puts an app into maintenance and answers its state.
func (s *Service) startMaintenance(ctx context.Context, c *call) (any, error) {
	return s.maintenance(ctx, c, true)
}

// endMaintenance ends an app's maintenance and answers its state.
func (s *Service) endMaintenance(ctx context.Context, c *call) (any, error) {
	return s.maintenance(ctx, c, false)
}

func (s *Service) maintenance(ctx context.Context, c *call, start bool) (any, error) {
	if err := s.app.CheckRestores(); err != nil {
		return nil, err
	}
	var req MaintenanceRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	uc, err := s.command(c, req.CommandFields)
	if err != nil {
		return nil, err
	}
	v, err := s.app.SetMaintenance(ctx, uc, usecase.Maintenance{App: req.App, Reason: req.Reason, Start: start})
	return commandAnswer(c, uc, v, err)
}

// createRestore requests a restore and answers it; it lives on the
// target app.
func (s *Service) createRestore(ctx context.Context, c *call) (any, error) {
	if err := s.app.CheckRestores(); err != nil {
		return nil, err
	}
	var req CreateRestoreRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	uc, err := s.command(c, req.CommandFields)
	if err != nil {
		return nil, err
	}
	return s.app.CreateRestore(withClient(ctx), uc, usecase.CreateRestore{
		App: req.App, BackupID: req.BackupID, TargetApp: req.TargetApp,
		PreRestoreBackup: req.PreRestoreBackup, AutoEndMaintenance: req.AutoEndMaintenance, Password: req.Password,
	})
}

// getRestore answers one restore into an app.
func (s *Service) getRestore(ctx context.Context, c *call) (any, error) {
	var req RestoreRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	return s.app.GetRestore(ctx, c.query(), usecase.RestoreRef{App: req.App, ID: req.ID})
}

// listRestores answers the restores into an app, oldest first.
func (s *Service) listRestores(ctx context.Context, c *call) (any, error) {
	var req AppRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	return s.app.ListRestores(ctx, c.query(), req.App)
}
