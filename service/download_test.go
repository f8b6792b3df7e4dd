package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// downloadCase is a backup that cannot be read, and the code that says why.
type downloadCase struct {
	name, app, id, code string
}

// unreadable makes backups in every state that cannot be downloaded.
func unreadable(t *testing.T, r *transferRig) []downloadCase {
	t.Helper()
	q := r.must(t, nightly("crm"), alice("q"))
	run := r.must(t, nightly("crm"), alice("r"))
	r.must(t, domain.StartBackup{App: "crm", BackupID: run.BackupID, Attempt: 1}, alice("r-start"))
	f := r.must(t, nightly("crm"), alice("f"))
	r.must(t, domain.FailBackup{App: "crm", BackupID: f.BackupID, Reason: "x"}, alice("f-fail"))
	d := r.ready(t, "crm")
	r.must(t, domain.DeleteBackup{App: "crm", BackupID: d.ID}, alice("d-del"))
	c := r.ready(t, "crm")
	r.must(t, domain.MarkCorrupt{App: "crm", BackupID: c.ID, Reason: "sha256 mismatch"}, alice("c-mark"))
	other := r.ready(t, "hr")
	return []downloadCase{
		{"unknown", "crm", "nope", domain.CodeNotFound},
		{"deleted", "crm", d.ID, domain.CodeNotFound},
		{"of another app", "crm", other.ID, domain.CodeNotFound},
		{"queued", "crm", q.BackupID, domain.CodeBackupNotReady},
		{"running", "crm", run.BackupID, domain.CodeBackupNotReady},
		{"failed", "crm", f.BackupID, domain.CodeBackupNotReady},
		{"corrupt", "crm", c.ID, domain.CodeBackupCorrupt},
		{"invalid app id", "CRM", c.ID, domain.CodeInvalidArgument},
		{"empty id", "crm", "", domain.CodeNotFound},
	}
}

func TestDownloadRefusesWhatCannotBeRead(t *testing.T) {
	r := newTransferRig(t)
	cases := unreadable(t, r)
	appends := len(r.stream.appendCalls())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, s, err := r.tr.Download(context.Background(), tc.app, tc.id, "")
			wantCode(t, err, tc.code)
			if b.ID != "" || s.ReadCloser != nil {
				t.Fatalf("Download = %+v, %+v with an error", b, s)
			}
			_, st, err := r.tr.StageDownload(context.Background(), tc.app, tc.id, "")
			wantCode(t, err, tc.code)
			if st != (domain.StagedArchive{}) {
				t.Fatalf("StageDownload = %+v with an error", st)
			}
		})
	}
	if o, s := r.xfer.openCalls(), r.xfer.stageCalls(); len(o) != 0 || len(s) != 0 {
		t.Fatalf("opened %+v, staged %+v: archives of unreadable backups were touched", o, s)
	}
	if got := len(r.stream.appendCalls()); got != appends {
		t.Fatal("refused downloads appended events")
	}
}

func TestDownloadOpensTheArchive(t *testing.T) {
	r := newTransferRig(t)
	want := r.ready(t, "crm")
	for _, component := range []string{"", domain.ComponentConfig} {
		t.Run("component "+component, func(t *testing.T) {
			b, s, err := r.tr.Download(context.Background(), "crm", want.ID, component)
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			if b.ID != want.ID || b.Status != domain.StatusReady || b.SHA256 != want.SHA256 {
				t.Fatalf("backup = %+v, want %+v", b, want)
			}
			calls := r.xfer.openCalls()
			if got := calls[len(calls)-1]; got != (openCall{backupID: want.ID, size: 12, sha256: sha64, component: component}) {
				t.Fatalf("OpenArchive call = %+v, want the ledger's size and SHA-256 and component %q", got, component)
			}
			if s.Size != 12 || s.SHA256 != sha64 {
				t.Fatalf("stream size %d sha %s", s.Size, s.SHA256)
			}
			data, err := io.ReadAll(s)
			if err != nil || string(data) != "PK zip bytes" {
				t.Fatalf("read %q, %v", data, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if n := r.stream.len(); n != 3 {
		t.Fatalf("%d events, want 3: a download records nothing", n)
	}
}

func TestDownloadOfAnUploadedBackup(t *testing.T) {
	r := newTransferRig(t)
	res, err := r.upload(alice("up1"), body("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.tr.Download(context.Background(), "crm", res.BackupID, ""); err != nil {
		t.Fatalf("Download: %v", err)
	}
	if got := r.xfer.openCalls(); len(got) != 1 || got[0] != (openCall{backupID: res.BackupID, size: 2048, sha256: sha64}) {
		t.Fatalf("OpenArchive calls = %+v, want the upload's size and SHA-256", got)
	}
}

// corruptEvents returns the backup.corrupted envelopes of crm.
func corruptEvents(t *testing.T, r *transferRig) []domain.Envelope {
	t.Helper()
	var out []domain.Envelope
	for _, env := range r.stream.envelopes(t, "crm") {
		if env.Type == domain.TypeBackupCorrupted {
			out = append(out, env)
		}
	}
	return out
}

// wantMarked fails unless b was marked corrupt exactly once, by the
// integrity actor, with a reason containing detail.
func wantMarked(t *testing.T, r *transferRig, b domain.Backup, detail string) {
	t.Helper()
	envs := corruptEvents(t, r)
	if len(envs) != 1 {
		t.Fatalf("%d backup.corrupted events, want exactly 1", len(envs))
	}
	env := envs[0]
	if env.Actor != domain.IntegrityActor || env.CommandID != b.ID+".corrupt" {
		t.Fatalf("envelope actor %q command %q; want %s and %s.corrupt", env.Actor, env.CommandID, domain.IntegrityActor, b.ID)
	}
	ev, err := domain.DecodeEvent(&env)
	if err != nil {
		t.Fatal(err)
	}
	c := ev.(*domain.BackupCorrupted)
	if c.BackupID != b.ID || !strings.HasPrefix(c.Reason, "archive does not match the ledger: ") || !strings.Contains(c.Reason, detail) {
		t.Fatalf("event = %+v, want a reason that says %q", c, detail)
	}
	now, _ := r.fold.backup(t, "crm", b.ID)
	if now.CorruptAt.IsZero() || now.CorruptReason != c.Reason || now.Status != domain.StatusReady {
		t.Fatalf("backup = %+v, want it ready and marked corrupt", now)
	}
	if !strings.Contains(r.logs.String(), "stored archive does not match the ledger") || !strings.Contains(r.logs.String(), b.ID) {
		t.Fatalf("the mismatch was not logged with the backup id; logs:\n%s", r.logs)
	}
}

func TestDownloadMarksACorruptArchive(t *testing.T) {
	r := newTransferRig(t)
	b := r.ready(t, "crm")
	r.xfer.failAt = 4
	r.clock.Advance(time.Hour)
	_, s, err := r.tr.Download(context.Background(), "crm", b.ID, "")
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	data, err := io.ReadAll(s)
	if !errors.Is(err, domain.ErrArchiveCorrupt) || string(data) != "PK z" {
		t.Fatalf("read %q, %v; want the first 4 bytes and the mismatch", data, err)
	}
	// The caller may read again; the backup is marked only once.
	for range 3 {
		if _, err := s.Read(make([]byte, 8)); !errors.Is(err, domain.ErrArchiveCorrupt) {
			t.Fatalf("read again: %v, want the mismatch", err)
		}
	}
	wantMarked(t, r, b, "sha256 mismatch")
	if got, _ := r.fold.backup(t, "crm", b.ID); got.CorruptReason != "archive does not match the ledger: sha256 mismatch" ||
		!got.CorruptAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("corrupt at %v because %q", got.CorruptAt, got.CorruptReason)
	}
	// Now it cannot be downloaded any more.
	opens := len(r.xfer.openCalls())
	_, _, err = r.tr.Download(context.Background(), "crm", b.ID, "")
	wantCode(t, err, domain.CodeBackupCorrupt)
	if len(r.xfer.openCalls()) != opens {
		t.Fatal("a corrupt backup's archive was opened")
	}
}

func TestDownloadMarksCorruptOnceForConcurrentReaders(t *testing.T) {
	r := newTransferRig(t)
	b := r.ready(t, "crm")
	r.xfer.failAt = 2
	var streams []domain.ArchiveStream
	for range 4 {
		_, s, err := r.tr.Download(context.Background(), "crm", b.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() {
			if _, err := io.ReadAll(s); !errors.Is(err, domain.ErrArchiveCorrupt) {
				t.Errorf("read: %v, want the mismatch", err)
			}
		})
	}
	wg.Wait()
	wantMarked(t, r, b, "sha256 mismatch")
}

func TestDownloadMarksCorruptWhenTheClientHasLeft(t *testing.T) {
	r := newTransferRig(t)
	b := r.ready(t, "crm")
	r.xfer.failAt = 0
	ctx, cancel := context.WithCancel(context.Background())
	_, s, err := r.tr.Download(ctx, "crm", b.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(s); !errors.Is(err, domain.ErrArchiveCorrupt) {
		t.Fatalf("read: %v", err)
	}
	wantMarked(t, r, b, "sha256 mismatch")
}

func TestDownloadOpenErrors(t *testing.T) {
	cases := []struct {
		name   string
		err    func(id string) error
		marked string // "" means not marked
	}{
		{"mismatch found while opening", func(id string) error { return fmt.Errorf("open %s: %w", id, errMismatch) }, "sha256 mismatch"},
		{"the bare sentinel", func(string) error { return domain.ErrArchiveCorrupt }, domain.ErrArchiveCorrupt.Error()},
		{"size mismatch", func(string) error { return fmt.Errorf("size 11, want 12: %w", domain.ErrArchiveCorrupt) }, "size 11, want 12"},
		{"store down", func(string) error { return errStore }, ""},
		{"unknown component", func(string) error { return domain.Errorf(domain.CodeInvalidArgument, "no component media") }, ""},
		{"archive missing", func(string) error { return domain.Errorf(domain.CodeNotFound, "no archive") }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newTransferRig(t)
			b := r.ready(t, "crm")
			want := tc.err(b.ID)
			r.xfer.openErr = want
			_, s, err := r.tr.Download(context.Background(), "crm", b.ID, "")
			if err != want || s.ReadCloser != nil {
				t.Fatalf("Download = %+v, %v; want the store's error %v as is", s, err, want)
			}
			if tc.marked == "" {
				if envs := corruptEvents(t, r); len(envs) != 0 {
					t.Fatalf("marked corrupt on %v", err)
				}
				return
			}
			wantMarked(t, r, b, tc.marked)
		})
	}
}

func TestDownloadReadErrorsThatAreNotCorruption(t *testing.T) {
	for _, rerr := range []error{io.ErrUnexpectedEOF, context.Canceled, errStore} {
		t.Run(rerr.Error(), func(t *testing.T) {
			r := newTransferRig(t)
			b := r.ready(t, "crm")
			r.xfer.failAt, r.xfer.readErr = 3, rerr
			_, s, err := r.tr.Download(context.Background(), "crm", b.ID, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(s); !errors.Is(err, rerr) {
				t.Fatalf("read: %v, want %v", err, rerr)
			}
			if envs := corruptEvents(t, r); len(envs) != 0 {
				t.Fatalf("marked corrupt on %v", rerr)
			}
			if got, _ := r.fold.backup(t, "crm", b.ID); !got.CorruptAt.IsZero() {
				t.Fatal("backup marked corrupt")
			}
		})
	}
}

func TestDownloadCorruptionFoundAfterTheBackupWasDeleted(t *testing.T) {
	r := newTransferRig(t)
	b := r.ready(t, "crm")
	r.xfer.failAt = 1
	_, s, err := r.tr.Download(context.Background(), "crm", b.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	r.must(t, domain.DeleteBackup{App: "crm", BackupID: b.ID}, alice("del"))
	if _, err := io.ReadAll(s); !errors.Is(err, domain.ErrArchiveCorrupt) {
		t.Fatalf("read: %v", err)
	}
	if envs := corruptEvents(t, r); len(envs) != 0 {
		t.Fatal("a deleted backup was marked corrupt")
	}
}

func TestDownloadCorruptionNotRecordedWhenTheLedgerIsDown(t *testing.T) {
	r := newTransferRig(t)
	b := r.ready(t, "crm")
	r.xfer.failAt = 1
	r.stream.failAppend = func(domain.PendingEvent) error { return errStore }
	_, s, err := r.tr.Download(context.Background(), "crm", b.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	// The reader still gets the mismatch, not the ledger's failure.
	if _, err := io.ReadAll(s); !errors.Is(err, domain.ErrArchiveCorrupt) || errors.Is(err, errStore) {
		t.Fatalf("read: %v, want the mismatch", err)
	}
	if !strings.Contains(r.logs.String(), "mark backup corrupt") {
		t.Fatalf("the failure to mark was not logged; logs:\n%s", r.logs)
	}
	// The next download finds it again and records it.
	r.stream.failAppend = nil
	_, s, err = r.tr.Download(context.Background(), "crm", b.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(s); !errors.Is(err, domain.ErrArchiveCorrupt) {
		t.Fatalf("read: %v", err)
	}
	wantMarked(t, r, b, "sha256 mismatch")
}

func TestStageDownload(t *testing.T) {
	r := newTransferRig(t)
	want := r.ready(t, "crm")
	b, st, err := r.tr.StageDownload(context.Background(), "crm", want.ID, domain.ComponentConfig)
	if err != nil {
		t.Fatalf("StageDownload: %v", err)
	}
	if b.ID != want.ID || st != r.xfer.staged {
		t.Fatalf("StageDownload = %+v, %+v; want the backup and the staged object", b, st)
	}
	if got := r.xfer.stageCalls(); len(got) != 1 || got[0] != (openCall{backupID: want.ID, size: 12, sha256: sha64, component: domain.ComponentConfig}) {
		t.Fatalf("StageDownload calls = %+v, want the ledger's size and SHA-256 and the component", got)
	}
	if len(r.xfer.openCalls()) != 0 || len(corruptEvents(t, r)) != 0 {
		t.Fatal("staging opened the archive or marked it")
	}
}

func TestStageDownloadErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		marked bool
	}{
		{"mismatch", fmt.Errorf("verify: %w", errMismatch), true},
		{"store down", errStore, false},
		{"unknown component", domain.Errorf(domain.CodeInvalidArgument, "no component media"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTransferRig(t)
			b := r.ready(t, "crm")
			r.xfer.stageErr = tc.err
			_, st, err := r.tr.StageDownload(context.Background(), "crm", b.ID, "")
			if err != tc.err || st != (domain.StagedArchive{}) {
				t.Fatalf("StageDownload = %+v, %v; want the store's error as is", st, err)
			}
			if !tc.marked {
				if len(corruptEvents(t, r)) != 0 {
					t.Fatal("marked corrupt")
				}
				return
			}
			wantMarked(t, r, b, "verify: sha256 mismatch")
		})
	}
}
