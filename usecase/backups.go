package usecase

import (
	"context"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// CreateBackup asks for a backup of App. A nil Name means the default
// name.
type CreateBackup struct {
	App         string
	Name        *string
	Description string
}

// CreateBackup requests a backup and answers it, queued. A retry with the
// same idempotency key answers the same backup, in its state now. Errors:
// not_found (the app), the rules' backup_quota_exceeded, backup_too_soon,
// app_in_maintenance, invalid_argument.
func (a *Application) CreateBackup(ctx context.Context, c *Call, req CreateBackup) (projections.BackupView, error) {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.BackupView{}, err
	}
	cmd := domain.RequestBackup{App: req.App, Name: req.Name, Description: req.Description, Origin: domain.OriginManual}
	res, err := a.Execute(ctx, c, cmd, domain.TypeBackupRequested, "")
	if err != nil {
		return projections.BackupView{}, err
	}
	// Only a replay can fail here: the backup it created was deleted since.
	b, err := a.deps.Queries.Backup(req.App, res.BackupID)
	if err != nil {
		return projections.BackupView{}, err
	}
	return projections.AsRequested(b), nil
}

// ListBackups asks for an app's live backups, or those live at AsOf.
type ListBackups struct {
	App  string
	AsOf *time.Time
}

// ListBackups answers the app's live backups, oldest first; with AsOf,
// those that were live then (unavailable without history).
func (a *Application) ListBackups(ctx context.Context, c *Call, req ListBackups) (projections.BackupList, error) {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.BackupList{}, err
	}
	if req.AsOf == nil {
		return projections.BackupList{Backups: a.deps.Queries.Backups(req.App)}, nil
	}
	h, err := a.history()
	if err != nil {
		return projections.BackupList{}, err
	}
	l, err := h.BackupsAsOf(ctx, req.App, *req.AsOf)
	if err != nil {
		return projections.BackupList{}, err
	}
	return projections.BackupList{Backups: l}, nil
}

// AllBackups answers the live backups of every app the caller may see.
func (a *Application) AllBackups(_ context.Context, c *Call) projections.BackupList {
	return projections.BackupList{Backups: a.deps.Queries.AllBackups(func(app string) bool { return a.Visible(c.Principal, app) })}
}

// BackupRef names one backup of an app.
type BackupRef struct {
	App string
	ID  string
}

// GetBackup answers one live backup: not_found.
func (a *Application) GetBackup(_ context.Context, c *Call, req BackupRef) (projections.BackupView, error) {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.BackupView{}, err
	}
	return a.deps.Queries.Backup(req.App, req.ID)
}

// RenameBackup gives a backup a new name; Name is required.
type RenameBackup struct {
	App  string
	ID   string
	Name *string
}

// RenameBackup renames a backup and answers it: invalid_argument (no name,
// a bad one), not_found, backup_state_conflict.
func (a *Application) RenameBackup(ctx context.Context, c *Call, req RenameBackup) (projections.BackupView, error) {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.BackupView{}, err
	}
	if req.Name == nil {
		return projections.BackupView{}, domain.Errorf(domain.CodeInvalidArgument, "field \"name\" is required")
	}
	cmd := domain.RenameBackup{App: req.App, BackupID: req.ID, Name: *req.Name}
	if _, err := a.Execute(ctx, c, cmd, domain.TypeBackupRenamed, req.ID); err != nil {
		return projections.BackupView{}, err
	}
	return a.deps.Queries.Backup(req.App, req.ID)
}

// DeleteBackup deletes a backup and its archive: not_found,
// backup_state_conflict. A retry with the same idempotency key succeeds
// again.
func (a *Application) DeleteBackup(ctx context.Context, c *Call, req BackupRef) error {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return err
	}
	cmd := domain.DeleteBackup{App: req.App, BackupID: req.ID}
	_, err := a.Execute(ctx, c, cmd, domain.TypeBackupDeleted, req.ID)
	return err
}

// GetApp asks for an app's state, now or as it was at AsOf.
type GetApp struct {
	App  string
	AsOf *time.Time
}

// GetApp answers the app's state; a registered app without events is
// empty. With AsOf, the state as it was then (unavailable without
// history).
func (a *Application) GetApp(ctx context.Context, c *Call, req GetApp) (projections.AppView, error) {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.AppView{}, err
	}
	if req.AsOf == nil {
		return a.deps.Queries.App(req.App), nil
	}
	h, err := a.history()
	if err != nil {
		return projections.AppView{}, err
	}
	return h.AppAsOf(ctx, req.App, *req.AsOf)
}

// VerifyBackup reads a ready backup's archive and checks it, and answers
// the backup, verified (verified_at) or found corrupt (corrupt_at):
// not_found, backup_not_ready, unavailable (no checks on this server). It
// takes as long as the archive takes to read.
func (a *Application) VerifyBackup(ctx context.Context, c *Call, req BackupRef) (projections.BackupView, error) {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.BackupView{}, err
	}
	if err := a.CheckVerifier(); err != nil {
		return projections.BackupView{}, err
	}
	if _, err := a.deps.Verifier.Verify(ctx, req.App, req.ID, c.Meta); err != nil {
		return projections.BackupView{}, err
	}
	return a.deps.Queries.Backup(req.App, req.ID)
}

// Quote estimates a backup of the app made now: its archive's size and
// what keeping it costs a month. It changes nothing: unavailable (no
// quotes on this server).
func (a *Application) Quote(ctx context.Context, c *Call, app string) (projections.QuoteView, error) {
	if err := a.CheckApp(c.Principal, app); err != nil {
		return projections.QuoteView{}, err
	}
	if a.deps.Quoter == nil {
		return projections.QuoteView{}, domain.Errorf(domain.CodeUnavailable, "quotes are not configured on this server")
	}
	q, err := a.deps.Quoter.Quote(ctx, app)
	if err != nil {
		return projections.QuoteView{}, err
	}
	return projections.QuoteViewOf(q), nil
}

// Retention answers when each backup of the app expires and why, and
// which rule would refuse the next backup: a dry run.
func (a *Application) Retention(_ context.Context, c *Call, app string) (projections.RetentionView, error) {
	if err := a.CheckApp(c.Principal, app); err != nil {
		return projections.RetentionView{}, err
	}
	r, err := a.deps.Commands.Retention(app)
	if err != nil {
		return projections.RetentionView{}, err
	}
	return projections.RetentionViewOf(r), nil
}

// AppLog answers the app's log, oldest first.
func (a *Application) AppLog(ctx context.Context, c *Call, app string) (projections.LogList, error) {
	if err := a.CheckApp(c.Principal, app); err != nil {
		return projections.LogList{}, err
	}
	entries, err := a.deps.Queries.AppLog(ctx, app)
	if err != nil {
		return projections.LogList{}, err
	}
	return projections.LogList{Entries: entries}, nil
}

// BackupLog answers one backup's log, also after the backup was deleted:
// not_found for a backup the app never had.
func (a *Application) BackupLog(ctx context.Context, c *Call, req BackupRef) (projections.LogList, error) {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.LogList{}, err
	}
	entries, err := a.deps.Queries.BackupLog(ctx, req.App, req.ID)
	if err != nil {
		return projections.LogList{}, err
	}
	return projections.LogList{Entries: entries}, nil
}

// errNoVerifier answers VerifyBackup on a server without archive checks.
var errNoVerifier = domain.Errorf(domain.CodeUnavailable, "archive checks are not configured on this server")
