package domain_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// The expiry policy: given the app's events, when the sweep runs at now,
// then the backups whose expiry has passed are expired, in list order.
func TestDueExpiries(t *testing.T) {
	day := 24 * time.Hour
	noExpiry := requested("b9", domain.OriginManual)
	noExpiry.ExpiresAt = time.Time{}
	cases := []struct {
		name  string
		given []given
		now   time.Time
		want  []domain.ExpireBackup
	}{
		{name: "no backups", now: t0.Add(100 * day)},
		{name: "before its expiry", given: []given{g(0, requested("b1", domain.OriginManual))}, now: t0.Add(60*day - time.Millisecond)},
		{name: "at its expiry", given: []given{g(0, requested("b1", domain.OriginManual))}, now: t0.Add(60 * day),
			want: []domain.ExpireBackup{{App: "crm", BackupID: "b1"}}},
		{name: "any status expires", given: concat(inStatus("b1", 0, domain.OriginManual, domain.StatusFailed),
			inStatus("b2", time.Hour, domain.OriginNightly, domain.StatusReady), inStatus("b3", 2*time.Hour, domain.OriginManual, domain.StatusQueued)),
			now:  t0.Add(61 * day),
			want: []domain.ExpireBackup{{App: "crm", BackupID: "b1"}, {App: "crm", BackupID: "b2"}, {App: "crm", BackupID: "b3"}}},
		{name: "only those due", given: []given{g(0, requested("b1", domain.OriginManual)), g(0, noExpiry),
			g(0, &domain.BackupRequested{BackupID: "b2", Name: "n", Origin: domain.OriginManual, ExpiresAt: t0.Add(90 * day)})},
			now: t0.Add(61 * day), want: []domain.ExpireBackup{{App: "crm", BackupID: "b1"}}},
		{name: "deleted or expired already", given: []given{g(0, requested("b1", domain.OriginManual)), g(time.Hour, deleted("b1")),
			g(0, requested("b2", domain.OriginManual)), g(60*day, &domain.BackupExpired{BackupID: "b2"})}, now: t0.Add(61 * day)},
		// The policy does not look at restores: the decision refuses a
		// backup in use (TestDecideExpire) and a later sweep expires it.
		{name: "in use by a restore is still due", given: []given{g(0, requested("b1", domain.OriginManual)),
			g(time.Hour, &domain.RestoreRequested{RestoreID: "r1", SourceApp: "crm", BackupID: "b1"})},
			now: t0.Add(61 * day), want: []domain.ExpireBackup{{App: "crm", BackupID: "b1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := domain.DueExpiries(fold(t, "crm", tc.given...), tc.now)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("DueExpiries = %v, want %v", got, tc.want)
			}
		})
	}
}

// nightlyRequested is the backup of try of night.
func nightlyRequested(id, night string, try int) *domain.BackupRequested {
	return &domain.BackupRequested{BackupID: id, Name: "nightly " + night, Origin: domain.OriginNightly,
		ExpiresAt: t0.Add(60 * 24 * time.Hour), Night: night, Try: try}
}

// The nightly policy: given the app's events and the default schedule,
// when the sweep runs at now, then at most one try is due.
func TestDueNightly(t *testing.T) {
	on := domain.Schedule{Enabled: true, Time: "02:00", TimeZone: "UTC"}
	off := domain.Schedule{Time: "02:00", TimeZone: "UTC"}
	at := func(day, hh, mm int) time.Time { return time.Date(2026, 11, day, hh, mm, 0, 0, time.UTC) }
	since := func(tm time.Time) time.Duration { return tm.Sub(t0) } // t0 is 2026-11-21 10:15
	first := g(0, requested("b0", domain.OriginManual))
	cases := []struct {
		name  string
		given []given
		def   domain.Schedule
		now   time.Time
		want  []domain.RequestNightly
	}{
		{name: "default schedule off", given: []given{first}, def: off, now: at(23, 10, 15)},
		{name: "latest night due", given: []given{first}, def: on, now: at(23, 10, 15),
			want: []domain.RequestNightly{{App: "crm", Night: "2026-11-23", Try: 1}}},
		{name: "at the slot", given: []given{first}, def: on, now: at(22, 2, 0),
			want: []domain.RequestNightly{{App: "crm", Night: "2026-11-22", Try: 1}}},
		{name: "app made after the slot waits for the next", given: []given{first}, def: on, now: at(21, 11, 0)},
		{name: "after a downtime only the latest night", given: []given{first, g(since(at(22, 2, 0)), nightlyRequested("n1", "2026-11-22", 1))},
			def: on, now: at(26, 3, 0), want: []domain.RequestNightly{{App: "crm", Night: "2026-11-26", Try: 1}}},
		{name: "night handled already", given: []given{first, g(since(at(23, 2, 0)), nightlyRequested("n1", "2026-11-23", 1))},
			def: on, now: at(23, 10, 0)},
		{name: "a queued try is waited for", given: []given{first, g(since(at(23, 2, 0)), nightlyRequested("n1", "2026-11-23", 1))},
			def: on, now: at(23, 23, 0)},
		{name: "a failed try is tried again", given: []given{first, g(since(at(23, 2, 0)), nightlyRequested("n1", "2026-11-23", 1)),
			g(since(at(23, 2, 5)), failed("n1"))}, def: on, now: at(23, 2, 6),
			want: []domain.RequestNightly{{App: "crm", Night: "2026-11-23", Try: 2}}},
		{name: "a failed try is retried even with the schedule off", given: []given{first,
			g(since(at(23, 2, 0)), nightlyRequested("n1", "2026-11-23", 2)), g(since(at(23, 2, 5)), failed("n1")),
			g(since(at(23, 2, 6)), &domain.ScheduleSet{Time: "02:00", TimeZone: "UTC"})}, def: on, now: at(23, 3, 0),
			want: []domain.RequestNightly{{App: "crm", Night: "2026-11-23", Try: 3}}},
		{name: "the last try failed: the night is given up", given: []given{first,
			g(since(at(23, 2, 0)), nightlyRequested("n3", "2026-11-23", domain.NightlyTries)), g(since(at(23, 2, 5)), failed("n3"))},
			def: on, now: at(23, 3, 0)},
		{name: "the last try failed: the next night comes", given: []given{first,
			g(since(at(23, 2, 0)), nightlyRequested("n3", "2026-11-23", domain.NightlyTries)), g(since(at(23, 2, 5)), failed("n3"))},
			def: on, now: at(24, 2, 0), want: []domain.RequestNightly{{App: "crm", Night: "2026-11-24", Try: 1}}},
		{name: "a skipped night is not tried again", given: []given{first,
			g(since(at(23, 2, 0)), &domain.NightlySkipped{Night: "2026-11-23", Try: 1, Code: domain.CodeQuotaExceeded})},
			def: on, now: at(23, 9, 0)},
		{name: "the app's own schedule overrides the default", given: []given{first,
			g(time.Hour, &domain.ScheduleSet{Time: "02:00", TimeZone: "UTC"})}, def: on, now: at(23, 10, 15)},
		{name: "a schedule set after the slot starts the next night", given: []given{first,
			g(since(at(23, 10, 15)), &domain.ScheduleSet{Enabled: true, Time: "02:00", TimeZone: "UTC"})}, def: off, now: at(23, 11, 0)},
		{name: "a schedule set before the slot", given: []given{first,
			g(since(at(23, 10, 15)), &domain.ScheduleSet{Enabled: true, Time: "02:00", TimeZone: "UTC"})}, def: off, now: at(24, 2, 0),
			want: []domain.RequestNightly{{App: "crm", Night: "2026-11-24", Try: 1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := domain.DueNightly(fold(t, "crm", tc.given...), tc.def, tc.now)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("DueNightly = %v, want %v", got, tc.want)
			}
		})
	}
}

// The orphan policy: given the apps' events and the objects listed at
// listed, then which objects are removed (and why), left young or left in
// place, and which ready backups seem to have lost their archive.
func TestPlanOrphans(t *testing.T) {
	listed := t0.Add(10 * time.Hour)
	grace := time.Hour
	old, young := t0.Add(8*time.Hour), t0.Add(9*time.Hour+30*time.Minute)
	obj := func(id, app string, at time.Time) domain.ArchiveObject {
		return domain.ArchiveObject{BackupID: id, App: app, SizeBytes: 10, StoredAt: at}
	}
	remove := func(id, app, reason string) domain.RemoveOrphan {
		return domain.RemoveOrphan{App: app, BackupID: id, SizeBytes: 10, StoredAt: old, Reason: reason}
	}
	cases := []struct {
		name    string
		given   []given // of app crm
		objects []domain.ArchiveObject
		want    domain.OrphanPlan
	}{
		{name: "nothing stored, nothing known"},
		{name: "live backups own their objects", given: concat(inStatus("b1", 0, domain.OriginManual, domain.StatusReady),
			inStatus("b2", 0, domain.OriginManual, domain.StatusRunning), inStatus("b3", 0, domain.OriginManual, domain.StatusQueued)),
			objects: []domain.ArchiveObject{obj("b1", "crm", old), obj("b2", "crm", old), obj("b3", "crm", old)}},
		{name: "no backup of this id", objects: []domain.ArchiveObject{obj("x1", "erp", old)},
			want: domain.OrphanPlan{Remove: []domain.RemoveOrphan{remove("x1", "erp", "no backup of this id is in the ledger")}}},
		{name: "its backup failed", given: inStatus("b1", 0, domain.OriginManual, domain.StatusFailed),
			objects: []domain.ArchiveObject{obj("b1", "other", old)},
			want:    domain.OrphanPlan{Remove: []domain.RemoveOrphan{remove("b1", "crm", "its backup failed")}}},
		{name: "its backup was deleted", given: concat(inStatus("b1", 0, domain.OriginManual, domain.StatusReady), []given{g(time.Hour, deleted("b1"))}),
			objects: []domain.ArchiveObject{obj("b1", "", old)},
			want:    domain.OrphanPlan{Remove: []domain.RemoveOrphan{remove("b1", "crm", "its backup was deleted or expired")}}},
		{name: "younger than the grace period", objects: []domain.ArchiveObject{obj("x1", "crm", young), obj("x2", "crm", listed)},
			want: domain.OrphanPlan{Young: 2}},
		{name: "names no valid app", objects: []domain.ArchiveObject{obj("x1", "", old), obj("x2", "Not An App!", old)},
			want: domain.OrphanPlan{NoApp: []domain.ArchiveObject{obj("x1", "", old), obj("x2", "Not An App!", old)}}},
		{name: "ready backups without their object", given: concat(inStatus("b2", 0, domain.OriginManual, domain.StatusReady),
			inStatus("b1", 0, domain.OriginManual, domain.StatusReady)),
			want: domain.OrphanPlan{Missing: []domain.MissingArchive{{App: "crm", BackupID: "b1"}, {App: "crm", BackupID: "b2"}}}},
		{name: "not ready, corrupt already or completed after the listing: not missing", given: concat(
			inStatus("b1", 0, domain.OriginManual, domain.StatusRunning), inStatus("b2", 0, domain.OriginManual, domain.StatusFailed),
			inStatus("b3", 0, domain.OriginManual, domain.StatusReady), []given{g(time.Hour, corrupted("b3"))},
			inStatus("b4", 10*time.Hour, domain.OriginManual, domain.StatusReady))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var owners domain.ArchiveOwners
			owners.Add(fold(t, "crm", tc.given...))
			got := domain.PlanOrphans(&owners, tc.objects, listed, grace)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("PlanOrphans =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// The integrity check's policy: ready backups, not known corrupt, whose
// last check (or completion) is at least a period old, sorted by id.
func TestDueVerifications(t *testing.T) {
	day := 24 * time.Hour
	week := 7 * day
	done := 2 * time.Second // inStatus completes a backup 2s after its request
	cases := []struct {
		name  string
		given []given
		now   time.Time
		want  []string
	}{
		{name: "no backups", now: t0.Add(10 * week)},
		{name: "completed less than a period ago", given: inStatus("b1", 0, domain.OriginManual, domain.StatusReady),
			now: t0.Add(done + week - time.Millisecond)},
		{name: "completed a period ago", given: inStatus("b1", 0, domain.OriginManual, domain.StatusReady),
			now: t0.Add(done + week), want: []string{"b1"}},
		{name: "checked since", given: append(inStatus("b1", 0, domain.OriginManual, domain.StatusReady),
			g(3*day, &domain.BackupVerified{BackupID: "b1", ItemCount: 2})), now: t0.Add(done + week)},
		{name: "only ready ones", given: concat(inStatus("b2", 0, domain.OriginManual, domain.StatusFailed),
			inStatus("b1", 0, domain.OriginManual, domain.StatusReady), inStatus("b3", 0, domain.OriginManual, domain.StatusRunning)),
			now: t0.Add(2 * week), want: []string{"b1"}},
		{name: "sorted", given: concat(inStatus("b2", 0, domain.OriginManual, domain.StatusReady),
			inStatus("b1", time.Hour, domain.OriginNightly, domain.StatusReady)), now: t0.Add(2 * week), want: []string{"b1", "b2"}},
		{name: "corrupt already", given: append(inStatus("b1", 0, domain.OriginManual, domain.StatusReady), g(time.Hour, corrupted("b1"))),
			now: t0.Add(2 * week)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := domain.DueVerifications(fold(t, "crm", tc.given...), tc.now, week)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("DueVerifications = %v, want %v", got, tc.want)
			}
		})
	}
}
