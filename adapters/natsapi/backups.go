package natsapi

import (
	"context"
	"time"

	"github.com/backupledger/backupledger/usecase"
)

// AppRequest names an app: the body of logs.app, config.list and the
// other app queries (backups.list and apps.get take an AsOfRequest).
type AppRequest struct {
	App string `json:"app"`
}

// BackupRequest names one backup: the body of backups.get and logs.backup.
type BackupRequest struct {
	App string `json:"app"`
	ID  string `json:"id"`
}

// CreateRequest is the body of backups.create. A null or absent name means
// the default name.
type CreateRequest struct {
	App         string  `json:"app"`
	Name        *string `json:"name,omitempty"`
	Description string  `json:"description,omitempty"`
	CommandFields
}

// RenameRequest is the body of backups.rename.
type RenameRequest struct {
	App  string  `json:"app"`
	ID   string  `json:"id"`
	Name *string `json:"name"`
	CommandFields
}

// DeleteRequest is the body of backups.delete.
type DeleteRequest struct {
	App string `json:"app"`
	ID  string `json:"id"`
	CommandFields
}

// Deleted is the answer of backups.delete (ID set) and config.delete (Key
// set).
type Deleted struct {
	App     string `json:"app"`
	ID      string `json:"id,omitempty"`
	Key     string `json:"key,omitempty"`
	Deleted bool   `json:"deleted"`
}

// createBackup requests a backup and answers it, queued. A retry with the
// same idempotency key answers the same backup.
func (s *Service) createBackup(ctx context.Context, c *call) (any, error) {
	var req CreateRequest
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
	b, err := s.app.CreateBackup(ctx, uc, usecase.CreateBackup{App: req.App, Name: req.Name, Description: req.Description})
	return commandAnswer(c, uc, b, err)
}

// listBackups answers the app's live backups, oldest first; with as_of,
// those that were live then.
func (s *Service) listBackups(ctx context.Context, c *call) (any, error) {
	var req AsOfRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	return s.app.ListBackups(ctx, c.query(), usecase.ListBackups{App: req.App, AsOf: req.AsOf})
}

// AsOfRequest names an app and, optionally, a past time: the body of
// backups.list and apps.get.
type AsOfRequest struct {
	App string `json:"app"`
	// AsOf asks for the list or state as it was then, folded from the
	// app's events.
	AsOf *time.Time `json:"as_of,omitempty"`
}

// allBackups answers the live backups of every app the caller may see.
func (s *Service) allBackups(ctx context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.app.AllBackups(ctx, c.query()), nil
}

// getBackup answers one live backup.
func (s *Service) getBackup(ctx context.Context, c *call) (any, error) {
	var req BackupRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	return s.app.GetBackup(ctx, c.query(), usecase.BackupRef{App: req.App, ID: req.ID})
}

// renameBackup renames a backup and answers it.
func (s *Service) renameBackup(ctx context.Context, c *call) (any, error) {
	var req RenameRequest
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
	b, err := s.app.RenameBackup(ctx, uc, usecase.RenameBackup{App: req.App, ID: req.ID, Name: req.Name})
	return commandAnswer(c, uc, b, err)
}

// deleteBackup deletes a backup and its archive. A retry with the same
// idempotency key answers the same.
func (s *Service) deleteBackup(ctx context.Context, c *call) (any, error) {
	var req DeleteRequest
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
	err = s.app.DeleteBackup(ctx, uc, usecase.BackupRef{App: req.App, ID: req.ID})
	return commandAnswer(c, uc, Deleted{App: req.App, ID: req.ID, Deleted: true}, err)
}

// verifyBackup reads a ready backup's archive and checks it; the answer is
// the backup, verified (verified_at) or found corrupt (corrupt_at).
func (s *Service) verifyBackup(ctx context.Context, c *call) (any, error) {
	var req DeleteRequest // {app, id} and the command fields
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	if err := s.app.CheckVerifier(); err != nil {
		return nil, err
	}
	uc, err := s.command(c, req.CommandFields)
	if err != nil {
		return nil, err
	}
	return s.app.VerifyBackup(ctx, uc, usecase.BackupRef{App: req.App, ID: req.ID})
}

// getApp answers the app's state; with as_of, as it was then.
func (s *Service) getApp(ctx context.Context, c *call) (any, error) {
	var req AsOfRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	return s.app.GetApp(ctx, c.query(), usecase.GetApp{App: req.App, AsOf: req.AsOf})
}

// quote estimates a backup of the app made now; it changes nothing.
func (s *Service) quote(ctx context.Context, c *call) (any, error) {
	var req AppRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	return s.app.Quote(ctx, c.query(), req.App)
}

// retention answers the app's retention: a dry run.
func (s *Service) retention(ctx context.Context, c *call) (any, error) {
	var req AppRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	return s.app.Retention(ctx, c.query(), req.App)
}

// appLog answers the app's log, oldest first.
func (s *Service) appLog(ctx context.Context, c *call) (any, error) {
	var req AppRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	return s.app.AppLog(ctx, c.query(), req.App)
}

// backupLog answers one backup's log, also after the backup was deleted.
func (s *Service) backupLog(ctx context.Context, c *call) (any, error) {
	var req BackupRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	return s.app.BackupLog(ctx, c.query(), usecase.BackupRef{App: req.App, ID: req.ID})
}
