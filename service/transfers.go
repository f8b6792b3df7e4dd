package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/backupledger/backupledger/domain"
)

// ArchiveTransfer moves archives in and out of the store.
type ArchiveTransfer interface {
	ArchiveDeleter
	// ImportArchive reads a zip from r, validates it (docs/archive.md) and
	// stores it under backupID. A refused archive returns an *Error with
	// CodeArchiveInvalid, CodeArchiveTooLarge or CodeArchiveVersion, and
	// nothing is left behind.
	ImportArchive(ctx context.Context, app, backupID string, r io.Reader) (domain.ImportedArchive, error)
	// ImportStaged is ImportArchive from an object of the staging bucket;
	// the staging object is removed whatever the outcome. A missing object
	// is an *Error with CodeNotFound.
	ImportStaged(ctx context.Context, app, backupID, object string) (domain.ImportedArchive, error)
	// OpenArchive reads the stored archive of a backup whose ledger entry
	// says size and sha256. Component "" is the whole archive: its reads
	// fail with an error wrapping ErrArchiveCorrupt, before the last bytes
	// are released, when the bytes do not match. A component name yields a
	// new zip of that component's entries and a manifest describing them;
	// the stored archive is verified first. An unknown component is an
	// *Error with CodeInvalidArgument.
	OpenArchive(ctx context.Context, backupID string, size int64, sha256, component string) (domain.ArchiveStream, error)
	// StageDownload verifies the stored archive (or a component, as
	// OpenArchive) and copies it into the staging bucket for a NATS client.
	StageDownload(ctx context.Context, backupID string, size int64, sha256, component string) (domain.StagedArchive, error)
}

// Transfers is the service of uploads and downloads.
type Transfers struct {
	ledger   *Ledger
	states   States
	archives ArchiveTransfer
	ids      domain.IDs
	clock    domain.Clock
	log      *slog.Logger
}

// NewTransfers returns Transfers.
func NewTransfers(ledger *Ledger, states States, archives ArchiveTransfer, ids domain.IDs, clock domain.Clock, log *slog.Logger) *Transfers {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Transfers{ledger: ledger, states: states, archives: archives, ids: ids, clock: clock, log: log}
}

// Upload validates and stores an archive and records it as a new ready
// backup with origin upload; it is not restored. The quota is checked
// before the archive is read and again when the backup is recorded; a
// refused upload leaves no event and no object. A retried command (same
// id) answers the first result without storing the archive again.
func (t *Transfers) Upload(ctx context.Context, m domain.Meta, up domain.Upload) (domain.Result, error) {
	if err := domain.ValidateAppID(up.App); err != nil {
		return domain.Result{}, err
	}
	if up.Name != nil {
		if _, err := domain.NormalizeName(*up.Name); err != nil {
			return domain.Result{}, err
		}
	}
	if _, err := domain.NormalizeDescription(up.Description); err != nil {
		return domain.Result{}, err
	}
	if m.Actor == "" {
		return domain.Result{}, domain.ErrUnauthenticated
	}
	if m.CommandID != "" {
		if err := domain.ValidateCommandKey(m.CommandID); err != nil {
			return domain.Result{}, err
		}
	}
	if up.Body == nil && up.StagedObject == "" {
		return domain.Result{}, domain.Errorf(domain.CodeInvalidArgument, "an upload needs an archive")
	}
	var (
		rec   domain.CommandRecord
		seen  bool
		quota int
		// Execute records the actor made valid UTF-8.
		key = domain.CommandKey(strings.ToValidUTF8(m.Actor, "\uFFFD"), m.CommandID)
	)
	t.states.ReadApp(up.App, func(a *domain.App) {
		if m.CommandID != "" {
			rec, seen = a.Command(key)
		}
		quota = a.Quota()
	})
	if seen {
		var err error
		if rec, err = recall(ctx, t.ledger.loop.store, up.App, key, rec); err != nil {
			return domain.Result{}, err
		}
		if m.ClientKey {
			cmd := domain.RecordUpload{App: up.App, Name: up.Name, Description: up.Description}
			if err := domain.CheckReuse(rec, domain.RequestHash(cmd.CommandName(), cmd)); err != nil {
				return domain.Result{}, err
			}
		}
		return domain.Result{Seq: rec.Seq, EventType: rec.Type, BackupID: rec.BackupID, Duplicate: true}, nil
	}
	if max := t.ledger.Rules().MaxBackups; quota >= max {
		return domain.Result{}, domain.Errorf(domain.CodeQuotaExceeded, "app %s already holds %d backups, the most allowed; delete one first", up.App, quota)
	}
	id := t.ids.NewID(t.clock.Now())
	var (
		imp domain.ImportedArchive
		err error
	)
	if up.StagedObject != "" {
		imp, err = t.archives.ImportStaged(ctx, up.App, id, up.StagedObject)
	} else {
		imp, err = t.archives.ImportArchive(ctx, up.App, id, up.Body)
	}
	if err != nil {
		return domain.Result{}, err
	}
	res, err := t.ledger.Execute(ctx, domain.RecordUpload{App: up.App, BackupID: id, Name: up.Name, Description: up.Description, Archive: imp}, m)
	switch {
	case err == nil && res.BackupID == id:
		return res, nil
	case err == nil, domain.Refused(err), domain.RecordedOf(err) == domain.RecordedNo, errors.Is(err, domain.ErrConflict):
		// Refused, or a retry answered with the first upload: this copy
		// was not recorded and must not stay.
		if derr := t.archives.DeleteArchive(context.WithoutCancel(ctx), id); derr != nil {
			t.log.Error("delete archive of a refused upload", "app", up.App, "backup_id", id, "err", derr)
		}
	default:
		// The event may have been stored (the store did not confirm it, or
		// the wait for the projection ended): keep the archive; an orphan is cleaned up later, a lost
		// archive of a ready backup could not be.
		t.log.Warn("upload outcome unknown; its archive is kept", "app", up.App, "backup_id", id, "err", err)
	}
	return res, err
}

// downloadable returns the backup if its archive may be read.
func (t *Transfers) downloadable(app, id string) (domain.Backup, error) {
	if err := domain.ValidateAppID(app); err != nil {
		return domain.Backup{}, err
	}
	var (
		b  domain.Backup
		ok bool
	)
	t.states.ReadApp(app, func(a *domain.App) { b, ok = a.Backup(id) })
	switch {
	case !ok:
		return domain.Backup{}, domain.Errorf(domain.CodeNotFound, "backup %s not found in app %s", id, app)
	case b.Status != domain.StatusReady:
		return domain.Backup{}, domain.Errorf(domain.CodeBackupNotReady, "backup %s is %s; only ready backups can be downloaded", id, b.Status)
	case !b.CorruptAt.IsZero():
		return domain.Backup{}, domain.Errorf(domain.CodeBackupCorrupt, "backup %s is corrupt (%s); it cannot be downloaded", id, b.CorruptReason)
	}
	return b, nil
}

// Download opens a ready backup's archive, or one component of it, for
// reading. Bytes that do not match the ledger fail the read and mark the
// backup corrupt.
func (t *Transfers) Download(ctx context.Context, app, id, component string) (domain.Backup, domain.ArchiveStream, error) {
	b, err := t.downloadable(app, id)
	if err != nil {
		return domain.Backup{}, domain.ArchiveStream{}, err
	}
	s, err := t.archives.OpenArchive(ctx, id, b.SizeBytes, b.SHA256, component)
	if err != nil {
		t.checkCorrupt(ctx, b, err)
		return domain.Backup{}, domain.ArchiveStream{}, err
	}
	s.ReadCloser = &watchedReader{ReadCloser: s.ReadCloser, onErr: func(err error) { t.checkCorrupt(ctx, b, err) }}
	return b, s, nil
}

// StageDownload copies a ready backup's archive (or a component) into the
// staging bucket for a NATS client.
func (t *Transfers) StageDownload(ctx context.Context, app, id, component string) (domain.Backup, domain.StagedArchive, error) {
	b, err := t.downloadable(app, id)
	if err != nil {
		return domain.Backup{}, domain.StagedArchive{}, err
	}
	st, err := t.archives.StageDownload(ctx, id, b.SizeBytes, b.SHA256, component)
	if err != nil {
		t.checkCorrupt(ctx, b, err)
		return domain.Backup{}, domain.StagedArchive{}, err
	}
	return b, st, nil
}

// checkCorrupt records a corrupt archive when err says so.
func (t *Transfers) checkCorrupt(ctx context.Context, b domain.Backup, err error) {
	if !errors.Is(err, domain.ErrArchiveCorrupt) {
		return
	}
	t.log.Error("stored archive does not match the ledger", "app", b.App, "backup_id", b.ID, "err", err)
	if _, merr := t.ledger.MarkCorrupt(ctx, b.App, b.ID, "archive does not match the ledger: "+corruptReason(err), domain.IntegrityActor); merr != nil {
		t.log.Error("mark backup corrupt", "app", b.App, "backup_id", b.ID, "err", merr)
	}
}

// corruptReason is the text of err, an error wrapping ErrArchiveCorrupt,
// without it: what is wrong with the archive.
func corruptReason(err error) string {
	reason := err.Error()
	if i := strings.Index(reason, domain.ErrArchiveCorrupt.Error()); i > 0 {
		reason = strings.TrimSuffix(strings.TrimSpace(reason[:i]), ":")
	}
	return reason
}

// watchedReader calls onErr once with the first read error other than EOF.
type watchedReader struct {
	io.ReadCloser
	once  sync.Once
	onErr func(error)
}

func (r *watchedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		r.once.Do(func() { r.onErr(err) })
	}
	return n, err
}
