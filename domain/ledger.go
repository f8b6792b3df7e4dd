package domain

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// PendingEvent is one encoded event ready to be appended.
type PendingEvent struct {
	App  string
	Type string
	// MsgID is the deduplication id (Nats-Msg-Id): the command id scoped by
	// app and caller.
	MsgID string
	// ExpectedSeq is the stream sequence of the app's last event as the
	// deciding state knew it; 0 means the app has no event yet.
	ExpectedSeq uint64
	Body        []byte
	// Seal, when its Signature is set, is the event's signature and MAC
	// (key events seal their own); empty, the store seals the event with
	// the ledger's current key.
	Seal Seal
}

// AppendResult is the store's answer to an append.
type AppendResult struct {
	Seq uint64
	// Duplicate is true when MsgID was already stored; Seq is then the
	// sequence of the first copy.
	Duplicate bool
}

// EventStore appends events to the ledger stream.
type EventStore interface {
	// Append stores ev if the app's last stream sequence is ev.ExpectedSeq.
	// It returns an error wrapping ErrConflict when it is not.
	Append(ctx context.Context, ev PendingEvent) (AppendResult, error)
	// LastSeq returns the stream sequence of the app's last event, 0 if
	// the app has none.
	LastSeq(ctx context.Context, app string) (uint64, error)
}

// States is the fold of the ledger that this process keeps in memory (the
// projection). Commands are decided against it.
type States interface {
	// ReadApp calls fn with the current state of app (an empty state if the
	// app has no event) while no event is applied to it. fn must not keep a
	// or change it.
	ReadApp(app string, fn func(a *App))
	// WaitApplied returns once the fold has applied stream sequence seq, or
	// with ctx's error.
	WaitApplied(ctx context.Context, seq uint64) error
	// Expecter is the read-your-writes hint: the ledger announces each
	// event it is about to append, already decoded. A fold that takes no
	// hint implements it with methods that do nothing.
	Expecter
}

// Expecter takes an event this process is about to append already
// decoded, so that folding it back from the stream need not decode it
// again. Expect is a hint: a fold must still decode a body it was not
// told about.
type Expecter interface {
	// Expect announces body, decoded as env and ev, with its HashEvent.
	Expect(hash string, env *Envelope, ev Event)
	// Unexpect withdraws an announcement whose append failed, or whose
	// command the store held already.
	Unexpect(hash string)
}

// RefusalReporter is implemented by a States that checks what it folds
// (the projection, with LedgerCheck): it says whether the message at a
// stream sequence it has applied was refused, and why.
type RefusalReporter interface {
	Refused(seq uint64) (reason string, refused bool)
}

// ErrRefused is returned (wrapped) when the ledger's own check refused an
// event this process appended (e.g. signed with a key retired long
// enough ago): the command did not happen.
var ErrRefused = errors.New("the ledger refused this process's event")

// ArchiveDeleter removes a backup's archive. Deleting a missing archive is
// not an error.
type ArchiveDeleter interface {
	DeleteArchive(ctx context.Context, backupID string) error
}

// Meta is who sends a command and how it relates to others.
type Meta struct {
	// Actor is the authenticated caller; it is recorded in the event.
	Actor string
	// CommandID is the client's idempotency key or a generated id.
	CommandID string
	// ClientKey says that CommandID is the client's idempotency key: the
	// event then records the request's fingerprint (Envelope.CommandHash),
	// and the key reused for another request is
	// CodeIdempotencyKeyReused.
	ClientKey     bool
	CorrelationID string
	CausationID   string
	// commandHash is the request's fingerprint, set by Execute when
	// ClientKey.
	commandHash string
}

// Result is the outcome of an accepted command.
type Result struct {
	// Seq is the stream sequence of the command's event.
	Seq       uint64
	EventType string
	BackupID  string
	RestoreID string
	// Duplicate is true when the command had been accepted before and this
	// is the first result again.
	Duplicate bool
}

// LedgerConfig configures a Ledger.
type LedgerConfig struct {
	Rules Rules
	// MaxAttempts bounds how often a command is decided again after a
	// concurrent change of its app.
	MaxAttempts int
	// Observer is told what the ledger does (metrics); nil tells no one.
	Observer Observer
}

// Ledger is the application layer: decide a command against the app's state
// in memory, append its event with the expected sequence, and answer once
// this process's projection has applied it (commandLoop).
type Ledger struct {
	cfg      LedgerConfig
	states   States
	clock    Clock
	ids      IDs
	archives ArchiveDeleter
	log      *slog.Logger
	locks    [256]sync.Mutex
	obs      Observer
	loop     *commandLoop[*App]
}

// NewLedger returns a Ledger. archives may be nil; then deleting a backup
// leaves its archive to whoever follows backup.deleted events.
func NewLedger(cfg LedgerConfig, store EventStore, states States, clock Clock, ids IDs, archives ArchiveDeleter, log *slog.Logger) (*Ledger, error) {
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
		obs = nopObserver{}
	}
	l := &Ledger{cfg: cfg, states: states, clock: clock, ids: ids, archives: archives, log: log, obs: obs}
	l.loop = &commandLoop[*App]{store: store, fold: appsFold{states}, clock: clock, ids: ids, log: log, obs: l.obs, maxAttempts: cfg.MaxAttempts}
	return l, nil
}

// Rules returns the rules the ledger decides with.
func (l *Ledger) Rules() Rules { return l.cfg.Rules }

// Execute decides and appends one command. A command id accepted before
// is answered with the first command's result, Duplicate set. It returns
// an *Error for a refused command (CodeIdempotencyKeyReused for a client's
// key sent with another request), an error wrapping ErrConflict when the
// app kept changing concurrently, one wrapping ErrRefused when the
// ledger's own check refused the event, and other errors for failures of
// the store.
func (l *Ledger) Execute(ctx context.Context, cmd Command, m Meta) (res Result, err error) {
	start := l.clock.Now()
	defer func() { l.obs.Executed(cmd.CommandName(), Outcome(res, err), l.clock.Now().Sub(start)) }()
	app := cmd.AppID()
	if err := ValidateAppID(app); err != nil {
		return Result{}, err
	}
	if m.Actor == "" {
		return Result{}, ErrUnauthenticated
	}
	if m, err = prepareMeta(m, l.clock, l.ids, cmd.CommandName(), cmd); err != nil {
		return Result{}, err
	}
	// The event must decode to exactly what was decided (see Expecter).
	m.Actor = strings.ToValidUTF8(m.Actor, "\uFFFD")
	m.CorrelationID = strings.ToValidUTF8(m.CorrelationID, "\uFFFD")
	m.CausationID = strings.ToValidUTF8(m.CausationID, "\uFFFD")

	// Commands of one app in this process go one after another, so that they
	// do not conflict with each other; other processes are kept apart by the
	// expected sequence.
	mu := &l.locks[stripe(app)]
	mu.Lock()
	defer mu.Unlock()

	out, err := l.loop.run(ctx, loopCommand[*App]{token: app, name: cmd.CommandName(), meta: m,
		decide: func(a *App, now time.Time) (Event, error) {
			return Decide(a, cmd, now, l.cfg.Rules, func() string { return l.ids.NewID(now) })
		}})
	if err != nil {
		return Result{}, err
	}
	res = Result{Seq: out.Seq, EventType: out.Type, BackupID: out.BackupID, RestoreID: out.RestoreID, Duplicate: out.duplicate}
	if l.archives != nil && (res.EventType == TypeBackupDeleted || res.EventType == TypeBackupExpired) {
		// Only when this command's event ended this backup: a key reused
		// for a delete answers an earlier, different command.
		var id string
		switch c := cmd.(type) {
		case DeleteBackup:
			id = c.BackupID
		case ExpireBackup:
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
