package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Name identifies the worker in backup.started events.
	Name string
	// Timeout bounds one attempt at writing an archive; 0 means no bound.
	// An attempt that runs out of time fails the backup, so that a hung
	// export cannot keep a backup running forever while it heartbeats.
	Timeout time.Duration
	// RetryFor is how long a job whose store or source is unavailable (a
	// NATS failover) is tried again within the same delivery, with a
	// growing pause, before its delivery ends with the error: a failover
	// does not use up the job's deliveries. It also bounds the wait for
	// this process's projection to apply the job's request. Default 2
	// minutes.
	RetryFor time.Duration
}

// Worker turns requested backups into archives.
type Worker struct {
	timeout  time.Duration
	retryFor time.Duration
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
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 2 * time.Minute
	}
	return &Worker{timeout: cfg.Timeout, retryFor: cfg.RetryFor, name: cfg.Name, ledger: ledger, states: states, sources: sources, archives: archives, log: log}
}

// Run does one job. A nil error means the job is settled (done, failed on
// record, or no longer wanted) and must not be delivered again; an error
// means it should be delivered again (this process is stopping, or the
// ledger could not be written).
// A failure of the store or the source that a retry can cure
// (CodeUnavailable) is tried again within the delivery for up to
// WorkerConfig.RetryFor.
func (w *Worker) Run(ctx context.Context, j domain.Job) error {
	deadline := time.Now().Add(w.retryFor)
	pause := 250 * time.Millisecond
	for {
		err := w.run(ctx, j)
		if err == nil || domain.Code(err) != domain.CodeUnavailable || ctx.Err() != nil || time.Now().Add(pause).After(deadline) {
			return err
		}
		w.log.Warn("backup job waits for the store", "app", j.App, "backup_id", j.BackupID, "attempt", j.Attempt, "err", err, "retry_in", pause)
		if err := sleep(ctx, pause); err != nil {
			return err
		}
		pause = min(2*pause, 10*time.Second)
	}
}

// run is one try at job j (Run).
func (w *Worker) run(ctx context.Context, j domain.Job) error {
	// The projection is fed from NATS: a follower whose consumer hangs
	// (its node stalls) must not hold the worker longer than the store may.
	pctx, cancel := context.WithTimeout(ctx, w.retryFor)
	err := w.states.WaitApplied(pctx, j.Seq)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("backup %s of app %s (seq %d): this server's projection is behind: %w", j.BackupID, j.App, j.Seq, domain.ReadUnavailable(err))
	}
	var (
		b  domain.Backup
		ok bool
	)
	w.states.ReadApp(j.App, func(a *domain.App) { b, ok = a.Backup(j.BackupID) })
	log := w.log.With("app", j.App, "backup_id", j.BackupID, "attempt", j.Attempt, "correlation_id", j.CorrelationID)
	switch {
	case !ok:
		// Deleted before it ran: make sure nothing of it is left.
		return w.archives.DeleteArchive(ctx, j.BackupID)
	case b.Status == domain.StatusReady || b.Status == domain.StatusFailed:
		return nil
	}
	meta := func(step string) domain.Meta {
		return domain.Meta{Actor: domain.WorkerActor, CommandID: fmt.Sprintf("%s.%s.%d", j.BackupID, step, j.Attempt),
			CorrelationID: j.CorrelationID, CausationID: j.EventID}
	}
	if j.Final {
		reason := fmt.Sprintf("no worker finished the backup after %d deliveries", j.Attempt-1)
		log.Warn("giving up on backup", "reason", reason)
		return w.fail(ctx, j, reason, meta("fail"))
	}
	if _, err := w.ledger.Execute(ctx, domain.StartBackup{App: j.App, BackupID: j.BackupID, Attempt: j.Attempt, Worker: w.name}, meta("start")); err != nil {
		if domain.Code(err) == domain.CodeBackupStateConflict || domain.Code(err) == domain.CodeNotFound {
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
	info, err := w.archives.WriteArchive(wctx, domain.ArchiveHeader{
		App: j.App, BackupID: b.ID, Name: b.Name, Description: b.Description, CreatedAt: b.CreatedAt,
		CreatedBy: b.CreatedBy, Origin: b.Origin, SchemaVersion: source.SchemaVersion(), SourceKind: source.Kind(),
		Components: source.Components(),
	}, func(emit func(domain.Item) error) error { return source.Export(wctx, j.App, emit) })
	if err != nil {
		if ctx.Err() != nil {
			return err // handed back: the next delivery restarts it
		}
		if wctx.Err() != nil {
			err = fmt.Errorf("timed out after %s: %w", w.timeout, err)
		}
		if derr := w.archives.DeleteArchive(context.WithoutCancel(ctx), j.BackupID); derr != nil {
			log.Warn("delete partial archive", "err", derr)
		}
		if domain.Code(err) == domain.CodeUnavailable && wctx.Err() == nil {
			return err // the store or the source: try again
		}
		log.Warn("backup failed", "err", err)
		return w.fail(ctx, j, "export: "+err.Error(), meta("fail"))
	}
	_, err = w.ledger.Execute(ctx, domain.CompleteBackup{App: j.App, BackupID: j.BackupID, Attempt: j.Attempt, SizeBytes: info.SizeBytes,
		SHA256: info.SHA256, ItemCount: info.ItemCount, SchemaVersion: source.SchemaVersion(), Source: source.Kind()}, meta("complete"))
	if c := domain.Code(err); c == domain.CodeBackupStateConflict || c == domain.CodeNotFound {
		// Deleted or failed while it ran: its archive must not outlive it.
		// Ready or running again means a newer attempt owns the archive.
		var now domain.Backup
		w.states.ReadApp(j.App, func(a *domain.App) { now, ok = a.Backup(j.BackupID) })
		if ok && (now.Status == domain.StatusReady || now.Status == domain.StatusRunning) {
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

func (w *Worker) fail(ctx context.Context, j domain.Job, reason string, m domain.Meta) error {
	_, err := w.ledger.Execute(ctx, domain.FailBackup{App: j.App, BackupID: j.BackupID, Reason: reason}, m)
	var e *domain.Error
	if errors.As(err, &e) && (e.Code == domain.CodeBackupStateConflict || e.Code == domain.CodeNotFound) {
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
