package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// Verifier checks stored archives: on demand (Verify) and periodically
// (Sweep). A passed check is backup.verified; a failed one marks the
// backup corrupt (backup.corrupted, actor system:integrity).
type Verifier struct {
	sweep
	archives ArchiveReader
	// Every is how old a backup's last check may be before Sweep checks it
	// again.
	Every time.Duration
}

// NewVerifier returns a verifier; every is the period of Sweep's checks.
func NewVerifier(ledger *Ledger, states States, apps domain.AppLister, archives ArchiveReader, clock domain.Clock, every time.Duration, log *slog.Logger) *Verifier {
	if every <= 0 {
		every = 7 * 24 * time.Hour
	}
	return &Verifier{sweep: newSweep(ledger, states, apps, clock, log), archives: archives, Every: every}
}

// Verify reads the archive of a ready backup and checks it against the
// ledger (size, SHA-256) and the archive rules (its manifest and every
// entry). It returns the backup as the check left it: verified, or corrupt
// (with CorruptAt and the reason). not_found and backup_not_ready come
// before any read; a backup already found corrupt is checked again.
func (v *Verifier) Verify(ctx context.Context, app, id string, m domain.Meta) (domain.Backup, error) {
	if err := domain.ValidateAppID(app); err != nil {
		return domain.Backup{}, err
	}
	var (
		b  domain.Backup
		ok bool
	)
	v.states.ReadApp(app, func(a *domain.App) { b, ok = a.Backup(id) })
	if !ok {
		return domain.Backup{}, domain.Errorf(domain.CodeNotFound, "backup %s not found in app %s", id, app)
	}
	if b.Status != domain.StatusReady {
		return domain.Backup{}, domain.Errorf(domain.CodeBackupNotReady, "backup %s is %s; only a ready backup has an archive to check", b.ID, b.Status)
	}
	items := 0
	err := v.archives.ReadArchive(ctx, b.ID, b.SizeBytes, b.SHA256, func(c domain.ArchiveContents) error {
		items = len(c.Entries)
		return nil
	})
	var de *domain.Error
	switch {
	case err == nil:
		if b.CorruptAt.IsZero() {
			if m.CommandID == "" {
				m.CommandID = fmt.Sprintf("%s.verify.%d", b.ID, v.clock.Now().UnixNano())
			}
			if _, err := v.ledger.Execute(ctx, domain.RecordVerified{App: app, BackupID: b.ID, ItemCount: items}, m); err != nil {
				return domain.Backup{}, err
			}
		}
	case errors.Is(err, domain.ErrArchiveCorrupt), domain.Refused(err) && errors.As(err, &de):
		reason := "archive does not match the ledger: " + err.Error()
		if de != nil {
			reason = "archive no longer passes the archive rules: " + de.Message
		}
		v.log.Error("stored archive failed its check", "app", app, "backup_id", b.ID, "err", err)
		if _, merr := v.ledger.MarkCorrupt(ctx, app, b.ID, reason, domain.IntegrityActor); merr != nil {
			return domain.Backup{}, merr
		}
	default:
		return domain.Backup{}, fmt.Errorf("check archive of backup %s: %w", b.ID, err)
	}
	v.states.ReadApp(app, func(a *domain.App) { b, _ = a.Backup(id) })
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
		v.states.ReadApp(app, func(a *domain.App) { due = domain.DueVerifications(a, now, v.Every) })
		for _, id := range due {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			// Another replica may have checked it meanwhile: look again
			// rather than read the archive a second time.
			if !v.due(app, id, now) {
				continue
			}
			_, err := v.Verify(ctx, app, id, domain.Meta{Actor: domain.IntegrityActor, CommandID: fmt.Sprintf("%s.verify.%d", id, period)})
			if err != nil && domain.Code(err) != domain.CodeNotFound && domain.Code(err) != domain.CodeBackupStateConflict {
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

// due reports whether backup id of app is due for a check at now.
func (v *Verifier) due(app, id string, now time.Time) bool {
	ok := false
	v.states.ReadApp(app, func(a *domain.App) {
		if b, found := a.Backup(id); found {
			ok = domain.VerificationDue(b, now, v.Every)
		}
	})
	return ok
}
