// Package projections holds the read models that each backupd process folds
// in memory from the ledger stream: the app states that commands are decided
// against, the backup lists, and the per-app and per-backup logs.
package projections

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// Store is the in-memory projection of the ledger. One goroutine feeds it
// with Apply in stream order; any number read it.
type Store struct {
	commandMemory int
	maxBackups    int
	log           *slog.Logger

	mu      sync.RWMutex
	apps    map[string]*appModel
	dir     domain.Directory // the identity events
	applied uint64
	// appliedHash is the hash of the body of the message at applied: a
	// snapshot names the message it ends with.
	appliedHash string
	// check decides which messages are part of the ledger (signatures and
	// hash chains).
	check       *domain.LedgerCheck
	macKey      func(string) []byte // of Options.MACKey
	pin         string              // of Options.Genesis
	rejected    map[string]uint64   // messages refused, by reason
	refused     map[uint64]string   // the last maxRefused refused sequences' reasons
	lastRefused uint64
	onKey       func(domain.KeyInfo)
	// restoreKeys are the restore requests made with a client's key, by
	// source app, actor and key (domain.RestoreKeys).
	restoreKeys map[string]domain.CommandRecord

	wmu     sync.Mutex
	waiters []waiter

	emu      sync.Mutex
	expected map[string]decoded // by HashEvent of the body

	hist HistoryReader // of Options.History; nil: no time travel
	// logMemory is how many of each app's latest log entries stay in
	// memory (0: all); older ones are read from hist when asked.
	logMemory int
}

type appModel struct {
	state *domain.App
	log   appLog
}

type waiter struct {
	seq uint64
	ch  chan struct{}
}

// The Store is also the fold the services decide against (service.States,
// service.Expecter, service.RefusalReporter, service.DirectoryView); the
// package tests check it, since projections does not import service.
var _ domain.RestoreKeys = (*Store)(nil)

// Options are what a Store takes beyond its rules; the zero value is a
// store that logs nothing, trusts no MAC, pins no genesis and cannot time
// travel.
type Options struct {
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// MACKey, when set, makes the store the check of the process that
	// holds the ledger's keys (domain.LedgerCheck.TrustMAC): it returns the
	// event MAC key of a signing key it holds (service.Signing.MACKeyOf),
	// nil for another, and must not block. Also in time travel.
	MACKey func(keyID string) []byte
	// Genesis, when set, is the only key a genesis may announce
	// (domain.LedgerCheck.PinGenesis), also in time travel: the genesis key
	// the vault recorded (service.Signing.GenesisKey).
	Genesis string
	// OnKeys, when set, hears of the ledger's current key each time an
	// accepted key event (key.created, key.rotated) changes it
	// (service.Signing.Learn). It is called from Apply, so it must not call
	// back into the store.
	OnKeys func(domain.KeyInfo)
	// History is the reader that time travel (AppAsOf, BackupsAsOf) folds
	// past states from; without it they answer unavailable. With it, the
	// logs keep only their latest entries in memory (LogMemory) and read
	// older ones from it.
	History HistoryReader
	// LogMemory is how many of each app's latest log entries stay in
	// memory when History is set; 0 means DefaultLogMemory.
	LogMemory int
}

// DefaultLogMemory is how many of each app's latest log entries a Store
// with a History keeps in memory: a log longer than that is read from the
// stream when asked, so that memory does not grow with the ledger.
const DefaultLogMemory = 64

// New returns an empty Store for the given rules and options.
func New(rules domain.Rules, opts Options) *Store {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rejected := map[string]uint64{}
	for _, r := range RejectReasons {
		rejected[r] = 0
	}
	onKey := opts.OnKeys
	if onKey == nil {
		onKey = func(domain.KeyInfo) {}
	}
	check := domain.NewLedgerCheck()
	if opts.MACKey != nil {
		check.TrustMAC(opts.MACKey)
	}
	if opts.Genesis != "" {
		check.PinGenesis(opts.Genesis)
	}
	s := &Store{commandMemory: rules.CommandMemory, maxBackups: rules.MaxBackups, log: log, apps: map[string]*appModel{},
		expected: map[string]decoded{}, check: check, rejected: rejected, refused: map[uint64]string{},
		onKey: onKey, restoreKeys: map[string]domain.CommandRecord{}, macKey: opts.MACKey, pin: opts.Genesis,
		hist: opts.History}
	if s.hist != nil {
		s.logMemory = cmp.Or(opts.LogMemory, DefaultLogMemory)
	}
	return s
}

// RejectReasons are the reasons a message of the ledger's stream is
// refused (domain.LedgerCheck), as Rejected counts them.
var RejectReasons = []string{
	domain.ReasonUnsigned, domain.ReasonUnknownKey, domain.ReasonRetiredKey, domain.ReasonBadSignature,
	domain.ReasonUndecodable, domain.ReasonWrongApp, domain.ReasonPrevHash, domain.ReasonBadKeyEvent, domain.ReasonBadSubject, domain.ReasonNotGenesis,
}

// Rejected returns how many messages of the stream were refused, by
// reason (every reason of RejectReasons, also at zero).
func (s *Store) Rejected() map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.rejected)
}

// Applied returns the stream sequence of the last applied message.
func (s *Store) Applied() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// Expect implements service.States (its service.Expecter): the ledger of
// this process announces an event it is about to append, so that Apply
// need not decode it again.
func (s *Store) Expect(hash string, env *domain.Envelope, ev domain.Event) {
	s.emu.Lock()
	s.expected[hash] = decoded{env: env, ev: ev}
	s.emu.Unlock()
}

// Unexpect implements service.States (its service.Expecter): the announced
// event was not stored.
func (s *Store) Unexpect(hash string) {
	s.emu.Lock()
	delete(s.expected, hash)
	s.emu.Unlock()
}

// take returns and forgets the announced decoding of the body with hash.
func (s *Store) take(hash string) (decoded, bool) {
	s.emu.Lock()
	defer s.emu.Unlock()
	d, ok := s.expected[hash]
	if ok {
		delete(s.expected, hash)
	}
	return d, ok
}

// TypeUndecodable is the log's event name for a message of the unsigned
// prefix on an app's subject that is not a valid event.
const TypeUndecodable = "undecodable"

// TypeRejected is the log's event name for a message on an app's subject
// that is not part of the ledger (not signed by a key of the ledger, or
// not chained to the app's last event): it changed nothing.
const TypeRejected = "rejected"

// Apply folds m, the next message of the stream, into the read models, if
// it is part of the ledger (domain.LedgerCheck: signed by a key of the
// ledger and chained to its subject's last accepted event, or of the
// unsigned prefix before the genesis). A refused message changes no state:
// it is counted (Rejected), logged with its stream sequence, and shown in
// its app's log as TypeRejected; only its subject's last sequence moves,
// since appends expect it. In the unsigned prefix, a message that is not a
// valid event, or names another app, is folded into the app of its subject
// as an opaque event that advances its sequence and hash chain but changes
// no backup, as backupd always did. The applied sequence always advances,
// so that readers waiting for it are not stuck.
func (s *Store) Apply(m domain.StoredMessage) {
	s.apply1(m, nil)
}

// Prepare does the part of applying m that depends on no other message
// (its hash, MAC and decoding: domain.Prepare), and returns the rest, to
// be called in stream order as Apply would be. It may be called from any
// goroutine, ahead of the messages before m being applied: a follower
// prepares the next messages while it applies the last ones.
func (s *Store) Prepare(m domain.StoredMessage) (apply func()) {
	p := domain.Hashed(m)
	s.emu.Lock()
	_, own := s.expected[p.Hash]
	s.emu.Unlock()
	if !own {
		// This process did not append it (it would hold its decoding).
		p.Prepare(m, s.macKey)
	}
	return func() { s.apply1(m, p) }
}

// apply1 is Apply of m, with the work Prepare did for it if p is set.
func (s *Store) apply1(m domain.StoredMessage, p *domain.Prepared) {
	if p == nil {
		p = domain.Hashed(m)
	}
	hash := p.Hash
	own, isOwn := s.take(hash)
	s.mu.Lock()
	var v domain.Verdict
	switch {
	case isOwn:
		v = s.check.CheckOwn(m, domain.Own{Hash: hash, Env: own.env, Event: own.ev})
	default:
		v = s.check.CheckPrepared(m, p)
	}
	switch {
	case !v.Accepted():
		s.refuse(m, v)
	case m.Token == domain.KeysStream:
		if cur, ok := s.check.CurrentKey(); ok && cur.CreatedSeq == m.Seq {
			s.onKey(cur)
		}
	case m.Token == domain.IdentityStream:
		s.dir.ApplyDecoded(m.Seq, hash, v.Env, v.Event) // env nil when undecodable
	case v.Env == nil:
		s.log.Error("undecodable ledger message folded as opaque", "seq", m.Seq, "app", m.Token)
		s.apply(m.Seq, hash, appEvent(m, v))
	case v.Env.App != m.Token:
		s.log.Error("ledger message names another app than its subject; folded as opaque",
			"seq", m.Seq, "app", m.Token, "body_app", v.Env.App)
		s.apply(m.Seq, hash, appEvent(m, v))
	default:
		s.apply(m.Seq, hash, appEvent(m, v))
	}
	if m.Seq > s.applied {
		s.applied, s.appliedHash = m.Seq, hash
	}
	s.mu.Unlock()
	s.notify(m.Seq)
}

// maxRefused bounds the refused sequences Refused remembers.
const maxRefused = 4096

// Refused implements service.RefusalReporter: whether the message at seq,
// applied, was refused, and why. It remembers the last 4096 refusals.
func (s *Store) Refused(seq uint64) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.refused[seq]
	return r, ok
}

// LastRefused returns the stream sequence of the last message refused, 0
// if none.
func (s *Store) LastRefused() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastRefused
}

// refuse records a message that is not part of the ledger.
func (s *Store) refuse(m domain.StoredMessage, v domain.Verdict) {
	s.rejected[v.Rejected]++
	if len(s.refused) >= maxRefused {
		delete(s.refused, slices.Min(slices.Collect(maps.Keys(s.refused))))
	}
	s.refused[m.Seq] = v.Rejected
	s.lastRefused = m.Seq
	s.log.Error("ledger message refused", "seq", m.Seq, "app", m.Token, "reason", v.Rejected, "detail", v.Detail,
		"claimed_type", typeOf(v.Env), "key_id", m.KeyID)
	switch {
	case m.Token == domain.IdentityStream:
		s.dir.Refuse(m.Seq)
	case domain.ValidateAppID(m.Token) == nil:
		a := s.model(m.Token)
		a.state.Refuse(m.Seq)
		a.log.add(rejectedEntry(m, v), s.logMemory)
	}
}

func typeOf(env *domain.Envelope) string {
	if env == nil {
		return ""
	}
	return env.Type
}

// decoded is one event's envelope and data.
type decoded struct {
	env *domain.Envelope
	ev  domain.Event // nil for a type this process does not know
}

func decode(body []byte) (decoded, error) {
	var env domain.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return decoded{}, err
	}
	ev, err := domain.DecodeEvent(&env)
	if err != nil {
		// Folded as opaque: an older process survives a newer event type.
		ev = nil
	}
	return decoded{env: &env, ev: ev}, nil
}

// model returns the read model of app, made if it has none yet.
func (s *Store) model(app string) *appModel {
	m := s.apps[app]
	if m == nil {
		m = &appModel{state: domain.NewApp(app, s.commandMemory), log: appLog{backups: map[string]uint64{}}}
		s.apps[app] = m
	}
	return m
}

func (s *Store) apply(seq uint64, hash string, d decoded) {
	env, ev := d.env, d.ev
	m := s.model(env.App)
	m.state.Apply(seq, hash, env, ev)
	if r, ok := ev.(*domain.RestoreRequested); ok && env.CommandHash != "" {
		s.restoreKeys[restoreKey(r.SourceApp, env.Actor, env.CommandID)] = domain.CommandRecord{
			Seq: seq, Type: env.Type, RestoreID: r.RestoreID, Hash: env.CommandHash, App: env.App}
	}
	m.log.add(loggedOf(seq, d), s.logMemory)
}

// logged is one event as the logs keep it (not the whole envelope, to keep
// memory small); its words are made when read.
type logged struct {
	seq   uint64
	time  time.Time
	actor string
	typ   string
	ev    domain.Event
	note  string // why a TypeRejected message was refused
}

func (l logged) entry() LogEntry {
	e := LogEntry{Seq: l.seq, Time: l.time, Actor: l.actor, Event: l.typ, BackupID: domain.BackupID(l.ev)}
	if l.typ == TypeRejected {
		e.Message, e.Result = l.note, "rejected"
		return e
	}
	e.Message, e.Result = describe(l.ev, l.typ)
	return e
}

// describe says in words what an event did, and with what result.
func describe(ev domain.Event, typ string) (string, string) {
	switch e := ev.(type) {
	case *domain.BackupRequested:
		return fmt.Sprintf("backup %q requested (origin %s)", e.Name, e.Origin), "ok"
	case *domain.BackupStarted:
		return fmt.Sprintf("backup started by %s (attempt %d)", cmp.Or(e.Worker, "a worker"), e.Attempt), "ok"
	case *domain.BackupCompleted:
		return fmt.Sprintf("backup ready: %s, %s", count(e.ItemCount, "item"), count(int(e.SizeBytes), "byte")), "ok"
	case *domain.BackupFailed:
		return "backup failed: " + e.Reason, "failed"
	case *domain.BackupRenamed:
		return fmt.Sprintf("backup renamed from %q to %q", e.PreviousName, e.Name), "ok"
	case *domain.BackupDeleted:
		return "backup deleted", "ok"
	case *domain.BackupVerified:
		return fmt.Sprintf("archive checked: it matches sha256 %s and its manifest (%d entries)", e.SHA256, e.ItemCount), "ok"
	case *domain.BackupExpired:
		return fmt.Sprintf("backup expired (it was kept until %s); its archive is deleted", e.ExpiresAt.UTC().Format(time.RFC3339)), "ok"
	case *domain.BackupUploaded:
		return fmt.Sprintf("backup %q uploaded: %s, %s (made of backup %s of app %s)",
			e.Name, count(e.ItemCount, "item"), count(int(e.SizeBytes), "byte"), cmp.Or(e.Original.BackupID, "?"), cmp.Or(e.Original.App, "?")), "ok"
	case *domain.BackupCorrupted:
		return "backup found corrupt: " + e.Reason, "failed"
	case *domain.ScheduleSet:
		if !e.Enabled {
			return fmt.Sprintf("nightly backups off (schedule %s %s kept)", e.Time, e.TimeZone), "ok"
		}
		return fmt.Sprintf("nightly backups on, every day at %s %s", e.Time, e.TimeZone), "ok"
	case *domain.NightlySkipped:
		return fmt.Sprintf("nightly backup of %s (try %d) skipped: %s", e.Night, e.Try, e.Reason), "failed"
	case *domain.ArchiveOrphanRemoved:
		return fmt.Sprintf("orphaned archive %s removed (%d bytes, stored %s): %s", e.BackupID, e.SizeBytes,
			e.StoredAt.UTC().Format(time.RFC3339), e.Reason), "ok"
	case *domain.MaintenanceStarted:
		return "maintenance started: " + e.Reason, "ok"
	case *domain.MaintenanceEnded:
		return strings.TrimSuffix("maintenance ended: "+e.Reason, ": "), "ok"
	case *domain.RestoreRequested:
		return fmt.Sprintf("restore %s of backup %s of app %s requested (pre-restore backup: %v, end maintenance after: %v)",
			e.RestoreID, e.BackupID, e.SourceApp, e.PreRestoreBackup, e.AutoEndMaintenance), "ok"
	case *domain.RestorePreBackupReady:
		return fmt.Sprintf("restore %s: pre-restore backup %s ready", e.RestoreID, e.BackupID), "ok"
	case *domain.RestoreArchiveVerified:
		return fmt.Sprintf("restore %s: archive checked against sha256 %s", e.RestoreID, e.SHA256), "ok"
	case *domain.RestoreImported:
		msg := fmt.Sprintf("restore %s: configuration replaced, %d items", e.RestoreID, e.Items)
		if len(e.Migrations) > 0 {
			msg += ", migrated: " + strings.Join(e.Migrations, ", ")
		}
		return msg, "ok"
	case *domain.RestoreCompleted:
		msg := fmt.Sprintf("restore %s completed and verified (digest %s)", e.RestoreID, e.Digest)
		if e.PreRestoreBackup != "" {
			msg += "; the state before it is in backup " + e.PreRestoreBackup
		}
		return msg, "ok"
	case *domain.RestoreFailed:
		msg := fmt.Sprintf("restore %s failed in step %s: %s", e.RestoreID, e.Step, e.Reason)
		if e.PreRestoreBackup != "" {
			msg += "; roll back with backup " + e.PreRestoreBackup
		}
		return msg, "failed"
	}
	if typ == TypeUndecodable {
		return "a message that is not a valid event was skipped", "failed"
	}
	return typ, "ok"
}

// notify wakes the waiters whose sequence has been applied.
func (s *Store) notify(seq uint64) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if len(s.waiters) == 0 {
		return
	}
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if w.seq <= seq {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.waiters[len(kept):])
	s.waiters = kept
}

// WaitApplied implements service.States.
func (s *Store) WaitApplied(ctx context.Context, seq uint64) error {
	if s.Applied() >= seq {
		return nil
	}
	ch := make(chan struct{})
	s.wmu.Lock()
	s.waiters = append(s.waiters, waiter{seq: seq, ch: ch})
	s.wmu.Unlock()
	// Applied may have passed seq between the check and the registration.
	if s.Applied() >= seq {
		s.notify(s.Applied())
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.wmu.Lock()
		for i, w := range s.waiters {
			if w.ch == ch {
				s.waiters = slices.Delete(s.waiters, i, i+1)
				break
			}
		}
		s.wmu.Unlock()
		return fmt.Errorf("wait for projection to apply seq %d: %w", seq, ctx.Err())
	}
}

func restoreKey(source, actor, commandID string) string {
	return source + "\x00" + domain.CommandKey(actor, commandID)
}

// RestoreByKey implements domain.RestoreKeys.
func (s *Store) RestoreByKey(sourceApp, actor, commandID string) (domain.CommandRecord, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.restoreKeys[restoreKey(sourceApp, actor, commandID)]
	return r, ok
}

// ReadApp implements service.States.
func (s *Store) ReadApp(app string, fn func(a *domain.App)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m := s.apps[app]; m != nil {
		fn(m.state)
		return
	}
	fn(domain.NewApp(app, 1))
}

// ReadDirectory implements service.DirectoryView: fn reads the fold of the
// identity events while none is applied.
func (s *Store) ReadDirectory(fn func(d *domain.Directory)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(&s.dir)
}

// Backups returns the live backups of app sorted by creation time; an app
// without events has none.
func (s *Store) Backups(app string) []BackupView {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []BackupView{}
	if m := s.apps[app]; m != nil {
		for _, b := range m.state.Backups() {
			out = append(out, NewBackupView(b))
		}
	}
	return out
}

// AllBackups returns the live backups of every app that visible accepts,
// sorted by creation time, then by stream sequence (as each app's list).
func (s *Store) AllBackups(visible func(app string) bool) []BackupView {
	s.mu.RLock()
	var all []domain.Backup
	for id, m := range s.apps {
		if visible != nil && !visible(id) {
			continue
		}
		all = append(all, m.state.Backups()...)
	}
	s.mu.RUnlock()
	slices.SortFunc(all, func(x, y domain.Backup) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(x.Seq, y.Seq)
	})
	out := make([]BackupView, len(all))
	for i, b := range all {
		out[i] = NewBackupView(b)
	}
	return out
}

// Backup returns one live backup, or an *domain.Error with CodeNotFound.
func (s *Store) Backup(app, id string) (BackupView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m := s.apps[app]; m != nil {
		if b, ok := m.state.Backup(id); ok {
			return NewBackupView(b), nil
		}
	}
	return BackupView{}, domain.Errorf(domain.CodeNotFound, "backup %s not found in app %s", id, app)
}

// App returns the state of app; an app without events is empty.
func (s *Store) App(app string) AppView {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := AppView{App: app, QuotaLimit: s.maxBackups, ByStatus: map[string]int{}}
	for _, st := range []domain.Status{domain.StatusQueued, domain.StatusRunning, domain.StatusReady, domain.StatusFailed} {
		v.ByStatus[string(st)] = 0
	}
	m := s.apps[app]
	if m == nil {
		return v
	}
	fillAppView(&v, m.state)
	return v
}

// fillAppView fills v with the state of a.
func fillAppView(v *AppView, a *domain.App) {
	for st, n := range a.CountByStatus() {
		v.ByStatus[string(st)] = n
		v.BackupCount += n
	}
	v.QuotaUsed = a.Quota()
	if t := a.LastBackupAt(); !t.IsZero() {
		t = t.UTC()
		v.LastBackupAt = &t
	}
	v.LastSeq = a.Seq()
	v.Events = a.Events()
	v.StoredBytes = a.StoredBytes()
	restoreState(v, a)
}

// Apps returns the ids of all apps with events, sorted.
func (s *Store) Apps() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.apps))
	for id, m := range s.apps {
		if m.state.Events() > 0 { // not an app whose messages were all refused
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
