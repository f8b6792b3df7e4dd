package service_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// t0 is the reference time of the tests: a Saturday in November.
var t0 = time.Date(2026, 11, 21, 10, 15, 0, 0, time.UTC)

// fakeClock is a Clock whose time the test sets.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeIDs makes counter-based ids that sort like ULIDs: 13 digits of Unix
// milliseconds, then 13 digits of a counter. They are valid idempotency keys.
type fakeIDs struct {
	mu sync.Mutex
	n  int
}

func (g *fakeIDs) NewID(t time.Time) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	return fmt.Sprintf("%013d%013d", t.UnixMilli(), g.n)
}

var (
	_ domain.Clock = (*fakeClock)(nil)
	_ domain.IDs   = (*fakeIDs)(nil)
)

// given is one event of a test's history: ev at t0+at. A nil ev stands for
// an event type this process does not know (type "test.unknown").
type given struct {
	at    time.Duration
	actor string
	ev    domain.Event
}

func requested(id string, origin domain.Origin) *domain.BackupRequested {
	return &domain.BackupRequested{BackupID: id, Name: "name of " + id, Origin: origin, ExpiresAt: t0.Add(60 * 24 * time.Hour)}
}

func started(id string, attempt int) *domain.BackupStarted {
	return &domain.BackupStarted{BackupID: id, Attempt: attempt, Worker: "w1"}
}

func completed(id string) *domain.BackupCompleted {
	return &domain.BackupCompleted{BackupID: id, SizeBytes: 1234, SHA256: sha64, ItemCount: 3, SchemaVersion: 2}
}

func failed(id string) *domain.BackupFailed {
	return &domain.BackupFailed{BackupID: id, Reason: "boom"}
}

func renamed(id, name string) *domain.BackupRenamed {
	return &domain.BackupRenamed{BackupID: id, Name: name}
}

func deleted(id string) *domain.BackupDeleted { return &domain.BackupDeleted{BackupID: id} }

// origCreated is when the backup an uploaded archive was made of was
// created (elsewhere).
var origCreated = time.Date(2026, 8, 29, 12, 2, 0, 0, time.UTC)

// imported returns what a validated upload says of itself: an archive of
// backup orig-1 of app erp.
func imported() domain.ImportedArchive {
	return domain.ImportedArchive{
		ArchiveInfo: domain.ArchiveInfo{SizeBytes: 2048, SHA256: sha64, ItemCount: 5},
		App:         "erp", BackupID: "orig-1", Name: "Before upgrade", Description: "from elsewhere",
		CreatedAt: origCreated, SchemaVersion: 3, Source: "kv", Components: []string{domain.ComponentConfig},
	}
}

func uploaded(id string) *domain.BackupUploaded {
	return &domain.BackupUploaded{BackupID: id, Name: "name of " + id, ExpiresAt: t0.Add(60 * 24 * time.Hour),
		SizeBytes: 2048, SHA256: sha64, ItemCount: 5, SchemaVersion: 3, Source: "kv",
		Original: domain.ArchiveOrigin{App: "erp", BackupID: "orig-1", Name: "Before upgrade", CreatedAt: origCreated}}
}

func corrupted(id string) *domain.BackupCorrupted {
	return &domain.BackupCorrupted{BackupID: id, Reason: "archive does not match the ledger: sha256 mismatch"}
}

// sha64 is a valid hex SHA-256 (of the empty string).
const sha64 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// envelope builds the envelope of ev as the ledger would write it; ev nil
// gives an event of unknown type.
func envelope(t testing.TB, app string, at time.Time, actor, commandID string, ev domain.Event) (*domain.Envelope, []byte) {
	t.Helper()
	env := &domain.Envelope{
		ID: "ev-" + commandID, Version: 1, App: app, Time: at, Actor: actor,
		CommandID: commandID, PrevHash: "",
	}
	if ev == nil {
		env.Type = "test.unknown"
		env.Data = json.RawMessage(`{"x":1}`)
	} else {
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("marshal %s: %v", ev.EventType(), err)
		}
		env.Type = ev.EventType()
		env.Data = data
	}
	body, err := json.Marshal(env)
	if err != nil {
		t.Fatalf("marshal envelope: %v", err)
	}
	return env, body
}

// fold returns the state of app after the given events, applied with
// sequences 1, 2, 3, ... and command ids c1, c2, ...
func fold(t testing.TB, app string, gs ...given) *domain.App {
	t.Helper()
	a := domain.NewApp(app, domain.DefaultRules().CommandMemory)
	for i, gv := range gs {
		actor := gv.actor
		if actor == "" {
			actor = "alice"
		}
		env, body := envelope(t, app, t0.Add(gv.at), actor, fmt.Sprintf("c%d", i+1), gv.ev)
		a.Apply(uint64(i+1), domain.HashEvent(body), env, gv.ev)
	}
	return a
}

// wantCode fails the test unless err has the code want ("" for nil).
func wantCode(t testing.TB, err error, want string) {
	t.Helper()
	if got := domain.Code(err); got != want {
		t.Fatalf("code = %q, want %q (err: %v)", got, want, err)
	}
	if want != "" {
		var e *domain.Error
		if !errors.As(err, &e) && want != domain.CodeConflict && want != domain.CodeInternal {
			t.Fatalf("err %v is not a *domain.Error", err)
		}
	}
}

// ptr returns a pointer to s.
func ptr(s string) *string { return &s }

// runes returns s repeated n times.
func runes(s string, n int) string { return strings.Repeat(s, n) }

// manual is a manual backup request for crm.
func manual() domain.RequestBackup {
	return domain.RequestBackup{App: "crm", Origin: domain.OriginManual}
}

// recordUpload is the command that records an upload of imported() as
// backup id of crm.
func recordUpload(id string) domain.RecordUpload {
	return domain.RecordUpload{App: "crm", BackupID: id, Archive: imported()}
}

// withArchive returns recordUpload(id) with the archive changed by edit.
func withArchive(id string, edit func(a *domain.ImportedArchive)) domain.RecordUpload {
	c := recordUpload(id)
	edit(&c.Archive)
	return c
}

// day is 24 hours.
const day = 24 * time.Hour

// keyOf returns the Ed25519 key of the seed 32×b: the tests' keys are
// fixed, so their ids and signatures are too.
func keyOf(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// pubOf returns the public key of priv.
func pubOf(priv ed25519.PrivateKey) ed25519.PublicKey { return priv.Public().(ed25519.PublicKey) }

// idOf returns the key id of priv.
func idOf(priv ed25519.PrivateKey) string { return domain.KeyIDOf(pubOf(priv)) }

var (
	mallory = keyOf(0x66) // a key that is not the ledger's
	macKey  = bytes.Repeat([]byte{7}, 32)

	evRequested = &domain.BackupRequested{BackupID: "b1", Name: "n", Origin: domain.OriginManual, ExpiresAt: t0.Add(60 * day)}
	evDeleted   = &domain.BackupDeleted{BackupID: "b1"}
	evOrg       = &domain.OrgCreated{Org: "acme", Name: "ACME"}
)
