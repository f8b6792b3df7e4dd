package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// t0 is the reference time of the tests: a Saturday in November.
var t0 = time.Date(2026, 11, 21, 10, 15, 0, 0, time.UTC)

// given is one event of a test's history: ev at t0+at. A nil ev stands for
// an event type this process does not know (type "test.unknown").
type given struct {
	at    time.Duration
	actor string
	ev    domain.Event
}

// g returns a given event by "alice" at t0+at.
func g(at time.Duration, ev domain.Event) given { return given{at: at, actor: "alice", ev: ev} }

func requested(id string, origin domain.Origin) *domain.BackupRequested {
	return &domain.BackupRequested{BackupID: id, Name: "name of " + id, Origin: origin, ExpiresAt: t0.Add(60 * 24 * time.Hour)}
}

// restoreRequested is a restore of backup src-1 of app erp into crm.
func restoreRequested(id string, pre bool) *domain.RestoreRequested {
	return &domain.RestoreRequested{RestoreID: id, SourceApp: "erp", BackupID: "src-1", BackupSHA256: sha64,
		BackupSizeBytes: 2048, BackupSchema: 1, BackupSource: "kv", PreRestoreBackup: pre}
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

// inStatus returns the history of backup id, requested at t0+at with
// origin, that leaves it in status st.
func inStatus(id string, at time.Duration, origin domain.Origin, st domain.Status) []given {
	out := []given{g(at, requested(id, origin))}
	switch st {
	case domain.StatusRunning:
		out = append(out, g(at+time.Second, started(id, 1)))
	case domain.StatusReady:
		out = append(out, g(at+time.Second, started(id, 1)), g(at+2*time.Second, completed(id)))
	case domain.StatusFailed:
		out = append(out, g(at+time.Second, failed(id)))
	}
	return out
}

// nBackups returns the history of n backups with status st and the given
// origin, created an hour apart, ids b01, b02, ...
func nBackups(n int, origin domain.Origin, st domain.Status) []given {
	var out []given
	for i := 1; i <= n; i++ {
		out = append(out, inStatus(fmt.Sprintf("b%02d", i), time.Duration(i)*time.Hour, origin, st)...)
	}
	return out
}

// nUploads returns the history of n uploaded backups u01, u02, ...,
// uploaded an hour apart.
func nUploads(n int) []given {
	var out []given
	for i := 1; i <= n; i++ {
		out = append(out, g(time.Duration(i)*time.Hour, uploaded(fmt.Sprintf("u%02d", i))))
	}
	return out
}

// concat joins histories.
func concat(hs ...[]given) []given {
	var out []given
	for _, h := range hs {
		out = append(out, h...)
	}
	return out
}

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

// newIDFunc returns a newID function for Decide that yields id.
func newIDFunc(id string) func() string { return func() string { return id } }

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
