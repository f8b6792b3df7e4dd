package usecase

import (
	"context"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// MaxComponentLen bounds the name of an archive component.
const MaxComponentLen = 64

// errNoTransfers answers the archive use cases of a server without
// Transfers.
var errNoTransfers = domain.Errorf(domain.CodeUnavailable, "archive transfers are not configured on this server")

// CheckTransfers answers unavailable when the server moves no archives:
// a transport calls it before it reads an upload's body.
func (a *Application) CheckTransfers() error {
	if a.deps.Transfers == nil {
		return errNoTransfers
	}
	return nil
}

// UploadBackup records an uploaded archive as a new ready backup. A nil
// Name is taken from FileName (the uploaded file's name without its
// extension), else the default name.
type UploadBackup struct {
	domain.Upload
	FileName string
}

// UploadBackup validates and stores the archive and answers the new
// backup, ready, with origin upload: archive_invalid, archive_too_large,
// unsupported_archive_version, backup_quota_exceeded, not_found (the app,
// or a staged object that is not there), unavailable. A retry with the
// same idempotency key answers the first backup without reading the body.
func (a *Application) UploadBackup(ctx context.Context, c *Call, req UploadBackup) (projections.BackupView, error) {
	if err := a.CheckTransfers(); err != nil {
		return projections.BackupView{}, err
	}
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.BackupView{}, err
	}
	up := req.Upload
	if up.Name == nil {
		up.Name = NameFromFile(req.FileName)
	}
	res, err := a.deps.Transfers.Upload(ctx, c.Meta, up)
	if err != nil {
		return projections.BackupView{}, err
	}
	if err := c.checkReplay(res, domain.TypeBackupUploaded, ""); err != nil {
		return projections.BackupView{}, err
	}
	// Only a replay can fail here: the backup it created was deleted since.
	return a.deps.Queries.Backup(req.App, res.BackupID)
}

// NameFromFile is the backup name a file or object name suggests: its last
// path element without the extension, cut to the longest name allowed;
// nil when that is not a valid name.
func NameFromFile(fn string) *string {
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

// Download asks for a ready backup's archive, or one Component of it.
type Download struct {
	App       string
	ID        string
	Component string
}

// check validates the component's name.
func (d Download) check() error {
	if d.Component != "" && !validComponent(d.Component) {
		return domain.Errorf(domain.CodeInvalidArgument,
			"component must be 1 to %d characters of [A-Za-z0-9_-], got %q", MaxComponentLen, d.Component)
	}
	return nil
}

// fileName is the file name the download is offered under:
// domain.DownloadFileName, with "_<component>" before ".zip" for a
// component.
func (a *Application) fileName(b domain.Backup, component string) string {
	name := domain.DownloadFileName(b, a.cfg.Location)
	if component == "" {
		return name
	}
	return strings.TrimSuffix(name, ".zip") + "_" + component + ".zip"
}

// OpenDownload opens a ready backup's archive, or one component of it,
// and answers it with the file name it is offered under; the caller
// closes the stream. Errors before the stream: invalid_argument,
// not_found, backup_not_ready, backup_corrupt, unavailable; a read of bytes
// that do not match the ledger fails.
func (a *Application) OpenDownload(ctx context.Context, c *Call, req Download) (domain.Backup, domain.ArchiveStream, string, error) {
	if err := a.CheckTransfers(); err != nil {
		return domain.Backup{}, domain.ArchiveStream{}, "", err
	}
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return domain.Backup{}, domain.ArchiveStream{}, "", err
	}
	if err := req.check(); err != nil {
		return domain.Backup{}, domain.ArchiveStream{}, "", err
	}
	b, st, err := a.deps.Transfers.Download(ctx, req.App, req.ID, req.Component)
	if err != nil {
		return domain.Backup{}, domain.ArchiveStream{}, "", err
	}
	return b, st, a.fileName(b, req.Component), nil
}

// StagedDownload is where a staged download is: the staging bucket's
// object, and the file name it is offered under.
type StagedDownload struct {
	domain.StagedArchive
	FileName string `json:"file_name"`
}

// StageDownload copies a ready backup's archive, or one component of it,
// into the staging bucket and answers where it is, with the errors of
// OpenDownload.
func (a *Application) StageDownload(ctx context.Context, c *Call, req Download) (StagedDownload, error) {
	if err := a.CheckTransfers(); err != nil {
		return StagedDownload{}, err
	}
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return StagedDownload{}, err
	}
	if err := req.check(); err != nil {
		return StagedDownload{}, err
	}
	b, st, err := a.deps.Transfers.StageDownload(ctx, req.App, req.ID, req.Component)
	if err != nil {
		return StagedDownload{}, err
	}
	return StagedDownload{StagedArchive: st, FileName: a.fileName(b, req.Component)}, nil
}

// validComponent reports whether c can name an archive component.
func validComponent(c string) bool {
	if c == "" || len(c) > MaxComponentLen {
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
