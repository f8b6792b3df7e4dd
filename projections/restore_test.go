package projections_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

func strp(s string) *string { return &s }

func timep(t time.Time) *time.Time { return &t }

func TestRestoreViews(t *testing.T) {
	const sha = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	// A restore of a backup of crm into crm2 that fails at the import; a
	// second one that completes and ends the maintenance.
	failed := []struct {
		actor string
		ev    domain.Event
	}{
		{"carol", &domain.RestoreRequested{RestoreID: "r1", SourceApp: "crm", BackupID: "b1", BackupSHA256: sha,
			BackupSizeBytes: 10, BackupSchema: 1, BackupSource: "kv", PreRestoreBackup: true}},
		{service.RestoreActor, &domain.MaintenanceStarted{Reason: "restore r1", RestoreID: "r1"}},
		{service.RestoreActor, &domain.BackupRequested{BackupID: "pb", Name: "Before restore r1", Origin: domain.OriginPreRestore,
			ExpiresAt: at(60 * 24), RestoreID: "r1"}},
		{service.RestoreActor, &domain.RestorePreBackupReady{RestoreID: "r1", BackupID: "pb"}},
		{service.RestoreActor, &domain.RestoreArchiveVerified{RestoreID: "r1", SHA256: sha}},
		{service.RestoreActor, &domain.RestoreFailed{RestoreID: "r1", Step: domain.StepImport, Reason: "disk full", PreRestoreBackup: "pb"}},
	}
	l := newLedger(t, domain.DefaultRules())
	for i, e := range failed {
		l.emit("crm2", e.actor, at(i), e.ev)
	}

	tests := []struct {
		name string
		got  func() any
		want any
	}{
		{"failed restore", func() any { v, _ := l.s.Restore("crm2", "r1"); return v }, projections.RestoreView{
			ID: "r1", App: "crm2", SourceApp: "crm", BackupID: "b1", Status: "failed", Step: domain.StepImport,
			PreRestoreBackup: true, PreRestoreBackupID: strp("pb"), RequestedBy: "carol", RequestedAt: at(0),
			EndedAt: timep(at(5)), FailedStep: strp(domain.StepImport), Error: strp("disk full"),
			Steps: []projections.RestoreStepView{
				{Step: domain.StepRequested, At: at(0), Outcome: "requested by carol"},
				{Step: domain.StepMaintenance, At: at(1), Outcome: "maintenance started"},
				{Step: domain.StepPreBackup, At: at(3), Outcome: "pre-restore backup pb ready"},
				{Step: domain.StepVerifyArchive, At: at(4), Outcome: "archive matches sha256 " + sha},
				{Step: domain.StepImport, At: at(5), Outcome: "failed: disk full"},
			},
		}},
		{"list", func() any { return len(l.s.Restores("crm2")) }, 1},
		{"list of an app without events", func() any { return l.s.Restores("nothing") }, []projections.RestoreView{}},
		{"maintenance stays on after a failure", func() any { return l.s.App("crm2").Maintenance }, projections.MaintenanceView{
			On: true, Since: timep(at(1)), By: service.RestoreActor, Reason: "restore r1", RestoreID: "r1"}},
		{"no active restore after a failure", func() any { return l.s.App("crm2").ActiveRestore }, ""},
		{"empty app", func() any { a := l.s.App("nothing"); return [2]any{a.Maintenance, a.ActiveRestore} },
			[2]any{projections.MaintenanceView{}, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.got(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}

	if _, err := l.s.Restore("crm2", "nope"); domain.Code(err) != domain.CodeNotFound {
		t.Errorf("unknown restore: %v", err)
	}
	var de *domain.Error
	if _, err := l.s.Restore("nothing", "r1"); !errors.As(err, &de) || de.Code != domain.CodeNotFound {
		t.Errorf("restore of an app without events: %v", err)
	}

	// A running restore is the app's active one; JSON has every field,
	// null where there is nothing yet.
	l.emit("crm2", "carol", at(10), &domain.MaintenanceEnded{Reason: "looked at it"})
	l.emit("crm2", "carol", at(11), &domain.RestoreRequested{RestoreID: "r2", SourceApp: "crm2", BackupID: "pb",
		BackupSHA256: sha, BackupSource: "kv", AutoEndMaintenance: true})
	if a := l.s.App("crm2"); a.ActiveRestore != "r2" || a.Maintenance.On {
		t.Errorf("app during the second restore: %+v", a)
	}
	v, err := l.s.Restore("crm2", "r2")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "app", "source_app", "backup_id", "status", "step", "pre_restore_backup",
		"auto_end_maintenance", "pre_restore_backup_id", "requested_by", "requested_at", "ended_at", "digest",
		"failed_step", "error", "steps"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON of a restore lacks %q: %s", k, b)
		}
	}
	if fields["ended_at"] != nil || fields["digest"] != nil || fields["status"] != "running" ||
		fields["step"] != domain.StepRequested || fields["requested_at"] != "2026-11-21T10:26:00Z" {
		t.Errorf("JSON of a running restore: %s", b)
	}
}
