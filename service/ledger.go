package service

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// LedgerConfig configures a Ledger.
type LedgerConfig struct {
	Rules domain.Rules
	// MaxAttempts bounds how often a command is decided again after a
	// concurrent change of its app.
	MaxAttempts int
	// Observer is told what the ledger does (metrics); nil tells no one.
	Observer domain.Observer
	// CommandTimeout bounds a command from its start to its answer, also
	// when the store cannot take writes (then it answers
	// domain.StoreUnavailable); 0 means DefaultCommandTimeout.
	CommandTimeout time.Duration
}

// Ledger is the command service of the apps: decide a command against the app's state
// in memory, append its event with the expected sequence, and answer once
// this process's projection has applied it (commandLoop).
type Ledger struct {
	cfg      LedgerConfig
	states   States
	clock    domain.Clock
	ids      domain.IDs
	archives ArchiveDeleter
	log      *slog.Logger
	locks    [256]subjectLock
	obs      domain.Observer
	loop     *commandLoop[*domain.App]
}

// NewLedger returns a Ledger. archives may be nil; then deleting a backup
// leaves its archive to whoever follows backup.deleted events.
func NewLedger(cfg LedgerConfig, store EventStore, states States, clock domain.Clock, ids domain.IDs, archives ArchiveDeleter, log *slog.Logger) (*Ledger, error) {
	if err := cfg.Rules.Validate(); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 20
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	obs := cfg.Observer
	if obs == nil {
		obs = domain.NopObserver{}
	}
	l := &Ledger{cfg: cfg, states: states, clock: clock, ids: ids, archives: archives, log: log, obs: obs}
	for i := range l.locks {
		l.locks[i] = newSubjectLock()
	}
	l.loop = &commandLoop[*domain.App]{store: store, fold: appsFold{states}, clock: clock, ids: ids, log: log, obs: l.obs,
		maxAttempts: cfg.MaxAttempts, timeout: cfg.CommandTimeout}
	return l, nil
}

// Rules returns the rules the ledger decides with.
func (l *Ledger) Rules() domain.Rules { return l.cfg.Rules }

// Execute decides and appends one command. A command id accepted before
// is answered with the first command's result, Duplicate set. It returns
// an *Error for a refused command (CodeIdempotencyKeyReused for a client's
// key sent with another request), an error wrapping ErrConflict when the
// app kept changing concurrently, one wrapping ErrRefused when the
// ledger's own check refused the event, and other errors for failures of
// the store.
func (l *Ledger) Execute(ctx context.Context, cmd domain.Command, m domain.Meta) (res domain.Result, err error) {
	start := l.clock.Now()
	defer func() { l.obs.Executed(cmd.CommandName(), domain.Outcome(res, err), l.clock.Now().Sub(start)) }()
	app := cmd.AppID()
	if err := domain.ValidateAppID(app); err != nil {
		return domain.Result{}, err
	}
	if m.Actor == "" {
		return domain.Result{}, domain.ErrUnauthenticated
	}
	if m, err = m.Prepare(func() string { return l.ids.NewID(l.clock.Now()) }, cmd.CommandName(), cmd); err != nil {
		return domain.Result{}, err
	}
	// The event must decode to exactly what was decided (see Expecter).
	m.Actor = strings.ToValidUTF8(m.Actor, "\uFFFD")
	m.CorrelationID = strings.ToValidUTF8(m.CorrelationID, "\uFFFD")
	m.CausationID = strings.ToValidUTF8(m.CausationID, "\uFFFD")

	// The command answers within its bound. Commands of one app in this
	// process go one after another, so that they do not conflict with each
	// other; other processes are kept apart by the expected sequence.
	ctx, cancel := l.loop.bounded(ctx)
	defer cancel()
	lock := l.locks[stripe(app)]
	if err := lock.acquire(ctx); err != nil {
		return domain.Result{}, err
	}
	defer lock.release()

	out, err := l.loop.run(ctx, loopCommand[*domain.App]{token: app, name: cmd.CommandName(), meta: m,
		decide: func(a *domain.App, now time.Time) (domain.Event, error) {
			return domain.Decide(a, cmd, now, l.cfg.Rules, func() string { return l.ids.NewID(now) })
		}})
	if err != nil {
		return domain.Result{}, err
	}
	res = domain.Result{Seq: out.Seq, EventType: out.Type, BackupID: out.BackupID, RestoreID: out.RestoreID, Duplicate: out.duplicate}
	if l.archives != nil && (res.EventType == domain.TypeBackupDeleted || res.EventType == domain.TypeBackupExpired) {
		// Only when this command's event ended this backup: a key reused
		// for a delete answers an earlier, different command.
		var id string
		switch c := cmd.(type) {
		case domain.DeleteBackup:
			id = c.BackupID
		case domain.ExpireBackup:
			id = c.BackupID
		}
		if id != "" && res.BackupID == id {
			if derr := l.archives.DeleteArchive(ctx, id); derr != nil {
				// The event is on record; whoever follows the stream
				// removes the archive again.
				l.log.Warn("delete archive", "app", app, "backup_id", id, "err", derr)
			}
		}
	}
	return res, nil
}

// stripe returns the lock of app among Ledger.locks.
func stripe(app string) int {
	h := fnv.New32a()
	h.Write([]byte(app))
	return int(h.Sum32() % 256)
}

// Retention explains app's retention as the rules and the fold say now
// (RetentionOf).
func (l *Ledger) Retention(app string) (domain.Retention, error) {
	if err := domain.ValidateAppID(app); err != nil {
		return domain.Retention{}, err
	}
	var r domain.Retention
	now := l.clock.Now().UTC()
	l.states.ReadApp(app, func(a *domain.App) { r = domain.RetentionOf(a, app, now, l.cfg.Rules) })
	return r, nil
}

// MarkCorrupt records that backup id of app is corrupt (command id
// <id>.corrupt, whoever finds it), also when ctx ends meanwhile. A backup
// already marked, or no longer ready, is no error; it reports whether this
// call marked it.
func (l *Ledger) MarkCorrupt(ctx context.Context, app, id, reason, actor string) (bool, error) {
	_, err := l.Execute(context.WithoutCancel(ctx), domain.MarkCorrupt{App: app, BackupID: id, Reason: reason},
		domain.Meta{Actor: actor, CommandID: id + ".corrupt"})
	if domain.Code(err) == domain.CodeBackupStateConflict {
		return false, nil
	}
	return err == nil, err
}
