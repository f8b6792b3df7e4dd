package natsapi

import (
	"context"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/backupledger/backupledger/domain"
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

// StagedDownload is the answer of backups.download: where in the staging
// bucket the archive can be read until ExpiresAt, its size and SHA-256,
// and the file name to save it under.
type StagedDownload struct {
	domain.StagedArchive
	FileName string `json:"file_name"`
}

// maxComponentLen bounds a component's name.
const maxComponentLen = 64

// errNoTransfers answers the archive endpoints of a service without
// Transfers.
var errNoTransfers = domain.Errorf(domain.CodeUnavailable, "archive transfers are not configured on this server")

// uploadBackup validates the archive of a staging object, which is then
// removed, and records it as a new ready backup with origin upload; it
// answers the backup. A retry with the same idempotency key answers the
// first backup.
func (s *Service) uploadBackup(ctx context.Context, c *call) (any, error) {
	if s.deps.Transfers == nil {
		return nil, errNoTransfers
	}
	var req UploadRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Object) == "" {
		return nil, domain.Errorf(domain.CodeInvalidArgument, `field "object" is required: the name of the archive in the staging bucket`)
	}
	m, err := s.meta(c, req.CommandFields)
	if err != nil {
		return nil, err
	}
	name := req.Name
	if name == nil {
		name = nameFromFile(req.Object)
	}
	up := domain.Upload{App: req.App, Name: name, Description: req.Description, StagedObject: req.Object}
	res, err := s.deps.Transfers.Upload(ctx, m, up)
	if err != nil {
		return nil, err
	}
	if res.Duplicate {
		if res.EventType != domain.TypeBackupUploaded {
			return nil, domain.Errorf(domain.CodeConflict,
				"idempotency key %s was already used for another command (%s of backup %s)", m.CommandID, res.EventType, res.BackupID)
		}
		c.hdr.Set("Idempotent-Replayed", "true")
	}
	return s.deps.Queries.Backup(req.App, res.BackupID)
}

// downloadBackup copies a ready backup's archive, or one component of it,
// into the staging bucket and answers where it is.
func (s *Service) downloadBackup(ctx context.Context, c *call) (any, error) {
	if s.deps.Transfers == nil {
		return nil, errNoTransfers
	}
	var req DownloadRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	if req.Component != "" && !validComponent(req.Component) {
		return nil, domain.Errorf(domain.CodeInvalidArgument,
			"component must be 1 to %d characters of [A-Za-z0-9_-], got %q", maxComponentLen, req.Component)
	}
	b, st, err := s.deps.Transfers.StageDownload(ctx, req.App, req.ID, req.Component)
	if err != nil {
		return nil, err
	}
	name := domain.DownloadFileName(b, s.cfg.Location)
	if req.Component != "" {
		name = strings.TrimSuffix(name, ".zip") + "_" + req.Component + ".zip"
	}
	return StagedDownload{StagedArchive: st, FileName: name}, nil
}

// nameFromFile is the backup name a file or object name suggests: its last
// path element without the extension, cut to the longest name allowed;
// nil when that is not a valid name.
func nameFromFile(fn string) *string {
	if i := strings.LastIndexAny(fn, `/\`); i >= 0 {
		fn = fn[i+1:]
	}
	fn = strings.TrimSpace(strings.TrimSuffix(fn, path.Ext(fn)))
	if utf8.RuneCountInString(fn) > domain.MaxNameLen {
		fn = string([]rune(fn)[:domain.MaxNameLen])
	}
	n, err := domain.NormalizeName(fn)
	if err != nil {
		return nil
	}
	return &n
}

// validComponent reports whether c can name an archive component.
func validComponent(c string) bool {
	if c == "" || len(c) > maxComponentLen {
		return false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}
