package natsapi

import (
	"context"

	"github.com/backupledger/backupledger/usecase"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
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

// restores returns the restore service, or unavailable when the service
// runs without one.
func (s *Service) restores() (usecase.Restores, error) {
	if s.deps.Restores == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "this server does not run restores")
	}
	return s.deps.Restores, nil
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
	if _, err := s.restores(); err != nil {
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
	svc, err := s.restores()
	if err != nil {
		return nil, err
	}
	var req CreateRestoreRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	switch {
	case req.BackupID == "":
		return nil, domain.Errorf(domain.CodeInvalidArgument, "field \"backup_id\" is required")
	case req.PreRestoreBackup == nil:
		return nil, domain.Errorf(domain.CodeInvalidArgument,
			"field \"pre_restore_backup\" is required: true to back up the target's current state first, false not to")
	case req.AutoEndMaintenance == nil:
		return nil, domain.Errorf(domain.CodeInvalidArgument,
			"field \"auto_end_maintenance\" is required: true to end the maintenance when the restore completes, false to end it by hand")
	case req.Password == "" && !c.p.Admin:
		// Refused before it is checked, so that it does not count as a
		// wrong password.
		return nil, domain.Errorf(domain.CodeInvalidArgument, "field \"password\" is required: a restore asks for your password again")
	}
	m, err := s.meta(c, req.CommandFields)
	if err != nil {
		return nil, err
	}
	r, err := svc.Request(withClient(ctx), c.p, domain.RestoreRequest{
		App: req.App, BackupID: req.BackupID, TargetApp: req.TargetApp,
		PreRestoreBackup: *req.PreRestoreBackup, AutoEndMaintenance: *req.AutoEndMaintenance, Password: req.Password,
	}, m)
	if err != nil {
		return nil, err
	}
	return projections.NewRestoreView(r), nil
}

// getRestore answers one restore into an app.
func (s *Service) getRestore(_ context.Context, c *call) (any, error) {
	var req RestoreRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	return s.deps.Queries.Restore(req.App, req.ID)
}

// listRestores answers the restores into an app, oldest first.
func (s *Service) listRestores(_ context.Context, c *call) (any, error) {
	var req AppRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	return projections.RestoreList{Restores: s.deps.Queries.Restores(req.App)}, nil
}

// refuseInMaintenance answers app_in_maintenance while the app is in
// maintenance: its configuration documents are not to change then (a
// restore may be replacing them). Reads stay allowed.
func (s *Service) refuseInMaintenance(app string) error {
	return s.deps.Queries.Maintenance(app).RefuseConfigChange(app)
}
