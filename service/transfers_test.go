package service_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// transferRig is a rig with Transfers over a fake ArchiveTransfer.
type transferRig struct {
	*rig
	xfer *fakeTransfer
	tr   *service.Transfers
	logs *syncBuffer
}

func newTransferRig(t *testing.T) *transferRig {
	t.Helper()
	r := newRig(t, service.LedgerConfig{})
	x := newFakeTransfer()
	logs := &syncBuffer{}
	return &transferRig{rig: r, xfer: x, logs: logs,
		tr: service.NewTransfers(r.ledger, r.fold, x, r.ids, r.clock, slog.New(slog.NewTextHandler(logs, nil)))}
}

// syncBuffer is a log destination that goroutines may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (r *transferRig) upload(m domain.Meta, up domain.Upload) (domain.Result, error) {
	return r.tr.Upload(context.Background(), m, up)
}

// body returns an upload of a zip body into crm.
func body(s string) domain.Upload { return domain.Upload{App: "crm", Body: strings.NewReader(s)} }

// ready makes a ready backup of app through the ledger and returns it.
func (r *transferRig) ready(t *testing.T, app string) domain.Backup {
	t.Helper()
	res := r.must(t, nightly(app), domain.Meta{Actor: "system:scheduler"})
	w := domain.Meta{Actor: domain.WorkerActor}
	r.must(t, domain.StartBackup{App: app, BackupID: res.BackupID, Attempt: 1}, w)
	r.must(t, domain.CompleteBackup{App: app, BackupID: res.BackupID, Attempt: 1, SizeBytes: 12, SHA256: sha64,
		ItemCount: 1, SchemaVersion: 7, Source: "kv"}, w)
	b, ok := r.fold.backup(t, app, res.BackupID)
	if !ok || b.Status != domain.StatusReady {
		t.Fatalf("backup = %+v, %v; want ready", b, ok)
	}
	return b
}

// fill makes n nightly backups of crm.
func (r *transferRig) fill(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		r.must(t, nightly("crm"), alice(fmt.Sprintf("fill-%d", i)))
	}
}

// wantNothingDone fails if anything was imported or deleted, or appended
// after the first appends calls.
func (r *transferRig) wantNothingDone(t *testing.T, appends int) {
	t.Helper()
	if c := r.xfer.importCalls(); len(c) != 0 {
		t.Fatalf("imported %+v", c)
	}
	if got := len(r.stream.appendCalls()); got != appends {
		t.Fatalf("%d appends, want %d", got, appends)
	}
	if d := r.xfer.deleted(); len(d) != 0 {
		t.Fatalf("archives deleted: %v", d)
	}
}

func TestUploadRecordsAReadyBackup(t *testing.T) {
	r := newTransferRig(t)
	res, err := r.upload(alice("up1"), domain.Upload{App: "crm", Name: ptr(" Copy of erp "), Description: "moved",
		Body: strings.NewReader("PK zip")})
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	imports := r.xfer.importCalls()
	if len(imports) != 1 || imports[0].backupID != res.BackupID || imports[0].body != "PK zip" || imports[0].staged != "" {
		t.Fatalf("imports = %+v, want one of the body under the result's id %s", imports, res.BackupID)
	}
	if res.Seq != 1 || res.EventType != domain.TypeBackupUploaded || res.Duplicate || res.BackupID == "orig-1" {
		t.Fatalf("result = %+v, want seq 1, backup.uploaded, a fresh id", res)
	}
	if got := r.stream.types("crm"); !slices.Equal(got, []string{domain.TypeBackupUploaded}) {
		t.Fatalf("events = %v, want one backup.uploaded", got)
	}
	env := r.stream.envelopes(t, "crm")[0]
	if env.Actor != "alice" || env.CommandID != "up1" {
		t.Fatalf("envelope actor %q command %q", env.Actor, env.CommandID)
	}
	b, ok := r.fold.backup(t, "crm", res.BackupID)
	want := domain.Backup{ID: res.BackupID, App: "crm", Name: "Copy of erp", Description: "moved", Status: domain.StatusReady,
		Origin: domain.OriginUpload, CreatedBy: "alice", CreatedAt: t0, CompletedAt: t0, ExpiresAt: t0.Add(60 * day),
		SchemaVersion: 3, SizeBytes: 2048, SHA256: sha64, ItemCount: 5, Source: "kv",
		Original: &domain.ArchiveOrigin{App: "erp", BackupID: "orig-1", Name: "Before upgrade", CreatedAt: origCreated}, Seq: 1}
	if !ok || !reflect.DeepEqual(b, want) {
		t.Fatalf("backup =\n%+v\nwant\n%+v", b, want)
	}
	if d := r.xfer.deleted(); len(d) != 0 {
		t.Fatalf("archives deleted: %v", d)
	}
}

func TestUploadNames(t *testing.T) {
	r := newTransferRig(t)
	a, err := r.upload(alice("up1"), body("x"))
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Minute)
	b, err := r.upload(alice("up2"), body("x"))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.fold.backup(t, "crm", a.BackupID)
	second, _ := r.fold.backup(t, "crm", b.BackupID)
	if first.Name != "November 21 Saturday 10:15" || second.Name != "November 21 Saturday 10:16" {
		t.Fatalf("names %q, %q; want the default names of the upload times", first.Name, second.Name)
	}
	// The same file twice gives two entries with ids of their own.
	if a.BackupID == b.BackupID || len(r.xfer.importCalls()) != 2 {
		t.Fatalf("two uploads: %+v, %+v", a, b)
	}
}

func TestUploadIntoAnotherAppThanTheManifests(t *testing.T) {
	r := newTransferRig(t)
	r.xfer.imported.App = "crm"
	res, err := r.upload(alice("up1"), domain.Upload{App: "hr", Body: strings.NewReader("x")})
	if err != nil {
		t.Fatal(err)
	}
	b, ok := r.fold.backup(t, "hr", res.BackupID)
	if !ok || b.App != "hr" || b.Original.App != "crm" {
		t.Fatalf("backup = %+v, %v; want an entry of hr made of crm's archive", b, ok)
	}
	if len(r.stream.types("crm")) != 0 {
		t.Fatal("the manifest's app got an event")
	}
}

func TestUploadQuotaFullIsRefusedBeforeImport(t *testing.T) {
	r := newTransferRig(t)
	r.fill(t, 10)
	appends := len(r.stream.appendCalls())
	_, err := r.upload(alice("up1"), body("x"))
	wantCode(t, err, domain.CodeQuotaExceeded)
	r.wantNothingDone(t, appends)

	// Failed backups do not count: with one of them failed, the upload is
	// taken.
	var id string
	r.fold.ReadApp("crm", func(a *domain.App) { id = a.Backups()[0].ID })
	r.must(t, domain.FailBackup{App: "crm", BackupID: id, Reason: "x"}, alice("fail"))
	if _, err := r.upload(alice("up1"), body("x")); err != nil {
		t.Fatalf("upload with a place free: %v", err)
	}
}

func TestUploadRefusesBadInputBeforeImport(t *testing.T) {
	cases := []struct {
		name string
		meta domain.Meta
		up   domain.Upload
	}{
		{"invalid app id", alice("k1"), domain.Upload{App: "CRM", Body: strings.NewReader("x")}},
		{"empty app id", alice("k1"), domain.Upload{Body: strings.NewReader("x")}},
		{"given empty name", alice("k1"), domain.Upload{App: "crm", Name: ptr("  "), Body: strings.NewReader("x")}},
		{"name of 101 characters", alice("k1"), domain.Upload{App: "crm", Name: ptr(runes("a", 101)), Body: strings.NewReader("x")}},
		{"name with a control character", alice("k1"), domain.Upload{App: "crm", Name: ptr("a\x1bb"), Body: strings.NewReader("x")}},
		{"name of invalid UTF-8", alice("k1"), domain.Upload{App: "crm", Name: ptr("caf\xe9"), Body: strings.NewReader("x")}},
		{"description of 1001 characters", alice("k1"), domain.Upload{App: "crm", Description: runes("a", 1001), Body: strings.NewReader("x")}},
		{"key with a space", alice("a b"), body("x")},
		{"key of 65 characters", alice(runes("k", 65)), body("x")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newTransferRig(t)
			_, err := r.upload(tc.meta, tc.up)
			wantCode(t, err, domain.CodeInvalidArgument)
			r.wantNothingDone(t, 0)
		})
	}
}

// TestUploadWithoutActorIsRefusedBeforeImport is a regression test for a
// bug reported to the lead: Upload checks the app, name, description and
// key before it reads the archive, but not the actor, so an upload without
// one is read, validated and stored in full before the ledger refuses it.
func TestUploadWithoutActorIsRefusedBeforeImport(t *testing.T) {
	r := newTransferRig(t)
	_, err := r.upload(domain.Meta{CommandID: "k1"}, body("x"))
	if !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("err = %v, want ErrUnauthenticated", err)
	}
	if len(r.xfer.importCalls()) != 0 {
		t.Fatal("fixed bug is back: service/transfers.go (Upload): an empty m.Actor is refused only by Execute, after the archive was imported (and then deleted); check it with the other input, before the import")
	}
	r.wantNothingDone(t, 0)
}

func TestUploadImportRefused(t *testing.T) {
	for _, code := range []string{domain.CodeArchiveInvalid, domain.CodeArchiveTooLarge, domain.CodeArchiveVersion} {
		t.Run(code, func(t *testing.T) {
			r := newTransferRig(t)
			refusal := domain.Errorf(code, "manifest.json: entry config/a has size 3, the manifest says 4")
			r.xfer.importErr = refusal
			_, err := r.upload(alice("up1"), body("not a zip"))
			if err != refusal {
				t.Fatalf("err = %v, want the import's refusal as is", err)
			}
			if len(r.stream.appendCalls()) != 0 {
				t.Fatal("a refused import was recorded")
			}
			if d := r.xfer.deleted(); len(d) != 0 {
				t.Fatalf("archives deleted: %v; a refused import leaves nothing to delete", d)
			}
		})
	}
}

func TestUploadRefusedByTheLedgerAfterImport(t *testing.T) {
	check := func(t *testing.T, r *transferRig, err error, code string) {
		t.Helper()
		wantCode(t, err, code)
		imports := r.xfer.importCalls()
		if len(imports) != 1 {
			t.Fatalf("imports = %+v, want one", imports)
		}
		if got := r.xfer.deleted(); !slices.Equal(got, []string{imports[0].backupID}) {
			t.Fatalf("archives deleted = %v, want the import %s", got, imports[0].backupID)
		}
		if slices.Contains(r.stream.types("crm"), domain.TypeBackupUploaded) {
			t.Fatal("the refused upload was recorded")
		}
	}
	t.Run("quota filled while the archive was imported", func(t *testing.T) {
		r := newTransferRig(t)
		r.fill(t, 9)
		r.xfer.onImport = func(string) { r.must(t, nightly("crm"), bob("theirs")) }
		_, err := r.upload(alice("up1"), body("x"))
		check(t, r, err, domain.CodeQuotaExceeded)
	})
	t.Run("quota filled by another process just before the append", func(t *testing.T) {
		r := newTransferRig(t)
		p2 := r.newProc()
		r.fill(t, 9)
		var once sync.Once
		r.stream.beforeAppend = func(ev domain.PendingEvent) {
			if strings.Contains(ev.MsgID, "|up1|alice") {
				once.Do(func() {
					p2.catchUp(t)
					p2.must(t, nightly("crm"), bob("theirs"))
				})
			}
		}
		_, err := r.upload(alice("up1"), body("x"))
		check(t, r, err, domain.CodeQuotaExceeded)
	})
	t.Run("store fails the append", func(t *testing.T) {
		// Whether the archive stays is not pinned: a store error may come
		// after the event was stored (see the next test).
		r := newTransferRig(t)
		r.stream.failAppend = func(domain.PendingEvent) error { return errStore }
		_, err := r.upload(alice("up1"), body("x"))
		if !errors.Is(err, errStore) {
			t.Fatalf("err = %v, want the store's error", err)
		}
		wantCode(t, err, domain.CodeInternal)
		if r.stream.len() != 0 {
			t.Fatal("the failed upload was recorded")
		}
	})
}

func TestUploadRefusedAndTheArchiveCannotBeDeleted(t *testing.T) {
	r := newTransferRig(t)
	r.fill(t, 9)
	r.xfer.onImport = func(string) { r.must(t, nightly("crm"), bob("theirs")) }
	r.xfer.deleteErr = errors.New("object store down")
	_, err := r.upload(alice("up1"), body("x"))
	wantCode(t, err, domain.CodeQuotaExceeded) // the refusal, not the store's error
	if len(r.xfer.deleted()) != 1 {
		t.Fatalf("deletes = %v, want one attempt", r.xfer.deleted())
	}
	if logs := r.logs.String(); !strings.Contains(logs, "delete archive of a refused upload") || !strings.Contains(logs, "object store down") {
		t.Fatalf("the left-behind archive was not logged; logs:\n%s", logs)
	}
}

// TestUploadKeepsTheArchiveOfARecordedUpload is a regression test for a bug
// reported to the lead: when Execute fails after the event was appended
// (the projection does not apply it in time, the client goes away), Upload
// deletes the archive although backup.uploaded is on record, leaving a
// ready backup without an archive.
func TestUploadKeepsTheArchiveOfARecordedUpload(t *testing.T) {
	r := newTransferRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.stream.beforeAppend = func(domain.PendingEvent) { cancel() } // the client leaves while the event is appended
	_, err := r.tr.Upload(ctx, alice("up1"), body("x"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if got := r.stream.types("crm"); !slices.Equal(got, []string{domain.TypeBackupUploaded}) {
		t.Fatalf("events = %v, want the appended backup.uploaded", got)
	}
	id := r.xfer.importCalls()[0].backupID
	if slices.Contains(r.xfer.deleted(), id) {
		t.Fatal("fixed bug is back: service/transfers.go (Upload): the archive is deleted on any Execute error, also when the event was appended (WaitApplied failed); delete only on a refusal (*Error, or ErrConflict after the last attempt), keep it otherwise")
	}
	// A retry answers the recorded upload, whose archive is there.
	r.stream.beforeAppend = nil
	res, err := r.upload(alice("up1"), body("x"))
	if err != nil || res.BackupID != id || !res.Duplicate {
		t.Fatalf("retry = %+v, %v; want the recorded upload %s", res, err, id)
	}
}

func TestUploadRetryAnswersTheFirstResult(t *testing.T) {
	t.Run("same process", func(t *testing.T) {
		r := newTransferRig(t)
		first, err := r.upload(alice("up1"), body("x"))
		if err != nil {
			t.Fatal(err)
		}
		again, err := r.upload(alice("up1"), domain.Upload{App: "crm", Name: ptr("other"), Body: strings.NewReader("other zip")})
		want := first
		want.Duplicate = true
		if err != nil || again != want {
			t.Fatalf("retry = %+v, %v; want %+v", again, err, want)
		}
		if n := len(r.xfer.importCalls()); n != 1 {
			t.Fatalf("%d imports, want 1: a retry must not store the archive again", n)
		}
		if n := r.stream.len(); n != 1 || len(r.xfer.deleted()) != 0 {
			t.Fatalf("%d events, deletes %v; want 1 and none", n, r.xfer.deleted())
		}
	})
	t.Run("answered even when the quota has filled since", func(t *testing.T) {
		r := newTransferRig(t)
		first, err := r.upload(alice("up1"), body("x"))
		if err != nil {
			t.Fatal(err)
		}
		r.fill(t, 9)
		again, err := r.upload(alice("up1"), body("x"))
		if err != nil || again.BackupID != first.BackupID || !again.Duplicate {
			t.Fatalf("retry = %+v, %v; want the first result", again, err)
		}
		if n := len(r.xfer.importCalls()); n != 1 {
			t.Fatalf("%d imports, want 1", n)
		}
	})
	t.Run("same key of another caller is another upload", func(t *testing.T) {
		r := newTransferRig(t)
		a, err := r.upload(alice("up1"), body("x"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.upload(bob("up1"), body("x"))
		if err != nil || b.Duplicate || b.BackupID == a.BackupID {
			t.Fatalf("bob's up1 = %+v, %v; want a second upload", b, err)
		}
	})
	t.Run("a key used for another command answers that command", func(t *testing.T) {
		r := newTransferRig(t)
		req := r.must(t, nightly("crm"), alice("k1"))
		res, err := r.upload(alice("k1"), body("x"))
		if err != nil || !res.Duplicate || res.BackupID != req.BackupID || res.EventType != domain.TypeBackupRequested {
			t.Fatalf("upload with a used key = %+v, %v; want the first command's result", res, err)
		}
		if n := len(r.xfer.importCalls()); n != 0 {
			t.Fatalf("%d imports, want none", n)
		}
	})
	t.Run("another process that has not seen the first", func(t *testing.T) {
		r := newTransferRig(t)
		p2 := r.newProc()
		tr2 := service.NewTransfers(p2.ledger, p2.fold, r.xfer, r.ids, r.clock, nil)
		first, err := r.upload(alice("up1"), body("x"))
		if err != nil {
			t.Fatal(err)
		}
		again, err := tr2.Upload(context.Background(), alice("up1"), body("x"))
		if err != nil || again.BackupID != first.BackupID || !again.Duplicate {
			t.Fatalf("retry on the stale process = %+v, %v; want the first result", again, err)
		}
		// Its state was stale, so it imported again; that copy must go.
		imports := r.xfer.importCalls()
		if len(imports) != 2 || imports[1].backupID == first.BackupID {
			t.Fatalf("imports = %+v", imports)
		}
		if got := r.xfer.deleted(); !slices.Equal(got, []string{imports[1].backupID}) {
			t.Fatalf("archives deleted = %v, want the second copy %s only", got, imports[1].backupID)
		}
		if n := r.stream.len(); n != 1 {
			t.Fatalf("%d events, want 1", n)
		}
	})
}

// TestUploadRetryWithAnInvalidUTF8Actor is a regression test for an oddity
// reported to the lead: Execute records the actor made valid UTF-8 and
// remembers the command under that key, but Upload's retry check uses the
// raw actor, so the retry imports the archive again before the ledger
// answers it.
func TestUploadRetryWithAnInvalidUTF8Actor(t *testing.T) {
	r := newTransferRig(t)
	m := domain.Meta{Actor: "caf\xe9", CommandID: "up1"}
	first, err := r.upload(m, body("x"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.upload(m, body("x"))
	if err != nil || again.BackupID != first.BackupID || !again.Duplicate {
		t.Fatalf("retry = %+v, %v; want the first result", again, err)
	}
	if n := len(r.xfer.importCalls()); n != 1 {
		t.Fatal("fixed bug is back: service/transfers.go (Upload): the retry check uses CommandKey(m.Actor, …) with the raw actor; use strings.ToValidUTF8(m.Actor, \"\\uFFFD\") as Execute does")
	}
}

func TestUploadStaged(t *testing.T) {
	r := newTransferRig(t)
	res, err := r.upload(alice("up1"), domain.Upload{App: "crm", StagedObject: "uploads/crm-1.zip"})
	if err != nil {
		t.Fatal(err)
	}
	imports := r.xfer.importCalls()
	if len(imports) != 1 || imports[0].staged != "uploads/crm-1.zip" || imports[0].backupID != res.BackupID || imports[0].body != "" {
		t.Fatalf("imports = %+v, want ImportStaged of the object under %s", imports, res.BackupID)
	}
	if b, ok := r.fold.backup(t, "crm", res.BackupID); !ok || b.Status != domain.StatusReady || b.Origin != domain.OriginUpload {
		t.Fatalf("backup = %+v, %v", b, ok)
	}

	// A missing object is refused as the store says; nothing is recorded.
	r.xfer.importErr = domain.Errorf(domain.CodeNotFound, "no staged object uploads/none.zip")
	_, err = r.upload(alice("up2"), domain.Upload{App: "crm", StagedObject: "uploads/none.zip"})
	wantCode(t, err, domain.CodeNotFound)
	if n := r.stream.len(); n != 1 || len(r.xfer.deleted()) != 0 {
		t.Fatalf("%d events, deletes %v; want 1 and none", n, r.xfer.deleted())
	}
}
