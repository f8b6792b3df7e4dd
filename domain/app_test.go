package domain_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// applier applies events to one App with increasing sequences, as the
// projection does.
type applier struct {
	t   *testing.T
	a   *domain.App
	seq uint64
	// hashes[i] is the hash of the (i+1)th applied event.
	hashes []string
}

func newApplier(t *testing.T, memory int) *applier {
	return &applier{t: t, a: domain.NewApp("crm", memory)}
}

// apply applies ev by actor with command id cmd at t0+at, at the next
// sequence (plus skip: the stream sequence has gaps from other apps).
func (p *applier) apply(at time.Duration, actor, cmd string, ev domain.Event, skip uint64) {
	p.t.Helper()
	p.seq += 1 + skip
	env, body := envelope(p.t, "crm", t0.Add(at), actor, cmd, ev)
	h := domain.HashEvent(body)
	p.hashes = append(p.hashes, h)
	p.a.Apply(p.seq, h, env, ev)
}

func mustBackup(t *testing.T, a *domain.App, id string) domain.Backup {
	t.Helper()
	b, ok := a.Backup(id)
	if !ok {
		t.Fatalf("backup %s not in the state", id)
	}
	return b
}

func TestNewAppIsEmpty(t *testing.T) {
	a := domain.NewApp("crm", 10)
	if a.ID() != "crm" || a.Seq() != 0 || a.LastHash() != "" || a.Events() != 0 || a.Quota() != 0 ||
		len(a.Backups()) != 0 || len(a.CountByStatus()) != 0 || !a.LastBackupAt().IsZero() {
		t.Fatalf("NewApp is not empty: seq %d hash %q events %d quota %d", a.Seq(), a.LastHash(), a.Events(), a.Quota())
	}
	if _, ok := a.Backup("x"); ok {
		t.Fatal("Backup of an empty app found something")
	}
	if _, ok := a.Command(domain.CommandKey("alice", "c1")); ok {
		t.Fatal("Command of an empty app found something")
	}
}

func TestApplyBackupLifecycle(t *testing.T) {
	p := newApplier(t, 100)
	req := &domain.BackupRequested{BackupID: "b1", Name: "first", Description: "desc", Origin: domain.OriginManual,
		ExpiresAt: t0.Add(60 * day)}

	// given nothing, when requested, then queued with everything recorded.
	p.apply(0, "alice", "c1", req, 4)
	want := domain.Backup{ID: "b1", App: "crm", Name: "first", Description: "desc", Status: domain.StatusQueued,
		Origin: domain.OriginManual, CreatedBy: "alice", CreatedAt: t0, ExpiresAt: t0.Add(60 * day), Seq: 5}
	if got := mustBackup(t, p.a, "b1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after requested:\n got %+v\nwant %+v", got, want)
	}

	// when started, then running with attempt and start time.
	p.apply(time.Minute, "system:worker", "c2", &domain.BackupStarted{BackupID: "b1", Attempt: 1, Worker: "w1"}, 0)
	want.Status, want.Attempt, want.StartedAt = domain.StatusRunning, 1, t0.Add(time.Minute)
	if got := mustBackup(t, p.a, "b1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after started:\n got %+v\nwant %+v", got, want)
	}

	// when started again with a higher attempt, then the attempt and start time move.
	p.apply(2*time.Minute, "system:worker", "c3", &domain.BackupStarted{BackupID: "b1", Attempt: 2, Worker: "w2"}, 0)
	want.Attempt, want.StartedAt = 2, t0.Add(2*time.Minute)
	if got := mustBackup(t, p.a, "b1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restarted:\n got %+v\nwant %+v", got, want)
	}
	if !p.a.LastBackupAt().IsZero() {
		t.Fatal("LastBackupAt set before any backup is ready")
	}

	// when completed, then ready with the archive's facts.
	p.apply(3*time.Minute, "system:worker", "c4", &domain.BackupCompleted{BackupID: "b1", SizeBytes: 4096, SHA256: sha64,
		ItemCount: 7, SchemaVersion: 3}, 0)
	want.Status, want.CompletedAt = domain.StatusReady, t0.Add(3*time.Minute)
	want.SizeBytes, want.SHA256, want.ItemCount, want.SchemaVersion = 4096, sha64, 7, 3
	if got := mustBackup(t, p.a, "b1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after completed:\n got %+v\nwant %+v", got, want)
	}
	if got := p.a.LastBackupAt(); !got.Equal(t0.Add(3 * time.Minute)) {
		t.Fatalf("LastBackupAt = %v, want the completion time", got)
	}

	// when renamed, then only the name changes.
	p.apply(4*time.Minute, "bob", "c5", &domain.BackupRenamed{BackupID: "b1", Name: "second", PreviousName: "first"}, 0)
	want.Name = "second"
	if got := mustBackup(t, p.a, "b1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after renamed:\n got %+v\nwant %+v", got, want)
	}

	// when deleted, then it leaves the list and the quota.
	if p.a.Quota() != 1 {
		t.Fatalf("quota before delete = %d, want 1", p.a.Quota())
	}
	p.apply(5*time.Minute, "bob", "c6", &domain.BackupDeleted{BackupID: "b1"}, 0)
	if _, ok := p.a.Backup("b1"); ok {
		t.Fatal("deleted backup still in the state")
	}
	if len(p.a.Backups()) != 0 || p.a.Quota() != 0 || len(p.a.CountByStatus()) != 0 {
		t.Fatalf("after delete: backups %v quota %d", p.a.Backups(), p.a.Quota())
	}
	if p.a.Seq() != 10 || p.a.Events() != 6 || p.a.LastHash() != p.hashes[5] {
		t.Fatalf("seq %d events %d hash %q; want 10, 6, %q", p.a.Seq(), p.a.Events(), p.a.LastHash(), p.hashes[5])
	}
}

func TestApplyFailedRecordsReason(t *testing.T) {
	p := newApplier(t, 100)
	p.apply(0, "alice", "c1", requested("b1", domain.OriginManual), 0)
	p.apply(time.Minute, "w", "c2", started("b1", 1), 0)
	p.apply(2*time.Minute, "w", "c3", &domain.BackupFailed{BackupID: "b1", Reason: "disk full"}, 0)
	b := mustBackup(t, p.a, "b1")
	if b.Status != domain.StatusFailed || b.Error != "disk full" || !b.CompletedAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("failed backup = %+v", b)
	}
	if !p.a.LastBackupAt().IsZero() {
		t.Fatal("a failed backup set LastBackupAt")
	}
}

func TestApplyCompletedClearsError(t *testing.T) {
	// Evolve does not validate: a completion after a failure (which decide
	// refuses) is folded as it is written.
	p := newApplier(t, 100)
	p.apply(0, "alice", "c1", requested("b1", domain.OriginManual), 0)
	p.apply(time.Minute, "w", "c2", failed("b1"), 0)
	p.apply(2*time.Minute, "w", "c3", completed("b1"), 0)
	if b := mustBackup(t, p.a, "b1"); b.Status != domain.StatusReady || b.Error != "" {
		t.Fatalf("backup = %+v, want ready without error", b)
	}
}

func TestApplyEventsOfUnknownBackupsAreIgnored(t *testing.T) {
	p := newApplier(t, 100)
	p.apply(0, "alice", "c1", requested("b1", domain.OriginNightly), 0)
	before := p.a.Backups()
	for i, ev := range []domain.Event{started("ghost", 1), completed("ghost"), failed("ghost"), renamed("ghost", "x"),
		corrupted("ghost"), deleted("ghost")} {
		p.apply(time.Duration(i+1)*time.Minute, "w", fmt.Sprintf("g%d", i), ev, 0)
	}
	if got := p.a.Backups(); !reflect.DeepEqual(got, before) {
		t.Fatalf("events of an unknown backup changed the list: %+v", got)
	}
	if p.a.Events() != 7 || p.a.Seq() != 7 {
		t.Fatalf("events %d seq %d, want 7 and 7", p.a.Events(), p.a.Seq())
	}
	if !p.a.LastBackupAt().IsZero() {
		t.Fatal("completion of an unknown backup set LastBackupAt")
	}
}

func TestApplyUnknownEventTypeAdvancesTheChain(t *testing.T) {
	p := newApplier(t, 100)
	p.apply(0, "alice", "c1", requested("b1", domain.OriginNightly), 0)
	before := p.a.Backups()
	p.apply(time.Minute, "carol", "c2", nil, 2) // seq 4
	if p.a.Seq() != 4 || p.a.LastHash() != p.hashes[1] || p.a.Events() != 2 {
		t.Fatalf("after an unknown event: seq %d hash %q events %d; want 4, %q, 2", p.a.Seq(), p.a.LastHash(), p.a.Events(), p.hashes[1])
	}
	if got := p.a.Backups(); !reflect.DeepEqual(got, before) {
		t.Fatalf("an unknown event changed the backups: %+v", got)
	}
	rec, ok := p.a.Command(domain.CommandKey("carol", "c2"))
	if !ok || rec != (domain.CommandRecord{Seq: 4, Type: "test.unknown"}) {
		t.Fatalf("record of the unknown event's command = %+v, %v", rec, ok)
	}
}

func TestApplyRemembersCommands(t *testing.T) {
	p := newApplier(t, 100)
	p.apply(0, "alice", "k1", requested("b1", domain.OriginNightly), 0)
	p.apply(time.Minute, "bob", "k1", renamed("b1", "x"), 0)
	p.apply(2*time.Minute, "alice", "k1", renamed("b1", "y"), 0) // the same command again: first record kept

	rec, ok := p.a.Command(domain.CommandKey("alice", "k1"))
	if want := (domain.CommandRecord{Seq: 1, Type: domain.TypeBackupRequested, BackupID: "b1"}); !ok || rec != want {
		t.Fatalf("alice's k1 = %+v, %v; want %+v", rec, ok, want)
	}
	rec, ok = p.a.Command(domain.CommandKey("bob", "k1"))
	if want := (domain.CommandRecord{Seq: 2, Type: domain.TypeBackupRenamed, BackupID: "b1"}); !ok || rec != want {
		t.Fatalf("bob's k1 = %+v, %v; want %+v", rec, ok, want)
	}
	if _, ok := p.a.Command(domain.CommandKey("carol", "k1")); ok {
		t.Fatal("carol's k1 found although carol sent nothing")
	}
	if _, ok := p.a.Command("k1"); ok {
		t.Fatal("an unscoped key found a record")
	}
	if domain.CommandKey("alice", "k1") == domain.CommandKey("bob", "k1") {
		t.Fatal("CommandKey does not scope by actor")
	}
}

func TestApplyCommandMemoryIsBounded(t *testing.T) {
	p := newApplier(t, 3)
	for i := 1; i <= 5; i++ {
		p.apply(time.Duration(i)*time.Minute, "alice", fmt.Sprintf("k%d", i), nil, 0)
		if i == 3 {
			// A repeated key does not take a slot of its own.
			p.apply(time.Duration(i)*time.Minute, "alice", "k3", nil, 0)
		}
	}
	for i := 1; i <= 5; i++ {
		_, ok := p.a.Command(domain.CommandKey("alice", fmt.Sprintf("k%d", i)))
		if want := i >= 3; ok != want {
			t.Errorf("k%d remembered = %v, want %v (memory 3, oldest forgotten)", i, ok, want)
		}
	}
	// k3 keeps its first sequence.
	if rec, _ := p.a.Command(domain.CommandKey("alice", "k3")); rec.Seq != 3 {
		t.Errorf("k3 seq = %d, want 3", rec.Seq)
	}
	// Keep going round the ring: k6 and k7 push out k3 and k4.
	p.apply(time.Hour, "alice", "k6", nil, 0)
	p.apply(time.Hour, "alice", "k7", nil, 0)
	for i, want := range map[int]bool{3: false, 4: false, 5: true, 6: true, 7: true} {
		if _, ok := p.a.Command(domain.CommandKey("alice", fmt.Sprintf("k%d", i))); ok != want {
			t.Errorf("after wrapping: k%d remembered = %v, want %v", i, ok, want)
		}
	}
}

func TestNewAppMemoryAtLeastOne(t *testing.T) {
	p := newApplier(t, 0)
	p.apply(0, "alice", "k1", nil, 0)
	if _, ok := p.a.Command(domain.CommandKey("alice", "k1")); !ok {
		t.Fatal("memory 0 remembered nothing; want at least the last command")
	}
	p.apply(0, "alice", "k2", nil, 0)
	_, ok1 := p.a.Command(domain.CommandKey("alice", "k1"))
	_, ok2 := p.a.Command(domain.CommandKey("alice", "k2"))
	if ok1 || !ok2 {
		t.Fatalf("memory 0: k1 %v k2 %v; want only k2", ok1, ok2)
	}
}

func TestBackupsSortedByCreationThenSeq(t *testing.T) {
	a := domain.NewApp("crm", 10)
	add := func(seq uint64, id string, created time.Duration) {
		env, body := envelope(t, "crm", t0.Add(created), "alice", id, requested(id, domain.OriginNightly))
		a.Apply(seq, domain.HashEvent(body), env, requested(id, domain.OriginNightly))
	}
	// Written out of creation order (clocks of several processes), and
	// three created in the same millisecond.
	add(1, "late", 2*time.Hour)
	add(2, "early", 0)
	add(7, "tie-c", time.Hour)
	add(9, "tie-d", time.Hour)
	add(3, "tie-a", time.Hour) // sequences of one app only grow; the fold does not care
	add(5, "tie-b", time.Hour)
	var got []string
	for _, b := range a.Backups() {
		got = append(got, b.ID)
	}
	want := []string{"early", "tie-a", "tie-b", "tie-c", "tie-d", "late"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Backups order = %v, want %v", got, want)
	}
}

func TestBackupsReturnsCopies(t *testing.T) {
	a := fold(t, "crm", g(0, requested("b1", domain.OriginNightly)))
	list := a.Backups()
	list[0].Name = "changed"
	b, _ := a.Backup("b1")
	b.Status = domain.StatusFailed
	if got := mustBackup(t, a, "b1"); got.Name != "name of b1" || got.Status != domain.StatusQueued {
		t.Fatalf("changing a copy changed the state: %+v", got)
	}
}

func TestQuotaAndCountByStatus(t *testing.T) {
	a := fold(t, "crm", concat(
		statuses(domain.StatusQueued, domain.StatusQueued, domain.StatusRunning,
			domain.StatusReady, domain.StatusReady, domain.StatusReady,
			domain.StatusFailed, domain.StatusFailed),
		inStatus("gone", 20*time.Hour, domain.OriginNightly, domain.StatusReady),
		[]given{g(21*time.Hour, deleted("gone"))},
	)...)
	want := map[domain.Status]int{domain.StatusQueued: 2, domain.StatusRunning: 1, domain.StatusReady: 3, domain.StatusFailed: 2}
	if got := a.CountByStatus(); !maps.Equal(got, want) {
		t.Fatalf("CountByStatus = %v, want %v", got, want)
	}
	if got := a.Quota(); got != 6 {
		t.Fatalf("Quota = %d, want 6 (queued + running + ready)", got)
	}
	if got := len(a.Backups()); got != 8 {
		t.Fatalf("len(Backups) = %d, want 8 live backups", got)
	}
}

func TestLastBackupAtIsTheLatestCompletion(t *testing.T) {
	a := fold(t, "crm", concat(
		inStatus("b1", time.Hour, domain.OriginNightly, domain.StatusReady),
		inStatus("b2", 2*time.Hour, domain.OriginNightly, domain.StatusReady),
		inStatus("b3", 3*time.Hour, domain.OriginNightly, domain.StatusFailed),
	)...)
	if got, want := a.LastBackupAt(), t0.Add(2*time.Hour+2*time.Second); !got.Equal(want) {
		t.Fatalf("LastBackupAt = %v, want %v", got, want)
	}
}

func TestApplyUploadLifecycle(t *testing.T) {
	p := newApplier(t, 100)
	up := &domain.BackupUploaded{BackupID: "u1", Name: "Copy", Description: "from erp", ExpiresAt: t0.Add(60 * day),
		SizeBytes: 2048, SHA256: sha64, ItemCount: 5, SchemaVersion: 3, Source: "dir",
		Original: domain.ArchiveOrigin{App: "erp", BackupID: "orig-1", Name: "Before upgrade", CreatedAt: origCreated}}

	// given nothing, when uploaded, then ready at once, origin upload,
	// created by the uploader, with the archive's facts and its original.
	p.apply(0, "bob", "c1", up, 2)
	want := domain.Backup{ID: "u1", App: "crm", Name: "Copy", Description: "from erp", Status: domain.StatusReady,
		Origin: domain.OriginUpload, CreatedBy: "bob", CreatedAt: t0, CompletedAt: t0, ExpiresAt: t0.Add(60 * day),
		SchemaVersion: 3, SizeBytes: 2048, SHA256: sha64, ItemCount: 5, Source: "dir",
		Original: &domain.ArchiveOrigin{App: "erp", BackupID: "orig-1", Name: "Before upgrade", CreatedAt: origCreated}, Seq: 3}
	if got := mustBackup(t, p.a, "u1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after uploaded:\n got %+v\nwant %+v", got, want)
	}
	if p.a.Quota() != 1 || !maps.Equal(p.a.CountByStatus(), map[domain.Status]int{domain.StatusReady: 1}) {
		t.Fatalf("quota %d counts %v; want the upload counted as ready", p.a.Quota(), p.a.CountByStatus())
	}
	rec, ok := p.a.Command(domain.CommandKey("bob", "c1"))
	if want := (domain.CommandRecord{Seq: 3, Type: domain.TypeBackupUploaded, BackupID: "u1"}); !ok || rec != want {
		t.Fatalf("bob's c1 = %+v, %v; want %+v", rec, ok, want)
	}
	// The event's original is copied, not shared.
	up.Original.Name = "changed"
	if got := mustBackup(t, p.a, "u1"); got.Original.Name != "Before upgrade" {
		t.Fatalf("changing the applied event changed the state: %+v", got.Original)
	}

	// when found corrupt, then it stays ready and listed, with when and why.
	p.apply(time.Hour, domain.IntegrityActor, "c2", &domain.BackupCorrupted{BackupID: "u1", Reason: "sha256 mismatch"}, 0)
	want.CorruptAt, want.CorruptReason = t0.Add(time.Hour), "sha256 mismatch"
	if got := mustBackup(t, p.a, "u1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after corrupted:\n got %+v\nwant %+v", got, want)
	}
	if p.a.Quota() != 1 {
		t.Fatalf("quota = %d, want 1: a corrupt backup counts until it is deleted", p.a.Quota())
	}

	// when renamed, then only the name changes.
	p.apply(2*time.Hour, "bob", "c3", renamed("u1", "Broken copy"), 0)
	want.Name = "Broken copy"
	if got := mustBackup(t, p.a, "u1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after renamed:\n got %+v\nwant %+v", got, want)
	}

	// when deleted, then it leaves the list and the quota.
	p.apply(3*time.Hour, "bob", "c4", deleted("u1"), 0)
	if _, ok := p.a.Backup("u1"); ok || p.a.Quota() != 0 {
		t.Fatalf("after delete: listed %v, quota %d", ok, p.a.Quota())
	}
}

func TestApplyCorruptedTwiceFoldsAsWritten(t *testing.T) {
	// Evolve does not validate: a second finding (which decide refuses) is
	// folded as written.
	a := fold(t, "crm", concat(inStatus("b1", 0, domain.OriginNightly, domain.StatusReady),
		[]given{g(time.Hour, corrupted("b1")), g(2*time.Hour, &domain.BackupCorrupted{BackupID: "b1", Reason: "again"})})...)
	b := mustBackup(t, a, "b1")
	if !b.CorruptAt.Equal(t0.Add(2*time.Hour)) || b.CorruptReason != "again" || b.Status != domain.StatusReady {
		t.Fatalf("backup = %+v", b)
	}
}

func TestApplyCompletedRecordsTheSource(t *testing.T) {
	ev := completed("b1")
	ev.Source = "dir"
	a := fold(t, "crm", g(0, requested("b1", domain.OriginNightly)), g(time.Second, started("b1", 1)), g(2*time.Second, ev))
	if b := mustBackup(t, a, "b1"); b.Source != "dir" || b.Status != domain.StatusReady || b.Original != nil || !b.CorruptAt.IsZero() {
		t.Fatalf("backup = %+v, want ready from source dir, no original, not corrupt", b)
	}
	// Completions written before sources were recorded have none.
	a = fold(t, "crm", inStatus("b1", 0, domain.OriginNightly, domain.StatusReady)...)
	if b := mustBackup(t, a, "b1"); b.Source != "" {
		t.Fatalf("source = %q, want none", b.Source)
	}
}

// TestBackupCopiesDoNotShareTheOriginal is a regression test for a bug
// reported to the lead: Backup and Backups return copies, but an uploaded
// backup's Original is a pointer into the state, so changing a copy's
// Original changes the state (and races with readers under the lock).
func TestBackupCopiesDoNotShareTheOriginal(t *testing.T) {
	a := fold(t, "crm", g(0, uploaded("u1")))
	b, _ := a.Backup("u1")
	list := a.Backups()
	if b.Original == list[0].Original {
		t.Fatal("fixed bug is back: domain/app.go:120 (Backup) and :128 (Backups): an uploaded backup's Original is shared with the state; clone it")
	}
	b.Original.Name = "changed"
	list[0].Original.App = "changed"
	if got := mustBackup(t, a, "u1"); got.Original.Name != "Before upgrade" || got.Original.App != "erp" {
		t.Fatalf("changing a copy changed the state: %+v", got.Original)
	}
}

// Beyond the latest 64, a record keeps only its sequence, and the event
// there gives it back whole.
func TestApplyCommandMemoryRecallsOlderRecords(t *testing.T) {
	a := domain.NewApp("crm", 100)
	bodies := map[uint64][]byte{}
	for i := 1; i <= 80; i++ {
		env, body := envelope(t, "crm", t0, "alice", fmt.Sprintf("k%d", i), renamed("b1", fmt.Sprintf("n%d", i)))
		env.CommandHash = fmt.Sprintf("%032x", i)
		body, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		bodies[uint64(i)] = body
		a.Apply(uint64(i), domain.HashEvent(body), env, renamed("b1", fmt.Sprintf("n%d", i)))
	}
	for i := 1; i <= 80; i++ {
		key := domain.CommandKey("alice", fmt.Sprintf("k%d", i))
		rec, ok := a.Command(key)
		whole := domain.CommandRecord{Seq: uint64(i), Type: domain.TypeBackupRenamed, BackupID: "b1", Hash: fmt.Sprintf("%032x", i)}
		if i > 16 {
			if !ok || rec != whole {
				t.Fatalf("k%d (among the latest 64) = %+v, %v; want %+v", i, rec, ok, whole)
			}
			continue
		}
		if !ok || rec != (domain.CommandRecord{Seq: uint64(i), Recall: true}) {
			t.Fatalf("k%d (older) = %+v, %v; want only its seq to recall", i, rec, ok)
		}
		got, err := domain.RecallRecord(domain.StoredMessage{Seq: uint64(i), Token: "crm", Body: bodies[uint64(i)]}, key)
		if err != nil || got != whole {
			t.Fatalf("RecallRecord(k%d) = %+v, %v; want %+v", i, got, err, whole)
		}
	}
	// The event of another command is not this command's record.
	if _, err := domain.RecallRecord(domain.StoredMessage{Seq: 2, Token: "crm", Body: bodies[2]}, domain.CommandKey("alice", "k1")); err == nil {
		t.Error("RecallRecord took the event of k2 for k1")
	}
	if _, err := domain.RecallRecord(domain.StoredMessage{Seq: 1, Token: "crm", Body: bodies[1]}, domain.CommandKey("bob", "k1")); err == nil {
		t.Error("RecallRecord took alice's k1 for bob's")
	}
	if _, err := domain.RecallRecord(domain.StoredMessage{Seq: 1, Token: "crm", Body: []byte("{")}, domain.CommandKey("alice", "k1")); err == nil {
		t.Error("RecallRecord took an undecodable body")
	}
}

// The memory keeps fingerprints compactly; each comes back as recorded.
func TestApplyCommandMemoryKeepsFingerprints(t *testing.T) {
	a := domain.NewApp("crm", 10)
	hashes := map[string]string{
		"lower": "0123456789abcdef0123456789abcdef",
		"upper": "0123456789ABCDEF0123456789ABCDEF",
		"short": "abc",
		"none":  "",
	}
	seq := uint64(0)
	for cmd, h := range hashes {
		seq++
		env, body := envelope(t, "crm", t0, "alice", cmd, nil)
		env.CommandHash = h
		env.Type = "backup." + "renamed"
		a.Apply(seq, domain.HashEvent(body), env, nil)
	}
	for cmd, h := range hashes {
		rec, ok := a.Command(domain.CommandKey("alice", cmd))
		if !ok || rec.Hash != h || rec.Type != domain.TypeBackupRenamed {
			t.Errorf("%s: record %+v, %v; want hash %q, type %s", cmd, rec, ok, h, domain.TypeBackupRenamed)
		}
	}
}
