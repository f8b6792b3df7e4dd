package domain_test

import (
	"slices"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

func maintOn(rid string) *domain.MaintenanceStarted {
	return &domain.MaintenanceStarted{Reason: "restore " + rid, RestoreID: rid}
}

func byHand() *domain.MaintenanceStarted { return &domain.MaintenanceStarted{Reason: "upgrade"} }

func preBackup(id, rid string) *domain.BackupRequested {
	b := requested(id, domain.OriginPreRestore)
	b.RestoreID = rid
	return b
}

// TestRestoreSaga: the pure saga, every state its events can fold to, and
// the action that comes next.
func TestRestoreSaga(t *testing.T) {
	auto := restoreRequested("r1", true)
	auto.AutoEndMaintenance = true
	noPre := restoreRequested("r1", false)
	cases := []struct {
		name  string
		given []given
		want  domain.RestoreActionKind
		step  string
	}{
		// The archive is checked first, before the app goes into
		// maintenance.
		{"requested: archive first", []given{g(0, noPre)}, domain.ActVerifyArchive, domain.StepVerifyArchive},
		{"archive verified: maintenance next", []given{g(0, noPre), g(1, verified("r1"))}, domain.ActStartMaintenance, domain.StepMaintenance},
		{"already in maintenance: archive, then past maintenance", []given{g(0, byHand()), g(1, noPre), g(2, verified("r1"))},
			domain.ActImport, domain.StepImport},
		{"maintenance on before the check (an older saga): archive next", []given{g(0, noPre), g(1, maintOn("r1"))},
			domain.ActVerifyArchive, domain.StepVerifyArchive},
		{"pre-restore backup asked: request it", []given{g(0, restoreRequested("r1", true)), g(1, verified("r1")), g(2, maintOn("r1"))},
			domain.ActRequestPreBackup, domain.StepPreBackup},
		{"pre-restore backup queued: wait", []given{g(0, restoreRequested("r1", true)), g(1, verified("r1")), g(2, maintOn("r1")),
			g(3, preBackup("p1", "r1"))}, domain.ActWaitPreBackup, domain.StepPreBackup},
		{"pre-restore backup running: wait", []given{g(0, restoreRequested("r1", true)), g(1, verified("r1")), g(2, maintOn("r1")),
			g(3, preBackup("p1", "r1")), g(4, started("p1", 1))}, domain.ActWaitPreBackup, domain.StepPreBackup},
		{"pre-restore backup ready: record it", []given{g(0, restoreRequested("r1", true)), g(1, verified("r1")), g(2, maintOn("r1")),
			g(3, preBackup("p1", "r1")), g(4, started("p1", 1)), g(5, completed("p1"))}, domain.ActRecordPreBackup, domain.StepPreBackup},
		{"pre-restore backup failed: the restore fails", []given{g(0, restoreRequested("r1", true)), g(1, verified("r1")), g(2, maintOn("r1")),
			g(3, preBackup("p1", "r1")), g(4, failed("p1"))}, domain.ActFail, domain.StepPreBackup},
		{"pre-restore backup deleted: the restore fails", []given{g(0, restoreRequested("r1", true)), g(1, verified("r1")), g(2, maintOn("r1")),
			g(3, preBackup("p1", "r1")), g(4, deleted("p1"))}, domain.ActFail, domain.StepPreBackup},
		{"pre-restore backup recorded: import next", []given{g(0, restoreRequested("r1", true)), g(1, verified("r1")), g(2, maintOn("r1")),
			g(3, preBackup("p1", "r1")), g(4, completed("p1")), g(5, &domain.RestorePreBackupReady{RestoreID: "r1", BackupID: "p1"})},
			domain.ActImport, domain.StepImport},
		{"archive verified: import", []given{g(0, noPre), g(1, maintOn("r1")), g(2, verified("r1"))}, domain.ActImport, domain.StepImport},
		{"imported: verify", []given{g(0, noPre), g(1, maintOn("r1")), g(2, verified("r1")), g(3, importedInto("r1"))},
			domain.ActVerify, domain.StepVerify},
		{"completed without auto-end: done, maintenance stays", []given{g(0, noPre), g(1, maintOn("r1")), g(2, verified("r1")),
			g(3, importedInto("r1")), g(4, completedRestore("r1"))}, domain.ActNone, domain.StepDone},
		{"completed with auto-end: end maintenance", []given{g(0, auto), g(1, maintOn("r1")),
			g(3, verified("r1")), g(4, importedInto("r1")), g(5, completedRestore("r1"))}, domain.ActEndMaintenance, domain.StepEndMaint},
		{"auto-end, maintenance on before: asked, the restore ends it too", []given{g(0, byHand()), g(1, withAuto(noPre)), g(2, verified("r1")),
			g(3, importedInto("r1")), g(4, completedRestore("r1"))}, domain.ActEndMaintenance, domain.StepEndMaint},
		{"no auto-end, maintenance on before: it stays", []given{g(0, byHand()), g(1, noPre), g(2, verified("r1")),
			g(3, importedInto("r1")), g(4, completedRestore("r1"))}, domain.ActNone, domain.StepDone},
		{"auto-end done", []given{g(0, withAuto(noPre)), g(1, maintOn("r1")), g(2, verified("r1")), g(3, importedInto("r1")),
			g(4, completedRestore("r1")), g(5, &domain.MaintenanceEnded{RestoreID: "r1"})}, domain.ActNone, domain.StepDone},
		{"failed: nothing more", []given{g(0, noPre), g(1, maintOn("r1")),
			g(2, &domain.RestoreFailed{RestoreID: "r1", Step: domain.StepImport, Reason: "boom"})}, domain.ActNone, domain.StepDone},
		// Duplicates and out-of-order events fold without harm.
		{"a duplicate step event changes nothing", []given{g(0, noPre), g(1, maintOn("r1")), g(2, verified("r1")), g(3, verified("r1"))},
			domain.ActImport, domain.StepImport},
		{"an import recorded before the archive check: the check is still due", []given{g(0, noPre), g(1, maintOn("r1")),
			g(2, importedInto("r1"))}, domain.ActVerifyArchive, domain.StepVerifyArchive},
		{"events of another restore do not count", []given{g(0, noPre), g(1, maintOn("r1")), g(2, verified("r2")), g(3, importedInto("r2"))},
			domain.ActVerifyArchive, domain.StepVerifyArchive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := fold(t, "crm", tc.given...)
			r, ok := a.Restore("r1")
			if !ok {
				t.Fatal("no restore r1")
			}
			got := domain.NextRestoreAction(a, &r)
			if got.Kind != tc.want || got.Step != tc.step {
				t.Fatalf("NextRestoreAction = %+v, want kind %d in step %s", got, tc.want, tc.step)
			}
			if tc.want == domain.ActFail && got.Reason == "" {
				t.Error("a failure without a reason")
			}
		})
	}
}

func withAuto(r *domain.RestoreRequested) *domain.RestoreRequested {
	c := *r
	c.AutoEndMaintenance = true
	return &c
}

func verified(rid string) *domain.RestoreArchiveVerified {
	return &domain.RestoreArchiveVerified{RestoreID: rid, SHA256: sha64}
}

func importedInto(rid string) *domain.RestoreImported {
	return &domain.RestoreImported{RestoreID: rid, Items: 3, FromSchema: 1, ToSchema: 1}
}

func completedRestore(rid string) *domain.RestoreCompleted {
	return &domain.RestoreCompleted{RestoreID: rid, Digest: sha64}
}

// TestRestoreFold: what the events make of the restore and the app.
func TestRestoreFold(t *testing.T) {
	a := fold(t, "crm", g(0, withAuto(restoreRequested("r1", true))), g(time.Second, maintOn("r1")),
		g(2*time.Second, preBackup("p1", "r1")), g(3*time.Second, completed("p1")),
		g(4*time.Second, &domain.RestorePreBackupReady{RestoreID: "r1", BackupID: "p1"}),
		g(5*time.Second, verified("r1")), g(6*time.Second, importedInto("r1")))
	if a.ActiveRestore() != "r1" || !a.Maintenance().On || a.Maintenance().RestoreID != "r1" {
		t.Fatalf("active %q, maintenance %+v", a.ActiveRestore(), a.Maintenance())
	}
	a.Apply(8, sha64, &domain.Envelope{Time: t0.Add(7 * time.Second), Actor: "system:restore"}, completedRestore("r1"))
	r, _ := a.Restore("r1")
	if r.Status != domain.RestoreStatusCompleted || r.PreBackupID != "p1" || r.Digest != sha64 {
		t.Fatalf("restore = %+v", r)
	}
	if a.ActiveRestore() != "r1" {
		t.Error("the restore is over before it ended the maintenance it was asked to end")
	}
	a.Apply(9, sha64, &domain.Envelope{Time: t0.Add(8 * time.Second), Actor: "system:restore"}, &domain.MaintenanceEnded{RestoreID: "r1"})
	r, _ = a.Restore("r1")
	if a.ActiveRestore() != "" || a.Maintenance().On || !r.MaintenanceEnded {
		t.Fatalf("after the end: active %q, maintenance %+v", a.ActiveRestore(), a.Maintenance())
	}
	var steps []string
	for _, s := range r.Steps {
		steps = append(steps, s.Step)
	}
	want := []string{domain.StepRequested, domain.StepMaintenance, domain.StepPreBackup, domain.StepVerifyArchive,
		domain.StepImport, domain.StepVerify, domain.StepEndMaint}
	if !slices.Equal(steps, want) {
		t.Errorf("steps = %v, want %v", steps, want)
	}
	if b, _ := a.Backup("p1"); b.Origin != domain.OriginPreRestore {
		t.Errorf("pre-restore backup = %+v", b)
	}
}

// Maintenance ended by hand after a restore completed, before the restore
// ended it itself: the restore is over, the next one may start.
func TestMaintenanceEndedByHandAfterCompletion(t *testing.T) {
	a := fold(t, "crm", g(0, withAuto(restoreRequested("r1", false))), g(1, maintOn("r1")), g(2, verified("r1")),
		g(3, importedInto("r1")), g(4, completedRestore("r1")), g(5, &domain.MaintenanceEnded{Reason: "by hand"}))
	r, _ := a.Restore("r1")
	if a.ActiveRestore() != "" || a.Maintenance().On {
		t.Fatalf("active %q, maintenance %+v", a.ActiveRestore(), a.Maintenance())
	}
	if act := domain.NextRestoreAction(a, &r); act.Kind != domain.ActNone {
		t.Errorf("next action %+v", act)
	}
}

func TestDecideRestoreCommands(t *testing.T) {
	running := []given{g(0, restoreRequested("r1", false)), g(time.Second, maintOn("r1"))}
	req := domain.RequestRestore{App: "crm", SourceApp: "erp", BackupID: "src-1", BackupSHA256: sha64, BackupSizeBytes: 10,
		BackupSchema: 1, BackupSource: "kv", ServerSchema: 1}
	newer := req
	newer.BackupSchema = 2
	withPre := req
	withPre.PreRestoreBackup = true
	runDecide(t, []decideCase{
		{name: "restore requested", when: req, check: func(t *testing.T, ev domain.Event) {
			r := ev.(*domain.RestoreRequested)
			if r.RestoreID != "new" || r.SourceApp != "erp" || r.BackupSHA256 != sha64 {
				t.Fatalf("%+v", r)
			}
		}},
		{name: "a second restore while one runs", given: running, when: req, code: domain.CodeRestoreInProgress},
		{name: "a backup newer than the server", when: newer, code: domain.CodeBackupNewer},
		{name: "a full quota refuses a restore with a pre-restore backup", given: nBackups(10, domain.OriginManual, domain.StatusReady),
			when: withPre, code: domain.CodeQuotaExceeded},
		{name: "a full quota allows a restore without one", given: nBackups(10, domain.OriginManual, domain.StatusReady),
			when: req, check: func(*testing.T, domain.Event) {}},
		{name: "maintenance by hand needs a reason", when: domain.StartMaintenance{App: "crm"}, code: domain.CodeInvalidArgument},
		{name: "maintenance by hand", when: domain.StartMaintenance{App: "crm", Reason: "upgrade"},
			want: &domain.MaintenanceStarted{Reason: "upgrade"}},
		{name: "maintenance twice", given: []given{g(0, byHand())}, when: domain.StartMaintenance{App: "crm", Reason: "again"},
			code: domain.CodeAlreadyMaintenance},
		{name: "end without maintenance", when: domain.EndMaintenance{App: "crm"}, code: domain.CodeNotInMaintenance},
		{name: "end while a restore runs", given: running, when: domain.EndMaintenance{App: "crm"}, code: domain.CodeRestoreInProgress},
		{name: "end by hand", given: []given{g(0, byHand())}, when: domain.EndMaintenance{App: "crm", Reason: "done"},
			want: &domain.MaintenanceEnded{Reason: "done"}},
		{name: "the restore ends what it was not asked to", given: append(running, g(2*time.Second, verified("r1")),
			g(3*time.Second, importedInto("r1")), g(4*time.Second, completedRestore("r1"))),
			when: domain.EndMaintenance{App: "crm", RestoreID: "r1"}, code: domain.CodeRestoreInProgress},
		{name: "a pre-restore backup without its restore", when: withOrigin(domain.OriginPreRestore), code: domain.CodeInvalidArgument},
		{name: "a pre-restore backup the restore did not ask for", given: running, when: preRestore("r1"), code: domain.CodeBackupStateConflict},
		{name: "completing before the import", given: running, when: domain.CompleteRestore{App: "crm", RestoreID: "r1", Digest: sha64},
			code: domain.CodeBackupStateConflict},
		{name: "importing before the archive check", given: running, when: domain.RecordImported{App: "crm", RestoreID: "r1"},
			code: domain.CodeBackupStateConflict},
		{name: "the archive check of another digest", given: running,
			when: domain.RecordArchiveVerified{App: "crm", RestoreID: "r1", SHA256: "ab"}, code: domain.CodeBackupStateConflict},
		{name: "failing a restore names the step", given: running,
			when: domain.FailRestore{App: "crm", RestoreID: "r1", Step: domain.StepImport, Reason: "disk full"},
			want: &domain.RestoreFailed{RestoreID: "r1", Step: domain.StepImport, Reason: "disk full"}},
		{name: "failing a restore that is over", given: append(running, g(2*time.Second,
			&domain.RestoreFailed{RestoreID: "r1", Step: "import", Reason: "x"})),
			when: domain.FailRestore{App: "crm", RestoreID: "r1", Step: "verify", Reason: "y"}, code: domain.CodeRestoreInProgress},
		{name: "an unknown restore", when: domain.FailRestore{App: "crm", RestoreID: "nope"}, code: domain.CodeNotFound},
	})
}
