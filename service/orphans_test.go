package service_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// fakeLister lists the objects of fakeArchives, each stored at a given
// time.
type fakeLister struct {
	archives *fakeArchives
	stored   map[string]time.Time
	apps     map[string]string
}

func (l *fakeLister) ListArchives(context.Context) ([]domain.ArchiveObject, error) {
	l.archives.mu.Lock()
	defer l.archives.mu.Unlock()
	var out []domain.ArchiveObject
	for id, b := range l.archives.objects {
		out = append(out, domain.ArchiveObject{BackupID: id, App: l.apps[id], SizeBytes: int64(len(b)), StoredAt: l.stored[id]})
	}
	return out, nil
}

func (l *fakeLister) HasArchive(_ context.Context, id string) (bool, error) {
	_, ok := l.archives.object(id)
	return ok, nil
}

// RemoveUnfinished finds nothing: the fake archives are written at once.
func (l *fakeLister) RemoveUnfinished(context.Context, time.Time) (int, error) { return 0, nil }

// The situations of issue 6, made on purpose: an object stored for an
// upload that was never recorded, one of a failed backup, one of a deleted
// backup whose delete did not reach the store, and a ready backup whose
// object is gone. A young orphan waits for the grace period.
func TestOrphansSweep(t *testing.T) {
	s := newFakeStream()
	f := newFakeFold(s, 100)
	f.follow = true
	clock := newClock(t0)
	archives := newFakeArchives()
	rules := domain.DefaultRules()
	rules.MinInterval = 0
	l, err := service.NewLedger(service.LedgerConfig{Rules: rules}, s, f, clock, &fakeIDs{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	lister := &fakeLister{archives: archives, stored: map[string]time.Time{}, apps: map[string]string{}}
	backup := func(state string) string {
		t.Helper()
		res, err := l.Execute(ctx, domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		id := res.BackupID
		archives.objects[id] = []byte("zip of " + id)
		lister.stored[id] = clock.Now()
		switch state {
		case "ready", "deleted", "missing":
			mustComplete(t, l, "crm", id)
		case "failed":
			mustFail(t, l, "crm", id)
		}
		if state == "deleted" {
			if _, err := l.Execute(ctx, domain.DeleteBackup{App: "crm", BackupID: id}, domain.Meta{Actor: "alice"}); err != nil {
				t.Fatal(err)
			}
		}
		if state == "missing" {
			delete(archives.objects, id)
		}
		return id
	}
	ready, failed, deleted, missing, running := backup("ready"), backup("failed"), backup("deleted"), backup("missing"), backup("queued")
	archives.objects["01UPLOADNEVERRECORDED"] = []byte("zip")
	lister.stored["01UPLOADNEVERRECORDED"] = clock.Now()
	lister.apps["01UPLOADNEVERRECORDED"] = "crm"

	o := service.NewOrphans(l, f, appList{"crm"}, lister, archives, clock, time.Hour, nil)
	// Within the grace period only the missing archive is acted on.
	clock.Advance(59 * time.Minute)
	rep, err := o.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep != (domain.OrphanReport{Missing: 1, Young: 3}) {
		t.Fatalf("first sweep %+v, want 1 missing, 3 young", rep)
	}
	if b, _ := f.backup(t, "crm", missing); b.CorruptAt.IsZero() || !strings.Contains(b.CorruptReason, "missing") {
		t.Fatalf("backup with a missing archive: corrupt at %v (%q)", b.CorruptAt, b.CorruptReason)
	}
	clock.Advance(2 * time.Minute)
	rep, err = o.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep != (domain.OrphanReport{Removed: 3}) {
		t.Fatalf("second sweep %+v, want 3 removed", rep)
	}
	for _, id := range []string{failed, deleted, "01UPLOADNEVERRECORDED"} {
		if _, ok := archives.object(id); ok {
			t.Errorf("orphan %s still stored", id)
		}
	}
	for _, id := range []string{ready, running} {
		if _, ok := archives.object(id); !ok {
			t.Errorf("archive %s of a live backup was removed", id)
		}
	}
	var removed []string
	for _, env := range s.envelopes(t, "crm") {
		if env.Type == domain.TypeArchiveOrphanRemoved {
			if env.Actor != domain.OrphanActor {
				t.Errorf("orphan event by %q", env.Actor)
			}
			removed = append(removed, string(env.Data))
		}
	}
	if len(removed) != 3 {
		t.Fatalf("%d orphan events, want 3: %v", len(removed), removed)
	}
	joined := strings.Join(removed, "\n")
	for _, want := range []string{"its backup failed", "deleted or expired", "no backup of this id"} {
		if !strings.Contains(joined, want) {
			t.Errorf("orphan events do not say %q: %s", want, joined)
		}
	}
	// A third sweep, and another replica's, find nothing more.
	o2 := service.NewOrphans(l, f, appList{"crm"}, lister, archives, clock, time.Hour, nil)
	for _, sw := range []*service.Orphans{o, o2} {
		if rep, err := sw.Sweep(ctx); err != nil || rep != (domain.OrphanReport{}) {
			t.Fatalf("later sweep %+v, %v", rep, err)
		}
	}
	if n := slices.Index(s.types("crm"), domain.TypeBackupCorrupted); n < 0 || strings.Count(strings.Join(s.types("crm"), " "), domain.TypeBackupCorrupted) != 1 {
		t.Errorf("backup.corrupted events: %v", s.types("crm"))
	}
}

// The ledger refuses to call a live backup's archive an orphan.
func TestRemoveOrphanRefusesLiveBackup(t *testing.T) {
	r := newNightlyRig(t, 10)
	res, err := r.ledger.Execute(t.Context(), domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	before := r.s.len()
	_, err = r.ledger.Execute(t.Context(), domain.RemoveOrphan{App: "crm", BackupID: res.BackupID}, domain.Meta{Actor: domain.OrphanActor})
	if domain.Code(err) != domain.CodeBackupStateConflict || r.s.len() != before {
		t.Fatalf("err = %v, events %d → %d", err, before, r.s.len())
	}
}
