package natsapi

import (
	"context"
	"strings"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/usecase"
)

// UploadRequest is the body of backups.upload: Object names an archive
// that the caller put into the staging bucket. A null or absent name means
// the object's name without its extension (or the default name when that
// is not a valid name).
type UploadRequest struct {
	App         string  `json:"app"`
	Object      string  `json:"object"`
	Name        *string `json:"name,omitempty"`
	Description string  `json:"description,omitempty"`
	CommandFields
}

// DownloadRequest is the body of backups.download; Component, when set,
// asks for a zip of that component only.
type DownloadRequest struct {
	App       string `json:"app"`
	ID        string `json:"id"`
	Component string `json:"component,omitempty"`
}

// uploadBackup validates the archive of a staging object, which is then
// removed, and records it as a new ready backup; a retry with the same
// idempotency key answers the first backup.
func (s *Service) uploadBackup(ctx context.Context, c *call) (any, error) {
	if err := s.app.CheckTransfers(); err != nil {
		return nil, err
	}
	var req UploadRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Object) == "" {
		return nil, domain.Errorf(domain.CodeInvalidArgument, `field "object" is required: the name of the archive in the staging bucket`)
	}
	uc, err := s.command(c, req.CommandFields)
	if err != nil {
		return nil, err
	}
	b, err := s.app.UploadBackup(ctx, uc, usecase.UploadBackup{
		Upload:   domain.Upload{App: req.App, Name: req.Name, Description: req.Description, StagedObject: req.Object},
		FileName: req.Object,
	})
	return commandAnswer(c, uc, b, err)
}

// downloadBackup copies a ready backup's archive, or one component of it,
// into the staging bucket and answers where it is.
func (s *Service) downloadBackup(ctx context.Context, c *call) (any, error) {
	if err := s.app.CheckTransfers(); err != nil {
		return nil, err
	}
	var req DownloadRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	return s.app.StageDownload(ctx, c.query(), usecase.Download{App: req.App, ID: req.ID, Component: req.Component})
}
