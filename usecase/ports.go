package usecase

import (
	"context"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// The ports of the application: what its handlers need, declared once for
// both transports. The daemon passes the domain's services and the
// projections.

// Commands executes ledger commands; *service.Ledger implements it. Execute
// answers only once this process's projection has applied the command's
// event, so Queries read the command's effect right after.
type Commands interface {
	Execute(ctx context.Context, cmd domain.Command, m domain.Meta) (domain.Result, error)
	// Retention explains an app's retention (a dry run).
	Retention(app string) (domain.Retention, error)
}

// Queries reads the projections; *projections.Store implements it.
type Queries interface {
	Backups(app string) []projections.BackupView
	AllBackups(visible func(app string) bool) []projections.BackupView
	Backup(app, id string) (projections.BackupView, error)
	App(app string) projections.AppView
	// Maintenance returns an app's maintenance.
	Maintenance(app string) projections.MaintenanceView
	// AppLog and BackupLog may read from the stream (CodeUnavailable
	// when it does not answer).
	AppLog(ctx context.Context, app string) ([]projections.LogEntry, error)
	BackupLog(ctx context.Context, app, id string) ([]projections.LogEntry, error)
	// Apps returns the apps with at least one event, sorted.
	Apps() []string
	// Restore returns one restore into app, or not_found.
	Restore(app, id string) (projections.RestoreView, error)
	// Restores returns the restores into app, oldest first.
	Restores(app string) []projections.RestoreView
}

// History answers an app's list and state as they were at a time, folded
// from its events. Queries may implement it (*projections.Store does);
// otherwise a question with as_of answers unavailable.
type History interface {
	AppAsOf(ctx context.Context, app string, t time.Time) (projections.AppView, error)
	BackupsAsOf(ctx context.Context, app string, t time.Time) ([]projections.BackupView, error)
}

// Identity decides who may act on which app and serves the identity use
// cases; *service.Identity.
type Identity interface {
	Execute(ctx context.Context, p domain.Principal, cmd domain.IdentityCommand, m domain.Meta) (domain.IdentityResult, error)
	CreateUser(ctx context.Context, p domain.Principal, c domain.CreateUser, m domain.Meta) (domain.IdentityResult, error)
	ChangePassword(ctx context.Context, p domain.Principal, c domain.ChangePassword, m domain.Meta) (domain.PasswordChange, error)
	CreateToken(ctx context.Context, p domain.Principal, name string, expiresAt time.Time, m domain.Meta) (domain.NewToken, error)
	Login(ctx context.Context, user, password string, m domain.Meta) (domain.NewToken, error)
	RegisterWebhook(ctx context.Context, p domain.Principal, c domain.RegisterWebhook, secret string, m domain.Meta) (domain.NewWebhook, error)
	RegisterApp(ctx context.Context, p domain.Principal, c domain.RegisterApp, m domain.Meta) (domain.IdentityResult, error)
	Visible(p domain.Principal, app string) bool
	Read(fn func(d *domain.Directory))
}

// Quoter estimates a backup before it is made; *service.Quoter.
type Quoter interface {
	Quote(ctx context.Context, app string) (domain.Quote, error)
}

// Verifier checks a backup's stored archive; *service.Verifier.
type Verifier interface {
	Verify(ctx context.Context, app, id string, m domain.Meta) (domain.Backup, error)
}

// Transfers moves archives in and out; *service.Transfers implements it.
type Transfers interface {
	// Upload validates and stores the archive of up and records it as a
	// new ready backup. A refused archive is an *domain.Error with
	// archive_invalid, archive_too_large, unsupported_archive_version or
	// backup_quota_exceeded; a missing staged object is not_found; a
	// retried command answers the first result.
	Upload(ctx context.Context, m domain.Meta, up domain.Upload) (domain.Result, error)
	// Download opens a ready backup's archive, or one component of it (over
	// HTTP). not_found, backup_not_ready, backup_corrupt and
	// invalid_argument (an unknown component) come before the stream; a
	// read of bytes that do not match the ledger fails.
	Download(ctx context.Context, app, id, component string) (domain.Backup, domain.ArchiveStream, error)
	// StageDownload copies a ready backup's archive, or one component of
	// it, into the staging bucket (over NATS), with the errors of Download.
	StageDownload(ctx context.Context, app, id, component string) (domain.Backup, domain.StagedArchive, error)
}

// Restores checks and records restore requests and maintenance;
// *service.Restores implements it. Its runner, which drives a requested
// restore to its end, is not the application's concern.
type Restores interface {
	// Request checks a restore of a backup of req.App into req.TargetApp
	// (req.App when empty) and records it: password_incorrect,
	// too_many_attempts, not_found (backup, or a target the caller may not
	// see or use), backup_not_ready, backup_corrupt,
	// backup_newer_than_server, unsupported_archive_version,
	// restore_in_progress, invalid_argument.
	Request(ctx context.Context, p domain.Principal, req domain.RestoreRequest, m domain.Meta) (domain.Restore, error)
	// StartMaintenance puts an app into maintenance:
	// already_in_maintenance, invalid_argument (no reason).
	StartMaintenance(ctx context.Context, p domain.Principal, app, reason string, m domain.Meta) (domain.Result, error)
	// EndMaintenance ends an app's maintenance: not_in_maintenance,
	// restore_in_progress.
	EndMaintenance(ctx context.Context, p domain.Principal, app, reason string, m domain.Meta) (domain.Result, error)
}

// Schedules reads nightly schedules as they stand, with the server's
// default for apps that set none.
type Schedules interface {
	Schedule(app string) projections.ScheduleView
}

// Deliveries reads the delivery log of a webhook, oldest first.
type Deliveries interface {
	Deliveries(ctx context.Context, webhookID string, limit int) ([]projections.DeliveryView, error)
}

// LedgerKeys are the ledger's signing keys: the projection lists them,
// service.Signing rotates them (the daemon joins the two).
type LedgerKeys interface {
	// Keys returns the keys this process has folded.
	Keys() projections.KeyList
	// Rotate makes a new signing key with m's command id and answers the
	// keys once this process has folded its key.rotated.
	Rotate(ctx context.Context, m domain.Meta) (projections.KeyList, error)
}

// ConfigStore is the built-in configuration store that people edit through
// the API.
type ConfigStore interface {
	// PutDoc stores value under key of app. A bad key or a value over the
	// limit returns an *Error with CodeInvalidArgument.
	PutDoc(ctx context.Context, app, key string, value []byte) (domain.ConfigDoc, error)
	// GetDoc returns one document, or an *Error with CodeNotFound.
	GetDoc(ctx context.Context, app, key string) (domain.ConfigDoc, error)
	// DeleteDoc removes one document, or returns an *Error with CodeNotFound.
	DeleteDoc(ctx context.Context, app, key string) error
	// ListDocs returns the app's documents sorted by key, without values.
	ListDocs(ctx context.Context, app string) ([]domain.ConfigDoc, error)
}
