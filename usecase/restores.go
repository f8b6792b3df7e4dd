package usecase

import (
	"context"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// CreateRestore asks for a restore of backup BackupID of App into
// TargetApp (App when empty). PreRestoreBackup and AutoEndMaintenance are
// required; Password is required of a user (not of the server
// administrator).
type CreateRestore struct {
	App                string
	BackupID           string
	TargetApp          string
	PreRestoreBackup   *bool
	AutoEndMaintenance *bool
	Password           string
}

// validate refuses a request that lacks a field, before anything is
// checked: a missing password does not count as a wrong one.
func (r CreateRestore) validate(p domain.Principal) error {
	switch {
	case r.BackupID == "":
		return domain.Errorf(domain.CodeInvalidArgument, "field \"backup_id\" is required")
	case r.PreRestoreBackup == nil:
		return domain.Errorf(domain.CodeInvalidArgument,
			"field \"pre_restore_backup\" is required: true to back up the target's current state first, false not to")
	case r.AutoEndMaintenance == nil:
		return domain.Errorf(domain.CodeInvalidArgument,
			"field \"auto_end_maintenance\" is required: true to end the maintenance when the restore completes, false to end it by hand")
	case r.Password == "" && !p.Admin:
		return domain.Errorf(domain.CodeInvalidArgument, "field \"password\" is required: a restore asks for your password again")
	}
	return nil
}

// CreateRestore checks and records a restore, which then runs in the
// background, and answers it, running; it lives on the target app. Errors:
// invalid_argument, not_found (the app, the backup, a target the caller
// may not see or use), password_incorrect, too_many_attempts,
// backup_not_ready, backup_corrupt, unsupported_archive_version,
// backup_newer_than_server, restore_in_progress, unavailable (no restores
// on this server). ctx carries the client's address for the password
// throttle (service.WithClient).
func (a *Application) CreateRestore(ctx context.Context, c *Call, req CreateRestore) (projections.RestoreView, error) {
	svc, err := a.restores()
	if err != nil {
		return projections.RestoreView{}, err
	}
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.RestoreView{}, err
	}
	if err := req.validate(c.Principal); err != nil {
		return projections.RestoreView{}, err
	}
	r, err := svc.Request(ctx, c.Principal, domain.RestoreRequest{
		App: req.App, BackupID: req.BackupID, TargetApp: req.TargetApp,
		PreRestoreBackup: *req.PreRestoreBackup, AutoEndMaintenance: *req.AutoEndMaintenance, Password: req.Password,
	}, c.Meta)
	if err != nil {
		return projections.RestoreView{}, err
	}
	return projections.NewRestoreView(r), nil
}

// RestoreRef names one restore into an app.
type RestoreRef struct {
	App string
	ID  string
}

// GetRestore answers one restore into an app: not_found.
func (a *Application) GetRestore(_ context.Context, c *Call, req RestoreRef) (projections.RestoreView, error) {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.RestoreView{}, err
	}
	return a.deps.Queries.Restore(req.App, req.ID)
}

// ListRestores answers the restores into an app, oldest first.
func (a *Application) ListRestores(_ context.Context, c *Call, app string) (projections.RestoreList, error) {
	if err := a.CheckApp(c.Principal, app); err != nil {
		return projections.RestoreList{}, err
	}
	return projections.RestoreList{Restores: a.deps.Queries.Restores(app)}, nil
}
