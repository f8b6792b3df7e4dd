package domain

import (
	"slices"
	"time"
)

// Status is where a backup is in its life.
type Status string

// Backup statuses: queued → running → ready or failed.
const (
	StatusQueued  Status = "queued"
	StatusRunning Status = "running"
	StatusReady   Status = "ready"
	StatusFailed  Status = "failed"
)

// Backup is one backup as the ledger knows it.
type Backup struct {
	ID            string
	App           string
	Name          string
	Description   string
	Status        Status
	Origin        Origin
	CreatedBy     string
	CreatedAt     time.Time
	StartedAt     time.Time
	CompletedAt   time.Time
	ExpiresAt     time.Time
	SchemaVersion int
	SizeBytes     int64
	SHA256        string
	ItemCount     int
	Error         string
	Attempt       int
	// Source is the kind of source the archive came from.
	Source string
	// CorruptAt is when the archive was found not to match the ledger
	// (zero if never); CorruptReason says how.
	CorruptAt     time.Time
	CorruptReason string
	// Original is, for an uploaded backup, what its manifest names.
	Original *ArchiveOrigin
	// VerifiedAt is when its archive last passed a check (zero if never).
	VerifiedAt time.Time
	// Seq is the stream sequence of the backup.requested event.
	Seq uint64
}

// counts reports whether the backup counts against the app's quota.
func (b *Backup) counts() bool {
	return b.Status == StatusQueued || b.Status == StatusRunning || b.Status == StatusReady
}

// CommandRecord is what the app remembers of a command it accepted, so that
// a retry of the same command is answered with the first result.
type CommandRecord struct {
	Seq       uint64
	Type      string
	BackupID  string
	RestoreID string
	// Hash is the event's CommandHash: the request's fingerprint, "" when
	// the command id was not the client's (or before it was recorded).
	Hash string
	// App is the app of the event, set where records of several apps
	// meet (RestoreKeys).
	App string
	// Recall says that the app remembers only the command's Seq: the rest
	// is in the event there (RecallRecord).
	Recall bool
}

// App is the aggregate: the state of one app folded from its events. Its
// fields are changed only by Apply; commands read it to decide.
type App struct {
	id       string
	seq      uint64
	lastHash string
	events   int

	backups      map[string]*Backup // live backups (not deleted)
	deleted      map[string]bool
	lastManualAt time.Time
	// recentManual are the latest manual requests (at most
	// recentManualKept), so that the interval can be measured again
	// without one that the system failed.
	recentManual []manualRequest
	lastReadyAt  time.Time

	commands commandMemory

	maintenance   Maintenance
	restores      map[string]*Restore
	restoreOrder  []string
	activeRestore string

	firstAt time.Time
	night   NightState
}

// NewApp returns the empty state of app id. commandMemory bounds how many
// command ids it remembers (see Rules.CommandMemory).
// manualRequest is a manual backup request: its backup and when.
type manualRequest struct {
	backupID string
	at       time.Time
}

// recentManualKept bounds App.recentManual: a request older than that many
// manual requests is long past any minimum interval.
const recentManualKept = 16

func NewApp(id string, commandMemory int) *App {
	if commandMemory < 1 {
		commandMemory = 1
	}
	return &App{
		id:       id,
		backups:  map[string]*Backup{},
		deleted:  map[string]bool{},
		commands: newCommandMemory(commandMemory),
		restores: map[string]*Restore{},
	}
}

// ID returns the app id.
func (a *App) ID() string { return a.id }

// Seq returns the stream sequence of the last applied event of the app, 0
// when it has none: the expected last subject sequence of its next append.
func (a *App) Seq() uint64 { return a.seq }

// LastHash returns the hash of the last applied event: the next prev_hash.
func (a *App) LastHash() string { return a.lastHash }

// Events returns how many events the app has.
func (a *App) Events() int { return a.events }

// LastBackupAt returns when the app's last backup became ready (zero if
// never).
func (a *App) LastBackupAt() time.Time { return a.lastReadyAt }

// Backup returns a copy of a live backup.
func (a *App) Backup(id string) (Backup, bool) {
	b, ok := a.backups[id]
	if !ok {
		return Backup{}, false
	}
	return b.clone(), true
}

// clone returns a copy that shares nothing with b.
func (b *Backup) clone() Backup {
	c := *b
	if b.Original != nil {
		o := *b.Original
		c.Original = &o
	}
	return c
}

// Backups returns copies of the live backups sorted by creation time (then
// by stream sequence).
func (a *App) Backups() []Backup {
	out := make([]Backup, 0, len(a.backups))
	for _, b := range a.backups {
		out = append(out, b.clone())
	}
	slices.SortFunc(out, func(x, y Backup) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		switch {
		case x.Seq < y.Seq:
			return -1
		case x.Seq > y.Seq:
			return 1
		}
		return 0
	})
	return out
}

// CountByStatus returns how many live backups have each status.
func (a *App) CountByStatus() map[Status]int {
	m := map[Status]int{}
	for _, b := range a.backups {
		m[b.Status]++
	}
	return m
}

// StoredBytes returns the size of the live backups' archives.
func (a *App) StoredBytes() int64 {
	var n int64
	for _, b := range a.backups {
		n += b.SizeBytes
	}
	return n
}

// Quota returns how many backups count against the quota.
func (a *App) Quota() int {
	n := 0
	for _, b := range a.backups {
		if b.counts() {
			n++
		}
	}
	return n
}

// Command returns the record of an accepted command by its scoped key
// (see CommandKey).
func (a *App) Command(key string) (CommandRecord, bool) {
	return a.commands.get(key)
}

// CommandKey scopes a command id by its caller, so that two callers' keys
// never collide within an app.
func CommandKey(actor, commandID string) string { return actor + "\x00" + commandID }

// Refuse records that the message at stream sequence seq of the app's
// subject is not part of the ledger (LedgerCheck refused it): appends
// expect the subject's last sequence, so that moves; nothing else does,
// not even the hash chain.
func (a *App) Refuse(seq uint64) { a.seq = seq }

// remember records a command, forgetting the oldest beyond the memory. Its
// ids share the strings of the app's backups and restores where it can.
func (a *App) remember(key string, r CommandRecord) {
	if b, ok := a.backups[r.BackupID]; ok {
		r.BackupID = b.ID
	}
	if x, ok := a.restores[r.RestoreID]; ok {
		r.RestoreID = x.RestoreID
	}
	a.commands.put(key, r)
}
