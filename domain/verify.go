package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// TypeBackupVerified records that a backup's stored archive was read and
// matched the ledger and its manifest. Registered explicitly; never
// renamed.
const TypeBackupVerified = "backup.verified"

// BackupVerified records a passed integrity check.
type BackupVerified struct {
	BackupID  string `json:"backup_id"`
	SHA256    string `json:"sha256"`
	ItemCount int    `json:"item_count"`
}

// EventType implements Event.
func (*BackupVerified) EventType() string { return TypeBackupVerified }

// RecordVerified records that a ready backup's archive passed its check.
type RecordVerified struct {
	App, BackupID string
	ItemCount     int
}

// CommandName implements Command.
func (RecordVerified) CommandName() string { return "backup.verify" }

// AppID implements Command.
func (c RecordVerified) AppID() string { return c.App }

func (c RecordVerified) decide(a *App, _ *decision) (Event, error) {
	b, err := live(a, c.BackupID)
	if err != nil {
		return nil, err
	}
	if b.Status != StatusReady || !b.CorruptAt.IsZero() {
		return nil, stateConflict(b, "verified")
	}
	return &BackupVerified{BackupID: b.ID, SHA256: b.SHA256, ItemCount: c.ItemCount}, nil
}

// Verifier checks stored archives: on demand (Verify) and periodically
// (Sweep). A passed check is backup.verified; a failed one marks the
// backup corrupt (backup.corrupted, actor system:integrity).
type Verifier struct {
	ledger   *Ledger
	states   States
	apps     AppLister
	archives ArchiveReader
	clock    Clock
	// Every is how old a backup's last check may be before Sweep checks it
	// again.
	Every time.Duration
	log   *slog.Logger
}

// NewVerifier returns a verifier; every is the period of Sweep's checks.
func NewVerifier(ledger *Ledger, states States, apps AppLister, archives ArchiveReader, clock Clock, every time.Duration, log *slog.Logger) *Verifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if every <= 0 {
		every = 7 * 24 * time.Hour
	}
	return &Verifier{ledger: ledger, states: states, apps: apps, archives: archives, clock: clock, Every: every, log: log}
}

// Verify reads the archive of a ready backup and checks it against the
// ledger (size, SHA-256) and the archive rules (its manifest and every
// entry). It returns the backup as the check left it: verified, or corrupt
// (with CorruptAt and the reason). not_found and backup_not_ready come
// before any read; a backup already found corrupt is checked again.
func (v *Verifier) Verify(ctx context.Context, app, id string, m Meta) (Backup, error) {
	if err := ValidateAppID(app); err != nil {
		return Backup{}, err
	}
	var (
		b  Backup
		ok bool
	)
	v.states.ReadApp(app, func(a *App) { b, ok = a.Backup(id) })
	if !ok {
		return Backup{}, Errorf(CodeNotFound, "backup %s not found in app %s", id, app)
	}
	if b.Status != StatusReady {
		return Backup{}, Errorf(CodeBackupNotReady, "backup %s is %s; only a ready backup has an archive to check", b.ID, b.Status)
	}
	items := 0
	err := v.archives.ReadArchive(ctx, b.ID, b.SizeBytes, b.SHA256, func(c ArchiveContents) error {
		items = len(c.Entries)
		return nil
	})
	var de *Error
	switch {
	case err == nil:
		if b.CorruptAt.IsZero() {
			if m.CommandID == "" {
				m.CommandID = fmt.Sprintf("%s.verify.%d", b.ID, v.clock.Now().UnixNano())
			}
			if _, err := v.ledger.Execute(ctx, RecordVerified{App: app, BackupID: b.ID, ItemCount: items}, m); err != nil {
				return Backup{}, err
			}
		}
	case errors.Is(err, ErrArchiveCorrupt), errors.As(err, &de):
		reason := "archive does not match the ledger: " + err.Error()
		if de != nil {
			reason = "archive no longer passes the archive rules: " + de.Message
		}
		v.log.Error("stored archive failed its check", "app", app, "backup_id", b.ID, "err", err)
		if _, merr := v.ledger.markCorrupt(ctx, app, b.ID, reason, IntegrityActor); merr != nil {
			return Backup{}, merr
		}
	default:
		return Backup{}, fmt.Errorf("check archive of backup %s: %w", b.ID, err)
	}
	v.states.ReadApp(app, func(a *App) { b, _ = a.Backup(id) })
	return b, nil
}

// Sweep checks every ready backup whose last check (or completion) is
// older than Every, and returns how many it checked. The command id of a
// periodic check names the backup and the period, so that replicas
// sweeping at once record it once.
func (v *Verifier) Sweep(ctx context.Context) (int, error) {
	now := v.clock.Now()
	period := now.Truncate(v.Every).Unix()
	n := 0
	var first error
	for _, app := range v.apps.Apps() {
		var due []string
		v.states.ReadApp(app, func(a *App) {
			for _, b := range a.backups {
				if v.isDue(b, now) {
					due = append(due, b.ID)
				}
			}
			slices.Sort(due)
		})
		for _, id := range due {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			// Another replica may have checked it meanwhile: look again
			// rather than read the archive a second time.
			if !v.due(app, id, now) {
				continue
			}
			_, err := v.Verify(ctx, app, id, Meta{Actor: IntegrityActor, CommandID: fmt.Sprintf("%s.verify.%d", id, period)})
			if err != nil && Code(err) != CodeNotFound && Code(err) != CodeBackupStateConflict {
				v.log.Warn("periodic check", "app", app, "backup_id", id, "err", err)
				if first == nil {
					first = err
				}
				continue
			}
			n++
		}
	}
	return n, first
}

// markCorrupt records that backup id of app is corrupt (command id
// <id>.corrupt, whoever finds it), also when ctx ends meanwhile. A backup
// already marked, or no longer ready, is no error; it reports whether this
// call marked it.
func (l *Ledger) markCorrupt(ctx context.Context, app, id, reason, actor string) (bool, error) {
	_, err := l.Execute(context.WithoutCancel(ctx), MarkCorrupt{App: app, BackupID: id, Reason: reason},
		Meta{Actor: actor, CommandID: id + ".corrupt"})
	if Code(err) == CodeBackupStateConflict {
		return false, nil
	}
	return err == nil, err
}

// due reports whether backup id of app is due for a check at now.
func (v *Verifier) due(app, id string, now time.Time) bool {
	ok := false
	v.states.ReadApp(app, func(a *App) {
		if b, found := a.backups[id]; found {
			ok = v.isDue(b, now)
		}
	})
	return ok
}

// isDue reports whether b is ready, not known corrupt, and its last check
// (or completion) is at least Every before now.
func (v *Verifier) isDue(b *Backup, now time.Time) bool {
	last := b.VerifiedAt
	if last.IsZero() {
		last = b.CompletedAt
	}
	return b.Status == StatusReady && b.CorruptAt.IsZero() && now.Sub(last) >= v.Every
}
