package service

import (
	"context"
	"crypto/ed25519"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// This file holds the ports of the services: what they need of the world
// (the event store, the fold, secrets, keys, sources, archives), which the
// adapters implement.

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
	Export(ctx context.Context, app string, emit func(domain.Item) error) error
}

// ArchiveStore stores archives, one per backup id.
type ArchiveStore interface {
	ArchiveDeleter
	// WriteArchive streams an archive of the items that export emits into
	// the store under h.BackupID, replacing a partial one.
	WriteArchive(ctx context.Context, h domain.ArchiveHeader, export func(emit func(domain.Item) error) error) (domain.ArchiveInfo, error)
}

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

// For implements Sources.
func (s SourceSet) For(app string) Source {
	if src, ok := s.ByApp[app]; ok {
		return src
	}
	return s.Default
}

// Replacer is the import side of a Source: a restore replaces an app's
// content with an archive's.
type Replacer interface {
	// Replace makes app's content exactly the items that items emits
	// (Item.Component and Item.Path as Export gives them): everything not
	// among them is removed. It is idempotent, and leaves either the old
	// or the new content when it fails where the source can (dir renames
	// a whole folder into place), or content that a retry of Replace
	// makes right (kv).
	Replace(ctx context.Context, app string, items func(emit func(domain.Item) error) error) error
}

// ArchiveReader opens stored archives for restores.
// ArchiveChecker is implemented by an ArchiveReader that can check a
// stored archive's record without reading its bytes: present, readable,
// of the ledger's size and SHA-256 (else an error wrapping
// ErrArchiveCorrupt). A restore request checks it before it is recorded.
type ArchiveChecker interface {
	CheckArchive(ctx context.Context, backupID string, size int64, sha256 string) error
}

type ArchiveReader interface {
	// ReadArchive checks the stored archive of backupID against size and
	// sha256 (a mismatch is an error wrapping ErrArchiveCorrupt) and the
	// archive rules, then calls fn with its contents. The contents are
	// valid only during fn.
	ReadArchive(ctx context.Context, backupID string, size int64, sha256 string, fn func(domain.ArchiveContents) error) error
}

// ArchiveLister lists the stored archives.
type ArchiveLister interface {
	// ListArchives returns every complete archive object.
	ListArchives(ctx context.Context) ([]domain.ArchiveObject, error)
	// HasArchive reports whether the archive of backupID is stored.
	HasArchive(ctx context.Context, backupID string) (bool, error)
	// RemoveUnfinished removes what archives that were never completed
	// left in the store, last written before before, and returns how many.
	RemoveUnfinished(ctx context.Context, before time.Time) (int, error)
}

// EventStore appends events to the ledger stream.
type EventStore interface {
	// Append stores ev if the app's last stream sequence is ev.ExpectedSeq.
	// It returns an error wrapping ErrConflict when it is not.
	Append(ctx context.Context, ev domain.PendingEvent) (domain.AppendResult, error)
	// LastSeq returns the stream sequence of the app's last event, 0 if
	// the app has none.
	LastSeq(ctx context.Context, app string) (uint64, error)
	// Message returns the message at stream sequence seq, with its seal
	// and store time: a command's event, to recall its record. It returns
	// an *domain.Error with CodeNotFound when the stream holds none there.
	Message(ctx context.Context, seq uint64) (domain.StoredMessage, error)
}

// States is the fold of the ledger that this process keeps in memory (the
// projection). Commands are decided against it.
type States interface {
	// ReadApp calls fn with the current state of app (an empty state if the
	// app has no event) while no event is applied to it. fn must not keep a
	// or change it.
	ReadApp(app string, fn func(a *domain.App))
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
	Expect(hash string, env *domain.Envelope, ev domain.Event)
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

// ArchiveDeleter removes a backup's archive. Deleting a missing archive is
// not an error.
type ArchiveDeleter interface {
	DeleteArchive(ctx context.Context, backupID string) error
}

// SecretStore keeps what must never be in the event stream: password and
// token hashes. Only backupd may read it.
type SecretStore interface {
	// PutSecret stores value under key, replacing any value.
	PutSecret(ctx context.Context, key string, value []byte) error
	// Secret returns the value of key, or an error wrapping ErrNoSecret.
	Secret(ctx context.Context, key string) ([]byte, error)
}

// DirectoryView is the fold of the identity events that this process keeps
// (the projection); identity commands are decided against it.
type DirectoryView interface {
	// ReadDirectory calls fn with the directory while no event is applied
	// to it. fn must not keep or change it.
	ReadDirectory(fn func(d *domain.Directory))
	// WaitApplied returns once stream sequence seq is applied, or with
	// ctx's error.
	WaitApplied(ctx context.Context, seq uint64) error
}

// AppUsage says whether an app id is in use outside the directory: what
// decides whether an unregistered app exists (it has events, from before
// apps were registered) and whether a member may register it (never
// used).
type AppUsage interface {
	// HasEvents reports whether the app has events in the ledger.
	HasEvents(app string) bool
	// HasConfig reports whether the app's configuration source holds
	// anything.
	HasConfig(ctx context.Context, app string) (bool, error)
}

// KeyVault keeps the ledger's private keys where only backupd reads them
// (the key-value bucket ledger_keys at the edge). Keys are made at the
// edge, from crypto/rand.
type KeyVault interface {
	// NewSigningKey makes a new Ed25519 key and stores it under its
	// KeyIDOf; it never replaces a stored key.
	NewSigningKey(ctx context.Context) (ed25519.PrivateKey, error)
	// SigningKey returns the stored key of id, or an error wrapping
	// ErrNoKey. A stored key whose public key is not id's is an error.
	SigningKey(ctx context.Context, id string) (ed25519.PrivateKey, error)
	// MACKey returns the 32-byte key that authenticates the secrets
	// bucket's values, or an error wrapping ErrNoKey when the vault has
	// none.
	MACKey(ctx context.Context) ([]byte, error)
	// NewMACKey returns the MAC key, making and storing it if the vault
	// has none; every replica gets the same.
	NewMACKey(ctx context.Context) ([]byte, error)
	// ClaimGenesis records id as the ledger's first key unless another id
	// was recorded first, and returns the id recorded: replicas that start
	// together agree on one.
	ClaimGenesis(ctx context.Context, id string) (string, error)
	// Genesis returns the id ClaimGenesis recorded, or an error wrapping
	// ErrNoKey when none was.
	Genesis(ctx context.Context) (string, error)
}

// SubjectReader reads every message of one ledger subject, in stream
// order, with its signature headers and store time (the event store at
// the edge).
type SubjectReader interface {
	ReadSubject(ctx context.Context, token string) ([]domain.StoredMessage, error)
}

var _ Sources = SourceSet{}
