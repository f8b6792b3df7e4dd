package domain

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Command is a request to change one app. Deciding it against the app's
// state yields exactly one event or an error.
type Command interface {
	// CommandName is the stable name used in logs and metrics.
	CommandName() string
	// AppID is the app the command changes.
	AppID() string
	decide(a *App, c *decision) (Event, error)
}

// decision is what a command may use to decide besides the app's state.
type decision struct {
	now   time.Time
	rules Rules
	newID func() string
}

// RequestBackup asks for a new backup of an app. Name nil means the default
// name; a given name is trimmed and must then be 1 to 100 characters.
type RequestBackup struct {
	App         string
	Name        *string
	Description string
	Origin      Origin
	// RestoreID names the restore a pre-restore backup is made for
	// (origin pre_restore only).
	RestoreID string
}

// StartBackup marks a queued backup running. A higher Attempt restarts a
// backup whose previous worker died.
type StartBackup struct {
	App      string
	BackupID string
	Attempt  int
	Worker   string
}

// CompleteBackup marks a running backup ready with its archive's facts.
// Attempt must be the backup's current attempt: a stale worker whose job was
// given to another cannot complete it.
type CompleteBackup struct {
	App           string
	BackupID      string
	Attempt       int
	SizeBytes     int64
	SHA256        string
	ItemCount     int
	SchemaVersion int
	Source        string
}

// RecordUpload records an archive that was validated and stored under
// BackupID as a new ready backup of App, with origin upload. Name nil means
// the default name.
type RecordUpload struct {
	App         string
	BackupID    string
	Name        *string
	Description string
	Archive     ImportedArchive
}

// MarkCorrupt records that a ready backup's archive does not match the
// ledger.
type MarkCorrupt struct {
	App      string
	BackupID string
	Reason   string
}

// FailBackup marks a queued or running backup failed with a reason.
type FailBackup struct {
	App      string
	BackupID string
	Reason   string
}

// RenameBackup gives a backup a new name.
type RenameBackup struct {
	App      string
	BackupID string
	Name     string
}

// DeleteBackup removes a backup from the list; its archive is deleted.
type DeleteBackup struct {
	App      string
	BackupID string
}

// CommandName implements Command.
func (RequestBackup) CommandName() string { return "backup.request" }

// CommandName implements Command.
func (StartBackup) CommandName() string { return "backup.start" }

// CommandName implements Command.
func (CompleteBackup) CommandName() string { return "backup.complete" }

// CommandName implements Command.
func (FailBackup) CommandName() string { return "backup.fail" }

// CommandName implements Command.
func (RecordUpload) CommandName() string { return "backup.upload" }

// CommandName implements Command.
func (MarkCorrupt) CommandName() string { return "backup.mark_corrupt" }

// AppID implements Command.
func (c RecordUpload) AppID() string { return c.App }

// AppID implements Command.
func (c MarkCorrupt) AppID() string { return c.App }

// CommandName implements Command.
func (RenameBackup) CommandName() string { return "backup.rename" }

// CommandName implements Command.
func (DeleteBackup) CommandName() string { return "backup.delete" }

// AppID implements Command.
func (c RequestBackup) AppID() string { return c.App }

// AppID implements Command.
func (c StartBackup) AppID() string { return c.App }

// AppID implements Command.
func (c CompleteBackup) AppID() string { return c.App }

// AppID implements Command.
func (c FailBackup) AppID() string { return c.App }

// AppID implements Command.
func (c RenameBackup) AppID() string { return c.App }

// AppID implements Command.
func (c DeleteBackup) AppID() string { return c.App }

func (c RequestBackup) decide(a *App, d *decision) (Event, error) {
	origin := c.Origin
	if origin == "" {
		origin = OriginManual
	}
	if !origin.Valid() {
		return nil, Errorf(CodeInvalidArgument, "unknown origin %q", origin)
	}
	name := d.rules.DefaultName(d.now)
	if c.Name != nil {
		n, err := NormalizeName(*c.Name)
		if err != nil {
			return nil, err
		}
		name = n
	}
	desc, err := NormalizeDescription(c.Description)
	if err != nil {
		return nil, err
	}
	if (origin == OriginPreRestore) != (c.RestoreID != "") {
		return nil, Errorf(CodeInvalidArgument, "a pre-restore backup, and only it, names its restore")
	}
	if c.RestoreID != "" {
		r, err := running(a, c.RestoreID)
		if err != nil {
			return nil, err
		}
		if !r.PreRestoreBackup || r.PreBackupID != "" {
			return nil, Errorf(CodeBackupStateConflict, "restore %s asks for no (more) pre-restore backup", c.RestoreID)
		}
	}
	if q := a.Quota(); q >= d.rules.MaxBackups {
		return nil, Errorf(CodeQuotaExceeded, "app %s already holds %d backups, the most allowed; delete one first", a.id, q)
	}
	if origin == OriginManual && !a.lastManualAt.IsZero() {
		next := a.lastManualAt.Add(d.rules.MinInterval)
		if d.now.Before(next) {
			wait := next.Sub(d.now)
			e := Errorf(CodeTooSoon, "backups of app %s must be at least %s apart; the next one is allowed at %s",
				a.id, d.rules.MinInterval, next.UTC().Format(time.RFC3339))
			e.RetryAfter = wait
			return nil, e
		}
	}
	return &BackupRequested{
		BackupID:    d.newID(),
		Name:        name,
		Description: desc,
		Origin:      origin,
		ExpiresAt:   d.now.Add(d.rules.Retention).UTC(),
		RestoreID:   c.RestoreID,
	}, nil
}

// live returns the live backup id of app a, or a not-found error.
func live(a *App, id string) (*Backup, error) {
	if b, ok := a.backups[id]; ok {
		return b, nil
	}
	if a.deleted[id] {
		return nil, Errorf(CodeNotFound, "backup %s of app %s was deleted", id, a.id)
	}
	return nil, Errorf(CodeNotFound, "backup %s not found in app %s", id, a.id)
}

func stateConflict(b *Backup, what string) error {
	return Errorf(CodeBackupStateConflict, "backup %s is %s and cannot be %s", b.ID, b.Status, what)
}

func (c StartBackup) decide(a *App, _ *decision) (Event, error) {
	b, err := live(a, c.BackupID)
	if err != nil {
		return nil, err
	}
	if c.Attempt < 1 {
		return nil, Errorf(CodeInvalidArgument, "attempt must be at least 1")
	}
	switch {
	case b.Status == StatusQueued:
	case b.Status == StatusRunning && c.Attempt > b.Attempt:
	default:
		return nil, stateConflict(b, "started")
	}
	return &BackupStarted{BackupID: b.ID, Attempt: c.Attempt, Worker: strings.ToValidUTF8(c.Worker, "\uFFFD")}, nil
}

func (c CompleteBackup) decide(a *App, _ *decision) (Event, error) {
	b, err := live(a, c.BackupID)
	if err != nil {
		return nil, err
	}
	if b.Status != StatusRunning {
		return nil, stateConflict(b, "completed")
	}
	if c.SizeBytes < 0 || c.ItemCount < 0 || !IsLowerHex(c.SHA256, 64) {
		return nil, Errorf(CodeInvalidArgument, "completion needs a size, an item count and a lowercase hex SHA-256")
	}
	if c.Attempt != b.Attempt {
		return nil, Errorf(CodeBackupStateConflict, "backup %s is running attempt %d; attempt %d cannot complete it", b.ID, b.Attempt, c.Attempt)
	}
	return &BackupCompleted{BackupID: b.ID, SizeBytes: c.SizeBytes, SHA256: c.SHA256,
		ItemCount: c.ItemCount, SchemaVersion: c.SchemaVersion, Source: c.Source}, nil
}

func (c RecordUpload) decide(a *App, d *decision) (Event, error) {
	if c.BackupID == "" {
		return nil, Errorf(CodeInvalidArgument, "an upload needs a backup id")
	}
	if _, ok := a.backups[c.BackupID]; ok || a.deleted[c.BackupID] {
		return nil, Errorf(CodeBackupStateConflict, "backup %s already exists in app %s", c.BackupID, a.id)
	}
	name := d.rules.DefaultName(d.now)
	if c.Name != nil {
		n, err := NormalizeName(*c.Name)
		if err != nil {
			return nil, err
		}
		name = n
	}
	desc, err := NormalizeDescription(c.Description)
	if err != nil {
		return nil, err
	}
	ar := c.Archive
	if ar.SizeBytes < 0 || ar.ItemCount < 0 || !IsLowerHex(ar.SHA256, 64) {
		return nil, Errorf(CodeInvalidArgument, "an upload needs a size, an item count and a lowercase hex SHA-256")
	}
	if q := a.Quota(); q >= d.rules.MaxBackups {
		return nil, Errorf(CodeQuotaExceeded, "app %s already holds %d backups, the most allowed; delete one first", a.id, q)
	}
	if y := ar.CreatedAt.Year(); y < 1 || y > 9999 {
		return nil, Errorf(CodeArchiveInvalid, "the manifest's created_at %s is out of range", ar.CreatedAt)
	}
	// What the manifest says is kept for information: made valid, without
	// control characters, and bounded so that the event stays small.
	valid := func(s string) string { return clip(s, 200) }
	return &BackupUploaded{
		BackupID: c.BackupID, Name: name, Description: desc, ExpiresAt: d.now.Add(d.rules.Retention).UTC(),
		SizeBytes: ar.SizeBytes, SHA256: ar.SHA256, ItemCount: ar.ItemCount,
		SchemaVersion: ar.SchemaVersion, Source: valid(ar.Source),
		Original: ArchiveOrigin{App: valid(ar.App), BackupID: valid(ar.BackupID), Name: valid(ar.Name), CreatedAt: ar.CreatedAt.UTC()},
	}, nil
}

func (c MarkCorrupt) decide(a *App, _ *decision) (Event, error) {
	b, err := live(a, c.BackupID)
	if err != nil {
		return nil, err
	}
	if b.Status != StatusReady {
		return nil, stateConflict(b, "marked corrupt")
	}
	if !b.CorruptAt.IsZero() {
		return nil, Errorf(CodeBackupStateConflict, "backup %s is already marked corrupt", b.ID)
	}
	reason := clip(c.Reason, 1000)
	if reason == "" {
		reason = "archive does not match the ledger"
	}
	return &BackupCorrupted{BackupID: b.ID, Reason: reason}, nil
}

func (c FailBackup) decide(a *App, _ *decision) (Event, error) {
	b, err := live(a, c.BackupID)
	if err != nil {
		return nil, err
	}
	if b.Status != StatusQueued && b.Status != StatusRunning {
		return nil, stateConflict(b, "failed")
	}
	reason := strings.ToValidUTF8(c.Reason, "\uFFFD")
	if reason == "" {
		reason = "unknown"
	}
	if utf8.RuneCountInString(reason) > 1000 {
		reason = string([]rune(reason)[:1000])
	}
	return &BackupFailed{BackupID: b.ID, Reason: reason}, nil
}

func (c RenameBackup) decide(a *App, _ *decision) (Event, error) {
	name, err := NormalizeName(c.Name)
	if err != nil {
		return nil, err
	}
	b, err := live(a, c.BackupID)
	if err != nil {
		return nil, err
	}
	return &BackupRenamed{BackupID: b.ID, Name: name, PreviousName: b.Name}, nil
}

func (c DeleteBackup) decide(a *App, _ *decision) (Event, error) {
	b, err := live(a, c.BackupID)
	if err != nil {
		return nil, err
	}
	return &BackupDeleted{BackupID: b.ID}, nil
}

// Decide decides cmd against a at time now under rules, with newID making
// any id the event needs. It is the pure core that Ledger.Execute wraps; it
// is exported for tests and tools that replay decisions.
func Decide(a *App, cmd Command, now time.Time, rules Rules, newID func() string) (Event, error) {
	if err := ValidateAppID(cmd.AppID()); err != nil {
		return nil, err
	}
	return cmd.decide(a, &decision{now: now, rules: rules, newID: newID})
}

// IsLowerHex reports whether s is n lowercase hexadecimal digits (a
// SHA-256 in the ledger's and the archive's form).
func IsLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// clip makes s valid UTF-8, replaces control characters with spaces and
// keeps at most n runes.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for i, r := range []rune(s) {
		if i == n {
			break
		}
		if unicode.IsControl(r) {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}
