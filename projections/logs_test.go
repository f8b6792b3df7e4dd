package projections_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// With a history, a log longer than the memory keeps is read from the
// stream, and says what the log of a store that keeps every entry says:
// refused and undecodable messages, key rotations, deleted backups.
func TestLogsBeyondTheMemoryAreReadFromTheStream(t *testing.T) {
	l := newSignedLedger(t) // keeps every entry
	l.emit("crm", "alice", requested("old"))
	l.store("crm", []byte("not an event"), nil) // undecodable, in the unsigned prefix
	l.genesis(ledgerKey)
	l.emit("crm", "alice", requested("b1"))
	l.emit(domain.IdentityStream, "admin", &domain.OrgCreated{Org: "acme", Name: "ACME"})
	l.emit("crm", "worker", completed("b1"))
	forged := l.forge("crm", "mallory", deleteB1, foreignKey)
	l.rotate(ledgerKey2)
	l.emit("crm", "alice", requested("b2"))
	l.replay(forged, "crm")
	l.emit("crm", "alice", &domain.BackupRenamed{BackupID: "b1", Name: "renamed", PreviousName: "name of b1"})
	l.emit("crm", "alice", &domain.BackupDeleted{BackupID: "old"})
	l.emit("hr", "alice", requested("h1"))
	for i := range 6 {
		l.emit("crm", "alice", &domain.BackupRenamed{BackupID: "b2", Name: fmt.Sprintf("b2 %d", i), PreviousName: "x"})
	}

	h := &historyOf{msgs: slices.Clone(l.msgs)}
	bounded := projections.New(domain.DefaultRules(), projections.Options{History: h, LogMemory: 3})
	for _, m := range l.msgs {
		bounded.Apply(m)
	}
	ctx := context.Background()
	for _, app := range []string{"crm", "hr", "nobody"} {
		want := appLogOf(t, l.s, app)
		got := appLogOf(t, bounded, app)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("AppLog(%s) with 3 entries in memory:\n got %+v\nwant %+v", app, got, want)
		}
	}
	if len(h.tokens) == 0 {
		t.Fatal("the long log was not read from the stream")
	}
	for _, tc := range []struct{ app, id string }{{"crm", "old"}, {"crm", "b1"}, {"crm", "b2"}, {"hr", "h1"}, {"crm", "h1"}, {"crm", "nope"}} {
		want, werr := l.s.BackupLog(ctx, tc.app, tc.id)
		got, err := bounded.BackupLog(ctx, tc.app, tc.id)
		if domain.Code(err) != domain.Code(werr) || !reflect.DeepEqual(got, want) {
			t.Errorf("BackupLog(%s, %s) = %+v, %v; want %+v, %v", tc.app, tc.id, got, err, want, werr)
		}
	}
	// hr's log and b2's latest entries are in memory: no read for them.
	reads := len(h.tokens)
	if _, err := bounded.AppLog(ctx, "hr"); err != nil {
		t.Fatal(err)
	}
	if log, err := bounded.BackupLog(ctx, "hr", "h1"); err != nil || len(log) != 1 {
		t.Fatalf("BackupLog(hr, h1) = %+v, %v", log, err)
	}
	if len(h.tokens) != reads {
		t.Errorf("logs held in memory were read from the stream (%d reads, want %d)", len(h.tokens), reads)
	}
}

// A log that cannot be read from the stream answers unavailable.
func TestLogReadFailureIsUnavailable(t *testing.T) {
	l := newSignedLedger(t)
	for i := range 10 {
		l.emit("crm", "alice", requested(fmt.Sprintf("b%d", i)))
	}
	bounded := projections.New(domain.DefaultRules(), projections.Options{History: failingHistory{}, LogMemory: 2})
	for _, m := range l.msgs {
		bounded.Apply(m)
	}
	if _, err := bounded.AppLog(context.Background(), "crm"); domain.Code(err) != domain.CodeUnavailable {
		t.Errorf("AppLog with a failing stream: %v (code %q), want %q", err, domain.Code(err), domain.CodeUnavailable)
	}
	if _, err := bounded.BackupLog(context.Background(), "crm", "b0"); domain.Code(err) != domain.CodeUnavailable {
		t.Errorf("BackupLog with a failing stream: %v (code %q), want %q", err, domain.Code(err), domain.CodeUnavailable)
	}
}

type failingHistory struct{}

func (failingHistory) Messages(context.Context, []string, func(domain.StoredMessage) bool) error {
	return fmt.Errorf("no responders")
}

// A stream that answers short of what the store applied (a replica
// behind) makes the long log unavailable, not short.
func TestLogReadShortOfTheFoldIsUnavailable(t *testing.T) {
	l := newSignedLedger(t)
	for i := range 10 {
		l.emit("crm", "alice", requested(fmt.Sprintf("b%d", i)))
	}
	h := &historyOf{msgs: slices.Clone(l.msgs[:len(l.msgs)-1])}
	bounded := projections.New(domain.DefaultRules(), projections.Options{History: h, LogMemory: 2})
	for _, m := range l.msgs {
		bounded.Apply(m)
	}
	if _, err := bounded.AppLog(context.Background(), "crm"); domain.Code(err) != domain.CodeUnavailable {
		t.Errorf("AppLog from a stream behind: %v, want unavailable", err)
	}
	h.msgs = slices.Clone(l.msgs)
	if log, err := bounded.AppLog(context.Background(), "crm"); err != nil || len(log) != 10 {
		t.Errorf("AppLog from the whole stream: %d entries, %v; want 10", len(log), err)
	}
}
