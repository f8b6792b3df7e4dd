package domain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Components of an archive: the top-level folders its entries live in.
const (
	// ComponentConfig holds configuration documents (source "kv").
	ComponentConfig = "config"
	// ComponentFiles holds files (source "dir").
	ComponentFiles = "files"
)

// Item is one exported document or file of an app.
type Item struct {
	// Component is the archive folder the item belongs in, e.g. "config";
	// empty means the source's first component.
	Component string
	// Path is the item's path inside its component, e.g. "settings/theme".
	Path string
	// Size is the item's size in bytes.
	Size int64
	// Body yields the item's content; it is read once.
	Body io.Reader
}

// Source is where an app's structure and configuration live.
type Source interface {
	// Kind names the source, e.g. "kv"; the archive records it.
	Kind() string
	// SchemaVersion is the version of the structure this server exports.
	SchemaVersion() int
	// Components names the archive components the source exports into,
	// e.g. ["config"]; an archive lists them even when they are empty.
	Components() []string
	// Export calls emit for every item of app, in a stable order.
	Export(ctx context.Context, app string, emit func(Item) error) error
}

// ArchiveHeader is what an archive's manifest says about its backup.
type ArchiveHeader struct {
	App           string
	BackupID      string
	Name          string
	Description   string
	CreatedAt     time.Time
	CreatedBy     string
	Origin        Origin
	SchemaVersion int
	SourceKind    string
	Components    []string
}

// ArchiveInfo is what the ledger records of a stored archive.
type ArchiveInfo struct {
	SizeBytes int64
	SHA256    string
	ItemCount int
}

// ArchiveStore stores archives, one per backup id.
type ArchiveStore interface {
	ArchiveDeleter
	// WriteArchive streams an archive of the items that export emits into
	// the store under h.BackupID, replacing a partial one.
	WriteArchive(ctx context.Context, h ArchiveHeader, export func(emit func(Item) error) error) (ArchiveInfo, error)
}

// Job is one delivery of a requested backup to a worker.
type Job struct {
	App      string
	BackupID string
	// Seq is the stream sequence of the backup.requested event.
	Seq uint64
	// Attempt counts deliveries of the job, from 1.
	Attempt int
	// Final is set on the last delivery: the backup is then failed rather
	// than tried once more.
	Final         bool
	EventID       string
	CorrelationID string
}

// WorkerActor is the actor recorded for the events workers append.
const WorkerActor = "system:worker"

// Sources picks the source each app's configuration lives in.
type Sources interface {
	// For returns the source of app.
	For(app string) Source
}

// SourceSet is a default source and the apps that use another one.
type SourceSet struct {
	Default Source
	ByApp   map[string]Source
}

var _ Sources = SourceSet{}

// For implements Sources.
func (s SourceSet) For(app string) Source {
	if src, ok := s.ByApp[app]; ok {
		return src
	}
	return s.Default
}

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Name identifies the worker in backup.started events.
	Name string
	// Timeout bounds one attempt at writing an archive; 0 means no bound.
	// An attempt that runs out of time fails the backup, so that a hung
	// export cannot keep a backup running forever while it heartbeats.
	Timeout time.Duration
}

// Worker turns requested backups into archives.
type Worker struct {
	timeout  time.Duration
	name     string
	ledger   *Ledger
	states   States
	sources  Sources
	archives ArchiveStore
	log      *slog.Logger
}

// NewWorker returns a Worker.
func NewWorker(cfg WorkerConfig, ledger *Ledger, states States, sources Sources, archives ArchiveStore, log *slog.Logger) *Worker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{timeout: cfg.Timeout, name: cfg.Name, ledger: ledger, states: states, sources: sources, archives: archives, log: log}
}

// Run does one job. A nil error means the job is settled (done, failed on
// record, or no longer wanted) and must not be delivered again; an error
// means it should be delivered again (this process is stopping, or the
// ledger could not be written).
func (w *Worker) Run(ctx context.Context, j Job) error {
	if err := w.states.WaitApplied(ctx, j.Seq); err != nil {
		return err
	}
	var (
		b  Backup
		ok bool
	)
	w.states.ReadApp(j.App, func(a *App) { b, ok = a.Backup(j.BackupID) })
	log := w.log.With("app", j.App, "backup_id", j.BackupID, "attempt", j.Attempt, "correlation_id", j.CorrelationID)
	switch {
	case !ok:
		// Deleted before it ran: make sure nothing of it is left.
		return w.archives.DeleteArchive(ctx, j.BackupID)
	case b.Status == StatusReady || b.Status == StatusFailed:
		return nil
	}
	meta := func(step string) Meta {
		return Meta{Actor: WorkerActor, CommandID: fmt.Sprintf("%s.%s.%d", j.BackupID, step, j.Attempt),
			CorrelationID: j.CorrelationID, CausationID: j.EventID}
	}
	if j.Final {
		reason := fmt.Sprintf("no worker finished the backup after %d deliveries", j.Attempt-1)
		log.Warn("giving up on backup", "reason", reason)
		return w.fail(ctx, j, reason, meta("fail"))
	}
	if _, err := w.ledger.Execute(ctx, StartBackup{App: j.App, BackupID: j.BackupID, Attempt: j.Attempt, Worker: w.name}, meta("start")); err != nil {
		if Code(err) == CodeBackupStateConflict || Code(err) == CodeNotFound {
			return nil // someone else settled it meanwhile
		}
		return err
	}
	wctx := ctx
	if w.timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	source := w.sources.For(j.App)
	if source == nil {
		return w.fail(ctx, j, "no source is configured for the app", meta("fail"))
	}
	info, err := w.archives.WriteArchive(wctx, ArchiveHeader{
		App: j.App, BackupID: b.ID, Name: b.Name, Description: b.Description, CreatedAt: b.CreatedAt,
		CreatedBy: b.CreatedBy, Origin: b.Origin, SchemaVersion: source.SchemaVersion(), SourceKind: source.Kind(),
		Components: source.Components(),
	}, func(emit func(Item) error) error { return source.Export(wctx, j.App, emit) })
	if err != nil {
		if ctx.Err() != nil {
			return err // handed back: the next delivery restarts it
		}
		if wctx.Err() != nil {
			err = fmt.Errorf("timed out after %s: %w", w.timeout, err)
		}
		log.Warn("backup failed", "err", err)
		if derr := w.archives.DeleteArchive(context.WithoutCancel(ctx), j.BackupID); derr != nil {
			log.Warn("delete partial archive", "err", derr)
		}
		return w.fail(ctx, j, "export: "+err.Error(), meta("fail"))
	}
	_, err = w.ledger.Execute(ctx, CompleteBackup{App: j.App, BackupID: j.BackupID, Attempt: j.Attempt, SizeBytes: info.SizeBytes,
		SHA256: info.SHA256, ItemCount: info.ItemCount, SchemaVersion: source.SchemaVersion(), Source: source.Kind()}, meta("complete"))
	if c := Code(err); c == CodeBackupStateConflict || c == CodeNotFound {
		// Deleted or failed while it ran: its archive must not outlive it.
		// Ready or running again means a newer attempt owns the archive.
		var now Backup
		w.states.ReadApp(j.App, func(a *App) { now, ok = a.Backup(j.BackupID) })
		if ok && (now.Status == StatusReady || now.Status == StatusRunning) {
			log.Warn("a newer attempt owns the backup; this attempt's completion was refused", "code", c)
			return nil
		}
		log.Info("backup settled while running; removing its archive", "code", c)
		return w.archives.DeleteArchive(context.WithoutCancel(ctx), j.BackupID)
	}
	if err == nil {
		log.Info("backup ready", "size_bytes", info.SizeBytes, "items", info.ItemCount, "command_id", meta("complete").CommandID)
	}
	return err
}

func (w *Worker) fail(ctx context.Context, j Job, reason string, m Meta) error {
	_, err := w.ledger.Execute(ctx, FailBackup{App: j.App, BackupID: j.BackupID, Reason: reason}, m)
	var e *Error
	if errors.As(err, &e) && (e.Code == CodeBackupStateConflict || e.Code == CodeNotFound) {
		return nil
	}
	return err
}

// Forget removes the archive of a deleted backup; followers of the stream
// call it for every backup.deleted event so that no archive outlives its
// entry.
func (w *Worker) Forget(ctx context.Context, backupID string) error {
	return w.archives.DeleteArchive(ctx, backupID)
}
