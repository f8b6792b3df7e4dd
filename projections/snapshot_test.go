package projections_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

// snapshotHistory writes a ledger with a bit of everything a snapshot
// must keep: the unsigned prefix, the genesis and a rotation, the
// directory, backups in every state, a restore with maintenance, more
// commands than an app keeps whole, logs longer than the memory keeps,
// refused messages.
func snapshotHistory(t *testing.T) *signedLedger {
	l := newSignedLedger(t)
	l.emit("crm", "alice", requested("old"))
	l.store("junk", []byte("not an event"), nil)
	l.genesis(ledgerKey)
	l.emit(domain.IdentityStream, "admin", &domain.OrgCreated{Org: "acme", Name: "ACME"})
	l.emit(domain.IdentityStream, "admin", &domain.UserCreated{User: "alice", Name: "Alice", Email: "alice@example.com"})
	l.emit(domain.IdentityStream, "admin", &domain.AppRegistered{App: "crm", Org: "acme", Admin: "alice"})
	l.emit("crm", "alice", requested("b1"))
	l.emit("crm", "worker", started("b1"))
	l.emit("crm", "worker", completed("b1"))
	forged := l.forge("crm", "mallory", deleteB1, foreignKey)
	for i := range 80 {
		l.emit("crm", "alice", &domain.BackupRenamed{BackupID: "b1", Name: fmt.Sprintf("name %d", i), PreviousName: "x"})
	}
	l.emit("crm", "alice", &domain.BackupDeleted{BackupID: "old"})
	l.rotate(ledgerKey2)
	l.replay(forged, "crm")
	// A restore requested with a client's key: the store indexes it.
	req := l.store("crm2", l.body("crm2", "carol", &domain.RestoreRequested{RestoreID: "r1", SourceApp: "crm", BackupID: "b1",
		BackupSHA256: strings.Repeat("ab", 32), BackupSizeBytes: 2048, BackupSchema: 3, BackupSource: "kv", PreRestoreBackup: true},
		func(e *domain.Envelope) { e.CommandHash = strings.Repeat("cd", 16) }), l.key)
	l.heads["crm2"] = domain.HashEvent(req.Body)
	l.emit("crm2", service.RestoreActor, &domain.MaintenanceStarted{Reason: "restore r1", RestoreID: "r1"})
	l.emit("hr", "alice", requested("h1"))
	l.emit("hr", "worker", &domain.BackupFailed{BackupID: "h1", Reason: "disk full"})
	return l
}

// A store loaded from a snapshot and fed the rest of the stream is the
// store fed the whole stream: the same snapshot bytes, the same state
// (every unexported field), the same answers; whatever message the
// snapshot was taken after.
func TestSnapshotThenTailIsTheFullFold(t *testing.T) {
	l := snapshotHistory(t)
	msgs := slices.Clone(l.msgs)
	h := &historyOf{msgs: msgs}
	opts := projections.Options{History: h, LogMemory: 8}
	fold := func(ms []domain.StoredMessage) *projections.Store {
		s := projections.New(domain.DefaultRules(), opts)
		for _, m := range ms {
			s.Apply(m)
		}
		return s
	}
	full := fold(msgs)
	want, ok, err := full.Snapshot()
	if err != nil || !ok {
		t.Fatalf("Snapshot of the full fold: %v, %v", ok, err)
	}
	for cut := 1; cut < len(msgs); cut += 5 {
		snap, ok, err := fold(msgs[:cut]).Snapshot()
		if err != nil || !ok || snap.Seq != msgs[cut-1].Seq || snap.Hash != domain.HashEvent(msgs[cut-1].Body) {
			t.Fatalf("cut %d: Snapshot = seq %d hash %s, %v, %v; want seq %d", cut, snap.Seq, snap.Hash, ok, err, msgs[cut-1].Seq)
		}
		var told, keys []domain.KeyInfo
		o := opts
		o.OnKeys = func(k domain.KeyInfo) { told = append(told, k) }
		folded := projections.New(domain.DefaultRules(), o)
		for _, m := range msgs[:cut] {
			folded.Apply(m)
		}
		o.OnKeys = func(k domain.KeyInfo) { keys = append(keys, k) }
		s := projections.New(domain.DefaultRules(), o)
		if err := s.LoadSnapshot(snap); err != nil {
			t.Fatalf("cut %d: LoadSnapshot: %v", cut, err)
		}
		if s.Applied() != snap.Seq {
			t.Fatalf("cut %d: applied %d after the load, want %d", cut, s.Applied(), snap.Seq)
		}
		// OnKeys hears of the current key, as after the fold.
		if len(told) == 0 && len(keys) != 0 || len(told) > 0 && (len(keys) != 1 || keys[0].ID != told[len(told)-1].ID) {
			t.Fatalf("cut %d: OnKeys after the load told %v, after the fold %v", cut, keys, told)
		}
		for _, m := range msgs[cut:] {
			s.Apply(m)
		}
		got, _, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("cut %d: the snapshot of snapshot+tail differs from the full fold's:\n got %.600s\nwant %.600s", cut, got.Data, want.Data)
		}
		if !reflect.DeepEqual(projections.StateOf(s), projections.StateOf(full)) {
			t.Fatalf("cut %d: the state of snapshot+tail differs from the full fold's: %v", cut, projections.DiffState(s, full))
		}
		for _, app := range []string{"crm", "crm2", "hr", "junk"} {
			if g, w := appLogOf(t, s, app), appLogOf(t, full, app); !reflect.DeepEqual(g, w) {
				t.Fatalf("cut %d: AppLog(%s) = %+v, want %+v", cut, app, g, w)
			}
			if g, w := s.App(app), full.App(app); !reflect.DeepEqual(g, w) {
				t.Fatalf("cut %d: App(%s) = %+v, want %+v", cut, app, g, w)
			}
		}
		if g, w := mustBackupLog(t, s, "crm", "b1"), mustBackupLog(t, full, "crm", "b1"); !reflect.DeepEqual(g, w) {
			t.Fatalf("cut %d: BackupLog(crm, b1) differs", cut)
		}
	}
}

func mustBackupLog(t *testing.T, s *projections.Store, app, id string) []projections.LogEntry {
	t.Helper()
	log, err := s.BackupLog(context.Background(), app, id)
	if err != nil {
		t.Fatalf("BackupLog(%s, %s): %v", app, id, err)
	}
	return log
}

// A snapshot that is not one, not of this format, made with other rules,
// named after another message, or loaded into a store that has folded
// already, is refused and changes nothing.
func TestLoadSnapshotRefusesAndChangesNothing(t *testing.T) {
	l := snapshotHistory(t)
	snap, _, err := l.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	other := domain.DefaultRules()
	other.CommandMemory = 10
	cases := map[string]struct {
		rules domain.Rules
		snap  projections.Snapshot
		fed   bool
	}{
		"truncated":                   {snap: projections.Snapshot{Seq: snap.Seq, Hash: snap.Hash, Data: snap.Data[:len(snap.Data)/2]}},
		"not json":                    {snap: projections.Snapshot{Seq: snap.Seq, Hash: snap.Hash, Data: []byte("garbage")}},
		"another format":              {snap: projections.Snapshot{Seq: snap.Seq, Hash: snap.Hash, Data: bytes.Replace(snap.Data, []byte(`"format":1`), []byte(`"format":2`), 1)}},
		"an unknown field":            {snap: projections.Snapshot{Seq: snap.Seq, Hash: snap.Hash, Data: bytes.Replace(snap.Data, []byte(`"format":1`), []byte(`"format":1,"x":1`), 1)}},
		"another seq":                 {snap: projections.Snapshot{Seq: snap.Seq - 1, Hash: snap.Hash, Data: snap.Data}},
		"another message":             {snap: projections.Snapshot{Seq: snap.Seq, Hash: domain.HashEvent([]byte("x")), Data: snap.Data}},
		"other rules":                 {rules: other, snap: snap},
		"a store that folded already": {snap: snap, fed: true},
	}
	cases["another genesis than the pinned one"] = struct {
		rules domain.Rules
		snap  projections.Snapshot
		fed   bool
	}{snap: snap}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rules := tc.rules
			if rules == (domain.Rules{}) {
				rules = domain.DefaultRules()
			}
			var opts projections.Options
			if name == "another genesis than the pinned one" {
				opts.Genesis = keyID(ledgerKey2)
			}
			s := projections.New(rules, opts)
			if tc.fed {
				s.Apply(l.msgs[0])
			}
			before := projections.StateOf(s)
			if err := s.LoadSnapshot(tc.snap); err == nil {
				t.Fatal("LoadSnapshot took it")
			}
			if !reflect.DeepEqual(projections.StateOf(s), before) {
				t.Error("a refused snapshot changed the store")
			}
		})
	}
	s := projections.New(domain.DefaultRules(), projections.Options{})
	if err := s.LoadSnapshot(snap); err != nil {
		t.Fatalf("the snapshot itself: %v", err)
	}
	if _, ok, _ := projections.New(domain.DefaultRules(), projections.Options{}).Snapshot(); ok {
		t.Error("an empty store made a snapshot")
	}
}

// Snapshots taken while messages are applied share nothing with the fold
// (run with -race) and each loads to a state after some message.
func TestSnapshotWhileApplying(t *testing.T) {
	l := snapshotHistory(t)
	s := projections.New(domain.DefaultRules(), projections.Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, m := range l.msgs {
			s.Apply(m)
		}
	}()
	var snaps []projections.Snapshot
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		snap, ok, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			snaps = append(snaps, snap)
		}
	}
	for _, snap := range snaps {
		if err := projections.New(domain.DefaultRules(), projections.Options{}).LoadSnapshot(snap); err != nil {
			t.Fatalf("snapshot after seq %d taken while applying: %v", snap.Seq, err)
		}
	}
	if len(snaps) == 0 {
		t.Fatal("no snapshot taken")
	}
}
