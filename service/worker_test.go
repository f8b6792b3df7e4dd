package service_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// workerRig is a rig with a worker, a source with two documents and one
// requested backup.
type workerRig struct {
	*rig
	src    *fakeSource
	worker *service.Worker
	backup domain.Result
	job    domain.Job
}

func newWorkerRig(t *testing.T) *workerRig {
	t.Helper()
	return newWorkerRigWith(t, service.WorkerConfig{Name: "w1"})
}

// newWorkerRigWith is newWorkerRig with a worker of cfg.
func newWorkerRigWith(t *testing.T, cfg service.WorkerConfig) *workerRig {
	t.Helper()
	r := newRig(t, service.LedgerConfig{})
	src := &fakeSource{docs: map[string]string{"settings/theme": "dark", "tables/users": `{"cols":["id"]}`}}
	w := &workerRig{rig: r, src: src, worker: service.NewWorker(cfg, r.ledger, r.fold, service.SourceSet{Default: src}, r.archives, nil)}
	w.backup = r.must(t, domain.RequestBackup{App: "crm", Name: ptr("nightly-ish"), Description: "d"}, alice("req"))
	env := r.stream.envelopes(t, "crm")[0]
	w.job = domain.Job{App: "crm", BackupID: w.backup.BackupID, Seq: w.backup.Seq, Attempt: 1,
		EventID: env.ID, CorrelationID: env.CorrelationID}
	return w
}

func (w *workerRig) run(t *testing.T, j domain.Job) error {
	t.Helper()
	return w.worker.Run(context.Background(), j)
}

func (w *workerRig) state(t *testing.T) (domain.Backup, bool) {
	t.Helper()
	return w.fold.backup(t, "crm", w.backup.BackupID)
}

func (w *workerRig) wantTypes(t *testing.T, want ...string) {
	t.Helper()
	if got := w.stream.types("crm"); !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
}

func (w *workerRig) wantStatus(t *testing.T, want domain.Status) domain.Backup {
	t.Helper()
	b, ok := w.state(t)
	if !ok {
		t.Fatalf("backup %s is gone, want %s", w.backup.BackupID, want)
	}
	if b.Status != want {
		t.Fatalf("status = %s (error %q), want %s", b.Status, b.Error, want)
	}
	return b
}

func TestWorkerMakesTheBackupReady(t *testing.T) {
	w := newWorkerRig(t)
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v", err)
	}
	b := w.wantStatus(t, domain.StatusReady)
	obj, ok := w.archives.object(b.ID)
	if !ok {
		t.Fatal("no archive stored")
	}
	sum := sha256.Sum256(obj)
	if b.SizeBytes != int64(len(obj)) || b.SHA256 != hex.EncodeToString(sum[:]) || b.ItemCount != 2 || b.SchemaVersion != 7 {
		t.Fatalf("recorded size %d sha %s items %d schema %d; archive has %d bytes, sha %x, 2 items, schema 7",
			b.SizeBytes, b.SHA256, b.ItemCount, b.SchemaVersion, len(obj), sum)
	}
	if b.Attempt != 1 {
		t.Fatalf("attempt = %d, want 1", b.Attempt)
	}
	w.wantTypes(t, domain.TypeBackupRequested, domain.TypeBackupStarted, domain.TypeBackupCompleted)

	headers := w.archives.writes()
	want := domain.ArchiveHeader{App: "crm", BackupID: b.ID, Name: "nightly-ish", Description: "d", CreatedAt: b.CreatedAt,
		CreatedBy: "alice", Origin: domain.OriginManual, SchemaVersion: 7, SourceKind: "fake",
		Components: []string{domain.ComponentConfig}}
	if len(headers) != 1 || !reflect.DeepEqual(headers[0], want) {
		t.Fatalf("archive headers = %+v, want [%+v]", headers, want)
	}

	envs := w.stream.envelopes(t, "crm")
	for i, step := range map[int]string{1: "start", 2: "complete"} {
		e := envs[i]
		if e.Actor != domain.WorkerActor || e.CommandID != fmt.Sprintf("%s.%s.1", b.ID, step) ||
			e.CausationID != w.job.EventID || e.CorrelationID != w.job.CorrelationID {
			t.Errorf("%s event: actor %q command %q causation %q correlation %q", step, e.Actor, e.CommandID, e.CausationID, e.CorrelationID)
		}
	}
	ev, err := domain.DecodeEvent(&envs[1])
	if err != nil {
		t.Fatal(err)
	}
	if s := ev.(*domain.BackupStarted); s.Worker != "w1" || s.Attempt != 1 {
		t.Fatalf("started = %+v, want worker w1, attempt 1", s)
	}
	if d := w.archives.deleted(); len(d) != 0 {
		t.Fatalf("archives deleted: %v", d)
	}

	// The same job delivered again (its ack was lost) changes nothing.
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run again: %v", err)
	}
	w.wantTypes(t, domain.TypeBackupRequested, domain.TypeBackupStarted, domain.TypeBackupCompleted)
	if len(w.archives.writes()) != 1 || len(w.archives.deleted()) != 0 {
		t.Fatal("a redelivered job of a ready backup touched the archive")
	}
}

func TestWorkerRestartsAfterADeadWorker(t *testing.T) {
	w := newWorkerRig(t)
	// A worker started attempt 1 and died.
	w.must(t, domain.StartBackup{App: "crm", BackupID: w.backup.BackupID, Attempt: 1, Worker: "dead"},
		domain.Meta{Actor: domain.WorkerActor, CommandID: w.backup.BackupID + ".start.1"})
	j := w.job
	j.Attempt = 2
	if err := w.run(t, j); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if b := w.wantStatus(t, domain.StatusReady); b.Attempt != 2 {
		t.Fatalf("attempt = %d, want 2", b.Attempt)
	}
	w.wantTypes(t, domain.TypeBackupRequested, domain.TypeBackupStarted, domain.TypeBackupStarted, domain.TypeBackupCompleted)
}

func TestWorkerDuplicateDeliveryOfARunningAttempt(t *testing.T) {
	w := newWorkerRig(t)
	w.must(t, domain.StartBackup{App: "crm", BackupID: w.backup.BackupID, Attempt: 1, Worker: "other"},
		domain.Meta{Actor: "system:other", CommandID: "s1"})
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v", err)
	}
	w.wantStatus(t, domain.StatusRunning)
	if len(w.archives.writes()) != 0 {
		t.Fatal("a second worker wrote the archive of an attempt that is running")
	}
}

func TestWorkerExportErrorFailsTheBackup(t *testing.T) {
	w := newWorkerRig(t)
	w.src.err = errors.New("disk on fire")
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v (a failure on record settles the job)", err)
	}
	b := w.wantStatus(t, domain.StatusFailed)
	if !strings.Contains(b.Error, "export") || !strings.Contains(b.Error, "disk on fire") {
		t.Fatalf("reason = %q, want the export error", b.Error)
	}
	if got := w.archives.deleted(); !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("archives deleted = %v, want the partial archive %s", got, b.ID)
	}
	w.wantTypes(t, domain.TypeBackupRequested, domain.TypeBackupStarted, domain.TypeBackupFailed)
}

func TestWorkerArchiveStoreErrorFailsTheBackup(t *testing.T) {
	w := newWorkerRig(t)
	w.archives.writeErr = errors.New("bucket full")
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if b := w.wantStatus(t, domain.StatusFailed); !strings.Contains(b.Error, "bucket full") {
		t.Fatalf("reason = %q", b.Error)
	}
}

func TestWorkerTimeoutFailsTheBackup(t *testing.T) {
	w := newWorkerRigWith(t, service.WorkerConfig{Name: "w1", Timeout: time.Nanosecond})
	w.src.onExport = func(ctx context.Context, _ func(domain.Item) error) error {
		<-ctx.Done() // a hung export, stopped by the bound
		return ctx.Err()
	}
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v", err)
	}
	b := w.wantStatus(t, domain.StatusFailed)
	if !strings.Contains(b.Error, "timed out") {
		t.Fatalf("reason = %q, want it to say it timed out", b.Error)
	}
	if !slices.Contains(w.archives.deleted(), b.ID) {
		t.Fatal("partial archive not deleted")
	}
}

func TestWorkerFinalDeliveryFailsTheBackup(t *testing.T) {
	for _, running := range []bool{false, true} {
		t.Run(map[bool]string{false: "queued", true: "running"}[running], func(t *testing.T) {
			w := newWorkerRig(t)
			if running {
				w.must(t, domain.StartBackup{App: "crm", BackupID: w.backup.BackupID, Attempt: 4, Worker: "dead"},
					domain.Meta{Actor: domain.WorkerActor, CommandID: "s4"})
			}
			j := w.job
			j.Attempt, j.Final = 5, true
			if err := w.run(t, j); err != nil {
				t.Fatalf("Run: %v", err)
			}
			b := w.wantStatus(t, domain.StatusFailed)
			if !strings.Contains(b.Error, "deliveries") || !strings.Contains(b.Error, "4") {
				t.Fatalf("reason = %q, want it to mention the 4 deliveries", b.Error)
			}
			if len(w.archives.writes()) != 0 {
				t.Fatal("the final delivery wrote an archive")
			}
			envs := w.stream.envelopes(t, "crm")
			if last := envs[len(envs)-1]; last.CommandID != b.ID+".fail.5" || last.Actor != domain.WorkerActor {
				t.Fatalf("fail event: command %q actor %q", last.CommandID, last.Actor)
			}
		})
	}
}

func TestWorkerJobOfADeletedBackup(t *testing.T) {
	w := newWorkerRig(t)
	w.must(t, domain.DeleteBackup{App: "crm", BackupID: w.backup.BackupID}, alice("del"))
	before := w.stream.len()
	deletes := len(w.archives.deleted())
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if w.stream.len() != before {
		t.Fatal("a job of a deleted backup appended an event")
	}
	if got := w.archives.deleted()[deletes:]; !slices.Equal(got, []string{w.backup.BackupID}) {
		t.Fatalf("archives deleted by the job = %v, want [%s]", got, w.backup.BackupID)
	}
	if len(w.archives.writes()) != 0 {
		t.Fatal("archive written for a deleted backup")
	}
}

func TestWorkerJobOfASettledBackup(t *testing.T) {
	for _, st := range []domain.Status{domain.StatusReady, domain.StatusFailed} {
		t.Run(string(st), func(t *testing.T) {
			w := newWorkerRig(t)
			id := w.backup.BackupID
			if st == domain.StatusReady {
				w.must(t, domain.StartBackup{App: "crm", BackupID: id, Attempt: 1}, alice("s"))
				w.must(t, domain.CompleteBackup{App: "crm", BackupID: id, Attempt: 1, SHA256: sha64}, alice("c"))
			} else {
				w.must(t, domain.FailBackup{App: "crm", BackupID: id, Reason: "x"}, alice("f"))
			}
			before := w.stream.len()
			j := w.job
			j.Attempt = 2
			if err := w.run(t, j); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if w.stream.len() != before || len(w.archives.writes()) != 0 || len(w.archives.deleted()) != 0 {
				t.Fatal("a job of a settled backup did something")
			}
			w.wantStatus(t, st)
		})
	}
}

func TestWorkerHandsBackWhenCancelled(t *testing.T) {
	w := newWorkerRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.src.onExport = func(_ context.Context, emit func(domain.Item) error) error {
		cancel() // the process is stopping while it exports
		return emit(domain.Item{Path: "a", Body: strings.NewReader("x")})
	}
	err := w.worker.Run(ctx, w.job)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled (handed back)", err)
	}
	w.wantStatus(t, domain.StatusRunning)
	w.wantTypes(t, domain.TypeBackupRequested, domain.TypeBackupStarted)

	// The next delivery finishes it.
	w.src.onExport = nil
	j := w.job
	j.Attempt = 2
	if err := w.run(t, j); err != nil {
		t.Fatalf("Run of the next delivery: %v", err)
	}
	w.wantStatus(t, domain.StatusReady)
}

// stuckStates is a projection that applies nothing more: its follower
// hangs on a node that does not answer.
type stuckStates struct{ service.States }

func (stuckStates) WaitApplied(ctx context.Context, seq uint64) error {
	<-ctx.Done()
	return fmt.Errorf("wait for seq %d: %w", seq, ctx.Err())
}

func TestWorkerWaitsForTheProjectionAtMostRetryFor(t *testing.T) {
	w := newWorkerRig(t)
	const retryFor = 50 * time.Millisecond
	worker := service.NewWorker(service.WorkerConfig{Name: "w1", RetryFor: retryFor}, w.ledger, stuckStates{w.fold},
		service.SourceSet{Default: w.src}, w.archives, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a wait without a bound ends here
	defer cancel()
	start := time.Now()
	err := worker.Run(ctx, w.job)
	if took := time.Since(start); took > 20*retryFor {
		t.Errorf("Run waited %s for the projection, want about RetryFor (%s)", took, retryFor)
	}
	if domain.Code(err) != domain.CodeUnavailable {
		t.Fatalf("Run = %v (code %s), want unavailable: the job is delivered again", err, domain.Code(err))
	}
	w.wantTypes(t, domain.TypeBackupRequested)
}

func TestWorkerCancelledBeforeStart(t *testing.T) {
	w := newWorkerRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.worker.Run(ctx, w.job); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	w.wantStatus(t, domain.StatusQueued)
}

func TestWorkerBackupDeletedWhileWriting(t *testing.T) {
	w := newWorkerRig(t)
	w.archives.duringWrite = func(context.Context, domain.ArchiveHeader) {
		w.must(t, domain.DeleteBackup{App: "crm", BackupID: w.backup.BackupID}, alice("del"))
	}
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, ok := w.state(t); ok {
		t.Fatal("backup still listed")
	}
	w.wantTypes(t, domain.TypeBackupRequested, domain.TypeBackupStarted, domain.TypeBackupDeleted)
	if _, ok := w.archives.object(w.backup.BackupID); ok {
		t.Fatal("the archive of a deleted backup was left behind")
	}
	// Deleted by the ledger (too early: still being written) and by the
	// worker once its completion was refused.
	if got := w.archives.deleted(); len(got) != 2 {
		t.Fatalf("archive deletes = %v, want two", got)
	}
}

func TestWorkerBackupFailedWhileWriting(t *testing.T) {
	w := newWorkerRig(t)
	w.archives.duringWrite = func(context.Context, domain.ArchiveHeader) {
		w.must(t, domain.FailBackup{App: "crm", BackupID: w.backup.BackupID, Reason: "given up"}, alice("fail"))
	}
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if b := w.wantStatus(t, domain.StatusFailed); b.Error != "given up" {
		t.Fatalf("reason = %q", b.Error)
	}
	if _, ok := w.archives.object(w.backup.BackupID); ok {
		t.Fatal("the archive of a failed backup was left behind")
	}
}

func TestWorkerLedgerErrors(t *testing.T) {
	failType := func(w *workerRig, typ string) {
		w.stream.failAppend = func(ev domain.PendingEvent) error {
			if ev.Type == typ {
				return errStore
			}
			return nil
		}
	}
	t.Run("start", func(t *testing.T) {
		w := newWorkerRig(t)
		failType(w, domain.TypeBackupStarted)
		if err := w.run(t, w.job); !errors.Is(err, errStore) {
			t.Fatalf("Run = %v, want the store's error (deliver again)", err)
		}
		if len(w.archives.writes()) != 0 {
			t.Fatal("archive written although the start was not recorded")
		}
		w.wantStatus(t, domain.StatusQueued)
	})
	t.Run("complete", func(t *testing.T) {
		w := newWorkerRig(t)
		failType(w, domain.TypeBackupCompleted)
		if err := w.run(t, w.job); !errors.Is(err, errStore) {
			t.Fatalf("Run = %v, want the store's error (deliver again)", err)
		}
		w.wantStatus(t, domain.StatusRunning)
		if len(w.archives.deleted()) != 0 {
			t.Fatal("archive deleted although the backup is still running")
		}
	})
	t.Run("fail", func(t *testing.T) {
		w := newWorkerRig(t)
		w.src.err = errors.New("export broke")
		failType(w, domain.TypeBackupFailed)
		if err := w.run(t, w.job); !errors.Is(err, errStore) {
			t.Fatalf("Run = %v, want the store's error (deliver again)", err)
		}
		w.wantStatus(t, domain.StatusRunning)
	})
}

func TestWorkerForget(t *testing.T) {
	w := newWorkerRig(t)
	if err := w.worker.Forget(context.Background(), "b-gone"); err != nil {
		t.Fatal(err)
	}
	if got := w.archives.deleted(); !slices.Equal(got, []string{"b-gone"}) {
		t.Fatalf("deleted = %v", got)
	}
	w.archives.deleteErr = errors.New("down")
	if err := w.worker.Forget(context.Background(), "b2"); err == nil {
		t.Fatal("Forget hid the store's error")
	}
}

// TestWorkerOverlappingAttemptsKeepTheArchive is a regression test for a bug
// reported to the lead: when a job is delivered again while its first
// attempt is still alive (a missed heartbeat), and the second attempt
// completes first, the first attempt's completion is refused as a state
// conflict and the worker deletes the archive of a ready backup.
func TestWorkerOverlappingAttemptsKeepTheArchive(t *testing.T) {
	w := newWorkerRig(t)
	second := w.job
	second.Attempt = 2
	nested := false
	w.archives.duringWrite = func(context.Context, domain.ArchiveHeader) {
		if nested {
			return
		}
		nested = true
		if err := w.run(t, second); err != nil {
			t.Fatalf("second attempt: %v", err)
		}
	}
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	w.wantStatus(t, domain.StatusReady)
	if _, ok := w.archives.object(w.backup.BackupID); !ok {
		t.Fatal("a stale attempt deleted the archive of a ready backup")
	}
}

func TestWorkerExportFailsAfterTheBackupWasDeleted(t *testing.T) {
	w := newWorkerRig(t)
	w.archives.writeErr = errors.New("bucket full")
	w.archives.duringWrite = func(context.Context, domain.ArchiveHeader) {
		w.must(t, domain.DeleteBackup{App: "crm", BackupID: w.backup.BackupID}, alice("del"))
	}
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run = %v, want nil: the backup is settled (deleted)", err)
	}
	w.wantTypes(t, domain.TypeBackupRequested, domain.TypeBackupStarted, domain.TypeBackupDeleted)
}

func TestWorkerFailsEvenIfThePartialArchiveStays(t *testing.T) {
	w := newWorkerRig(t)
	w.src.err = errors.New("export broke")
	w.archives.deleteErr = errors.New("object store down")
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v", err)
	}
	w.wantStatus(t, domain.StatusFailed)
	if !slices.Contains(w.archives.deleted(), w.backup.BackupID) {
		t.Fatal("no attempt to delete the partial archive")
	}
}

func TestSourceSetFor(t *testing.T) {
	kv := &fakeSource{kind: "kv"}
	dir := &fakeSource{kind: "dir"}
	cases := []struct {
		name string
		set  service.SourceSet
		app  string
		want service.Source
	}{
		{"default for every app", service.SourceSet{Default: kv}, "crm", kv},
		{"an app of its own", service.SourceSet{Default: kv, ByApp: map[string]service.Source{"files": dir}}, "files", dir},
		{"other apps keep the default", service.SourceSet{Default: kv, ByApp: map[string]service.Source{"files": dir}}, "crm", kv},
		{"app ids are exact", service.SourceSet{Default: kv, ByApp: map[string]service.Source{"files": dir}}, "files2", kv},
		{"no default", service.SourceSet{ByApp: map[string]service.Source{"files": dir}}, "crm", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.set.For(tc.app); got != tc.want {
				t.Fatalf("For(%q) = %v, want %v", tc.app, got, tc.want)
			}
		})
	}
}

func TestWorkerUsesTheAppsSource(t *testing.T) {
	w := newWorkerRig(t)
	dir := &fakeSource{kind: "dir", schema: 2, components: []string{domain.ComponentFiles, "media"},
		docs: map[string]string{"logo.png": "png"}}
	w.worker = service.NewWorker(service.WorkerConfig{Name: "w1"}, w.ledger, w.fold,
		service.SourceSet{Default: w.src, ByApp: map[string]service.Source{"crm": dir}}, w.archives, nil)
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v", err)
	}
	b := w.wantStatus(t, domain.StatusReady)
	if b.Source != "dir" || b.SchemaVersion != 2 || b.ItemCount != 1 {
		t.Fatalf("backup source %q schema %d items %d; want dir, 2, 1 (the app's source, not the default)",
			b.Source, b.SchemaVersion, b.ItemCount)
	}
	h := w.archives.writes()[0]
	if h.SourceKind != "dir" || h.SchemaVersion != 2 || !slices.Equal(h.Components, []string{domain.ComponentFiles, "media"}) {
		t.Fatalf("archive header = %+v; want the app's source's kind, schema and components", h)
	}
	obj, _ := w.archives.object(b.ID)
	if !strings.Contains(string(obj), "logo.png") || strings.Contains(string(obj), "settings/theme") {
		t.Fatalf("archive %q: want the app's source's items only", obj)
	}
	envs := w.stream.envelopes(t, "crm")
	ev, err := domain.DecodeEvent(&envs[2])
	if err != nil {
		t.Fatal(err)
	}
	if c := ev.(*domain.BackupCompleted); c.Source != "dir" || c.SchemaVersion != 2 {
		t.Fatalf("completed = %+v, want source dir, schema 2", c)
	}
	// Another app keeps the default source.
	res := w.must(t, nightly("hr"), alice("hr1"))
	if err := w.run(t, domain.Job{App: "hr", BackupID: res.BackupID, Seq: res.Seq, Attempt: 1}); err != nil {
		t.Fatalf("Run hr: %v", err)
	}
	hr, _ := w.fold.backup(t, "hr", res.BackupID)
	if hr.Source != "fake" || hr.SchemaVersion != 7 || hr.Status != domain.StatusReady {
		t.Fatalf("hr backup = %+v, want ready from the default source", hr)
	}
}

func TestWorkerRecordsTheDefaultSource(t *testing.T) {
	w := newWorkerRig(t)
	if err := w.run(t, w.job); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if b := w.wantStatus(t, domain.StatusReady); b.Source != "fake" {
		t.Fatalf("source = %q, want fake", b.Source)
	}
	data := rawEnvelope(t, w.stream.snapshot()[2].body)["data"].(map[string]any)
	if data["source"] != "fake" {
		t.Fatalf("backup.completed data = %v, want source fake", data)
	}
}
