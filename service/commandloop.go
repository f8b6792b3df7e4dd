package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// This file holds the one decide→append→retry loop of the services. The ledger (one App per subject) and the identity service (one
// Directory on IdentityStream) both run their commands through it, so
// that a command id, a conflict and a duplicate mean the same thing for
// both.
//
// The one duplicate rule: a command whose id (scoped by subject and
// caller) was accepted before is answered from the first command's record
// in the fold (CommandRecord: its sequence, event type and ids), marked
// Duplicate, and nothing is appended. It does not matter how the
// duplicate is noticed: found in the fold before deciding, answered
// Duplicate by the store, or found in the fold after a conflict (a single
// server checks the expected sequence before the message id). The same
// key with another request is CodeIdempotencyKeyReused; a duplicate the
// fold does not know once it has applied the first copy is an error.

// aggregate is the state of one aggregate as the loop reads it: where its
// subject stands and which commands it recorded. *App and *Directory are
// aggregates.
type aggregate interface {
	// Seq is the stream sequence of the subject's last message, the
	// expected sequence of the next append.
	Seq() uint64
	// LastHash is the hash of the last event: the next prev_hash.
	LastHash() string
	// Command returns the record of the command with key (CommandKey).
	Command(key string) (domain.CommandRecord, bool)
}

// aggregateFold is the loop's port to this process's fold of one kind of
// aggregate (States for apps, DirectoryView for the directory).
type aggregateFold[S aggregate] interface {
	// read calls fn with the state of the aggregate of subject token while
	// no event is applied to it.
	read(token string, fn func(S))
	// WaitApplied returns once the fold has applied stream sequence seq,
	// or with ctx's error.
	WaitApplied(ctx context.Context, seq uint64) error
	// Expecter is the read-your-writes hint: the event about to be
	// appended, already decoded.
	Expecter
	// refusal says whether the fold's check refused the message at seq.
	refusal(seq uint64) (reason string, refused bool)
}

// commandLoop decides commands against the state of aggregates of type S
// held in memory, appends each command's one event with the expected
// sequence of its subject, and answers once the fold has applied it. When
// another writer came first, it catches the fold up and decides again, at
// most maxAttempts times.
type commandLoop[S aggregate] struct {
	store       EventStore
	fold        aggregateFold[S]
	clock       domain.Clock
	ids         domain.IDs
	log         *slog.Logger
	obs         domain.Observer
	maxAttempts int
	// timeout bounds a command from its start (bounded) to its answer,
	// also when the store cannot take writes; 0 means DefaultCommandTimeout.
	timeout time.Duration
}

// DefaultCommandTimeout is how long a command may take at most, waiting
// for the subject's lock, the store and the fold together: past it, the
// command answers domain.StoreUnavailable (503 with Retry-After).
const DefaultCommandTimeout = 5 * time.Second

// bounded returns ctx with the command bound (commandLoop.timeout): every
// wait of the command ends with it.
func (l *commandLoop[S]) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	t := l.timeout
	if t <= 0 {
		t = DefaultCommandTimeout
	}
	return context.WithTimeout(ctx, t)
}

// subjectLock keeps the commands of one subject in this process one after
// another, so that they do not conflict with each other; a command gives
// up waiting when its context ends.
type subjectLock chan struct{}

func newSubjectLock() subjectLock { return make(subjectLock, 1) }

// acquire takes the lock, or returns domain.StoreUnavailable (nothing
// recorded) once ctx ends: the command before still waits for the store.
func (l subjectLock) acquire(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return domain.StoreUnavailable(domain.RecordedNo, fmt.Errorf("wait for the command before on the same subject: %w", ctx.Err()))
	}
}

// release lets the next command of the subject go.
func (l subjectLock) release() { <-l }

// loopCommand is one command as the loop runs it.
type loopCommand[S aggregate] struct {
	// token is the subject of the aggregate: an app id or IdentityStream.
	token string
	// name names the command in errors.
	name string
	// meta is complete (Meta.Prepare).
	meta domain.Meta
	// decide returns the command's event, or nil when the command changes
	// nothing, or an error when it is refused.
	decide func(s S, now time.Time) (domain.Event, error)
}

// executed is the loop's answer to a command.
type executed struct {
	// CommandRecord is the record of the command's event: of the first
	// command for a duplicate; zero when nothing changed.
	domain.CommandRecord
	// event is the event appended; nil for a duplicate or when nothing
	// changed.
	event domain.Event
	// duplicate says that the command had been accepted before.
	duplicate bool
}

// run decides c and appends its event. It returns the command's refusal
// (an *Error), an error wrapping ErrConflict when the subject kept
// changing, ErrRefused (wrapped) when the fold's check refused the event,
// and the store's and the fold's errors.
func (l *commandLoop[S]) run(ctx context.Context, c loopCommand[S]) (executed, error) {
	key := domain.CommandKey(c.meta.Actor, c.meta.CommandID)
	inflight := 0 // conflicts with a write the stream has not stored yet
	for attempt := 1; ; attempt++ {
		var (
			ev       domain.Event
			derr     error
			rec      domain.CommandRecord
			seen     bool
			expected uint64
			prev     string
			now      = l.clock.Now().UTC().Truncate(time.Millisecond)
		)
		l.fold.read(c.token, func(s S) {
			if rec, seen = s.Command(key); seen {
				return
			}
			expected, prev = s.Seq(), s.LastHash()
			ev, derr = c.decide(s, now)
		})
		if seen {
			return l.duplicateOf(ctx, c.token, key, rec, c.meta)
		}
		if derr != nil {
			return executed{}, derr
		}
		if ev == nil {
			return executed{}, nil
		}
		env, body, err := domain.EncodeEvent(c.token, now, ev, c.meta, prev, l.ids.NewID(now))
		if err != nil {
			return executed{}, err
		}
		hash := domain.HashEvent(body)
		l.fold.Expect(hash, env, ev)
		ar, err := l.store.Append(ctx, domain.PendingEvent{
			App: c.token, Type: ev.EventType(), MsgID: domain.MsgID(c.token, c.meta),
			ExpectedSeq: expected, Body: body,
		})
		if err != nil || ar.Duplicate {
			// Not stored, or stored before with the first command's body.
			l.fold.Unexpect(hash)
		}
		if errors.Is(err, domain.ErrConflict) {
			l.obs.Conflict(attempt < l.maxAttempts)
			if attempt >= l.maxAttempts {
				return executed{}, fmt.Errorf("%s on %s after %d attempts: %w", c.name, c.token, attempt, err)
			}
			// Catch the fold up with the stream, then decide again: the
			// command may have been stored already (a retry), or a rule
			// may now refuse it.
			last, err := l.catchUp(ctx, c.token)
			if err != nil {
				return executed{}, notRecorded(err)
			}
			pause := backoff(attempt)
			if last <= expected {
				// Nothing newer is stored: the stream holds a write of this
				// subject in flight (a clustered stream refuses an expected
				// sequence then), one that a leader without quorum may
				// never commit. That is no contention: wait longer, and let
				// the command's bound, not its attempts, end it.
				inflight++
				attempt--
				pause = min(time.Duration(inflight)*20*time.Millisecond, 250*time.Millisecond)
			}
			// A short random pause keeps two processes that write the
			// same subject from starving each other.
			if err := sleep(ctx, pause); err != nil {
				return executed{}, notRecorded(err)
			}
			continue
		}
		if err != nil {
			return executed{}, err
		}
		if ar.Duplicate {
			// The store holds this command already (its first copy is at
			// ar.Seq): answer from its record once the fold has it.
			if err := l.fold.WaitApplied(ctx, ar.Seq); err != nil {
				return executed{}, recordedAt(ar.Seq, err)
			}
			l.fold.read(c.token, func(s S) { rec, seen = s.Command(key) })
			if !seen {
				return executed{}, fmt.Errorf("duplicate of command %s at seq %d is not in the state of %s", c.meta.CommandID, ar.Seq, c.token)
			}
			return l.duplicateOf(ctx, c.token, key, rec, c.meta)
		}
		l.obs.Appended(c.token, ev)
		if err := l.fold.WaitApplied(ctx, ar.Seq); err != nil {
			return executed{}, recordedAt(ar.Seq, err)
		}
		if reason, no := l.fold.refusal(ar.Seq); no {
			err := fmt.Errorf("%w: %w", domain.Errorf(domain.CodeUnavailable, "%s (seq %d) was refused by the ledger's own check (%s): it did not happen; retry", ev.EventType(), ar.Seq, reason), domain.ErrRefused)
			l.log.Error("own event refused", "app", c.token, "seq", ar.Seq, "type", ev.EventType(), "err", err)
			return executed{}, err
		}
		return executed{
			CommandRecord: domain.CommandRecord{Seq: ar.Seq, Type: ev.EventType(), BackupID: domain.BackupID(ev), RestoreID: domain.RestoreID(ev)},
			event:         ev,
		}, nil
	}
}

// recordedAt returns the error of a command stored at seq whose fold did
// not apply it in time: domain.StoreUnavailable, recorded.
func recordedAt(seq uint64, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return domain.StoreUnavailable(domain.RecordedYes, fmt.Errorf("stored at seq %d: %w", seq, err))
	}
	return err
}

// notRecorded returns the error of a command that ran out of time before
// any of its appends was stored: domain.StoreUnavailable, not recorded.
func notRecorded(err error) error {
	if domain.Code(err) == domain.CodeUnavailable {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return domain.StoreUnavailable(domain.RecordedNo, err)
	}
	return err
}

// catchUp waits until the fold has applied the subject's last message,
// and returns its sequence.
func (l *commandLoop[S]) catchUp(ctx context.Context, token string) (uint64, error) {
	last, err := l.store.LastSeq(ctx, token)
	if err != nil {
		return 0, err
	}
	return last, l.fold.WaitApplied(ctx, last)
}

// duplicateOf answers a command from rec, the record of the first command
// with its key (recalled from the store if need be): CodeIdempotencyKeyReused
// when that was another request.
func (l *commandLoop[S]) duplicateOf(ctx context.Context, token, key string, rec domain.CommandRecord, m domain.Meta) (executed, error) {
	rec, err := recall(ctx, l.store, token, key, rec)
	if err != nil {
		return executed{}, err
	}
	if err := domain.CheckReuse(rec, m.CommandHash()); err != nil {
		return executed{}, err
	}
	return executed{CommandRecord: rec, duplicate: true}, nil
}

// appsFold is the loop's port to the fold of the apps (States).
type appsFold struct{ States }

func (f appsFold) read(app string, fn func(*domain.App)) { f.ReadApp(app, fn) }

func (f appsFold) refusal(seq uint64) (string, bool) { return refusalOf(f.States, seq) }

// directoryFold is the loop's port to the fold of the directory
// (DirectoryView). It announces nothing, as before the one loop: identity
// events are few, and unlike the ledger's they are not made sure to be
// decided in exactly the form their JSON decodes to (valid UTF-8, times
// as stored), so the directory folds them from their stored bodies, as
// every other process does.
type directoryFold struct{ DirectoryView }

func (f directoryFold) read(_ string, fn func(*domain.Directory)) { f.ReadDirectory(fn) }

func (directoryFold) Expect(string, *domain.Envelope, domain.Event) {}

func (directoryFold) Unexpect(string) {}

func (f directoryFold) refusal(seq uint64) (string, bool) { return refusalOf(f.DirectoryView, seq) }

// refusalOf asks fold, if it checks what it folds (RefusalReporter),
// whether it refused the message at seq.
func refusalOf(fold any, seq uint64) (string, bool) {
	if rr, ok := fold.(RefusalReporter); ok {
		return rr.Refused(seq)
	}
	return "", false
}

// backoff returns a random pause that grows with the attempt, at most 5 ms.
func backoff(attempt int) time.Duration {
	limit := time.Duration(min(attempt, 10)) * 500 * time.Microsecond
	return rand.N(limit)
}

// sleep waits d, or returns ctx's error when it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recall returns rec whole: as it is, or, when the fold kept only its
// sequence (CommandRecord.Recall), from the event there. The command was
// recorded, so a store that cannot answer is domain.StoreUnavailable,
// recorded.
func recall(ctx context.Context, store EventStore, token, key string, rec domain.CommandRecord) (domain.CommandRecord, error) {
	if !rec.Recall {
		return rec, nil
	}
	m, err := store.Message(ctx, rec.Seq)
	if err != nil {
		// The fold applied the event, so the stream holds it: a replica
		// that answers not found (a direct get served by one behind) or
		// nothing is retried, never told to the client as not found.
		return domain.CommandRecord{}, domain.StoreUnavailable(domain.RecordedYes,
			fmt.Errorf("recall the record of a command of %s at seq %d: %w", token, rec.Seq, err))
	}
	if m.Token != token {
		return domain.CommandRecord{}, fmt.Errorf("recall the record of a command of %s: seq %d is of %s", token, rec.Seq, m.Token)
	}
	return domain.RecallRecord(m, key)
}
