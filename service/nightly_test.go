package service_test

import (
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

func TestScheduleValidate(t *testing.T) {
	for _, s := range []domain.Schedule{
		{Time: "02:00", TimeZone: "UTC"}, {Time: "23:59", TimeZone: "Europe/Berlin"}, {Time: "00:00", TimeZone: "America/New_York"},
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	for _, s := range []domain.Schedule{
		{Time: "2:00", TimeZone: "UTC"}, {Time: "24:00", TimeZone: "UTC"}, {Time: "12:60", TimeZone: "UTC"},
		{Time: "", TimeZone: "UTC"}, {Time: "ab:cd", TimeZone: "UTC"}, {Time: "02:00", TimeZone: ""},
		{Time: "02:00", TimeZone: "Mars/Olympus"}, {Time: "02:00", TimeZone: "../etc/passwd"}, {Time: "02:00", TimeZone: "/etc/localtime"},
	} {
		if err := s.Validate(); domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("%+v: err = %v, want invalid_argument", s, err)
		}
	}
}

// LastNight and NextRun follow the local clock of the zone, also across a
// change of daylight saving time.
func TestScheduleSlots(t *testing.T) {
	berlin := domain.Schedule{Enabled: true, Time: "02:30", TimeZone: "Europe/Berlin"}
	cases := []struct {
		now       string
		night     string
		slot, nxt string
	}{
		// 02:30 in Berlin is 01:30 UTC in winter.
		{"2026-11-22T01:29:59Z", "2026-11-21", "2026-11-21T01:30:00Z", "2026-11-22T01:30:00Z"},
		{"2026-11-22T01:30:00Z", "2026-11-22", "2026-11-22T01:30:00Z", "2026-11-23T01:30:00Z"},
		// Summer time begins on 2027-03-28: 02:30 does not exist that day
		// and Go moves it to 03:30 CEST (01:30 UTC); the day after, 02:30
		// CEST is 00:30 UTC.
		{"2027-03-28T12:00:00Z", "2027-03-28", "2027-03-28T01:30:00Z", "2027-03-29T00:30:00Z"},
	}
	for _, c := range cases {
		now, _ := time.Parse(time.RFC3339, c.now)
		night, slot, err := berlin.LastNight(now)
		if err != nil {
			t.Fatal(err)
		}
		next, err := berlin.NextRun(now)
		if err != nil {
			t.Fatal(err)
		}
		if night != c.night || slot.UTC().Format(time.RFC3339) != c.slot || next.UTC().Format(time.RFC3339) != c.nxt {
			t.Errorf("at %s: night %s slot %s next %s, want %s %s %s", c.now, night, slot.UTC().Format(time.RFC3339),
				next.UTC().Format(time.RFC3339), c.night, c.slot, c.nxt)
		}
	}
}

// nightlyRig is a ledger whose default schedule is on at 02:00 UTC.
type nightlyRig struct {
	s      *fakeStream
	f      *fakeFold
	clock  *fakeClock
	ledger *service.Ledger
}

func newNightlyRig(t *testing.T, maxBackups int) *nightlyRig {
	t.Helper()
	r := &nightlyRig{s: newFakeStream(), clock: newClock(t0)}
	r.f = newFakeFold(r.s, 100)
	r.f.follow = true
	rules := domain.DefaultRules()
	rules.MaxBackups = maxBackups
	var err error
	r.ledger, err = service.NewLedger(service.LedgerConfig{Rules: rules}, r.s, r.f, r.clock, &fakeIDs{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *nightlyRig) nightlies(t *testing.T, app string) []domain.Backup {
	t.Helper()
	var out []domain.Backup
	r.f.ReadApp(app, func(a *domain.App) {
		for _, b := range a.Backups() {
			if b.Origin == domain.OriginNightly {
				out = append(out, b)
			}
		}
	})
	return out
}

// Three nights, two replicas sweeping every ten minutes: exactly three
// nightly backups, made by Nightly, none before its slot.
func TestNightlyThreeNightsTwoReplicas(t *testing.T) {
	r := newNightlyRig(t, 10)
	ctx := t.Context()
	// t0 is 2026-11-21 10:15 UTC: the app exists from then; its schedule
	// is set at once.
	if _, err := r.ledger.Execute(ctx, domain.SetSchedule{App: "crm", Schedule: domain.Schedule{Enabled: true, Time: "02:00", TimeZone: "UTC"}},
		domain.Meta{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	a := service.NewNightly(r.ledger, r.f, appList{"crm"}, r.clock, nil)
	b := service.NewNightly(r.ledger, r.f, appList{"crm"}, r.clock, nil)
	total := 0
	for step := time.Duration(0); step <= 3*24*time.Hour; step += 10 * time.Minute {
		r.clock.Set(t0.Add(step))
		for _, n := range []*service.Nightly{a, b} {
			got, err := n.Sweep(ctx)
			if err != nil {
				t.Fatalf("at %s: %v", r.clock.Now(), err)
			}
			total += got
		}
		// Complete every queued nightly so that the quota never fills.
		for _, bk := range r.nightlies(t, "crm") {
			if bk.Status == domain.StatusQueued {
				mustComplete(t, r.ledger, "crm", bk.ID)
			}
		}
	}
	got := r.nightlies(t, "crm")
	if len(got) != 3 || total != 3 {
		t.Fatalf("%d nightly backups (%d recorded by the sweeps), want 3", len(got), total)
	}
	for i, bk := range got {
		slot := time.Date(2026, 11, 22+i, 2, 0, 0, 0, time.UTC)
		if bk.CreatedBy != domain.NightlyActor || bk.CreatedAt.Before(slot) || bk.CreatedAt.After(slot.Add(10*time.Minute)) {
			t.Errorf("nightly %d: by %q at %s, want by Nightly within 10 minutes after %s", i, bk.CreatedBy, bk.CreatedAt, slot)
		}
		if !strings.Contains(bk.Description, slot.Format("2006-01-02")) {
			t.Errorf("nightly %d description %q does not name its night", i, bk.Description)
		}
	}
}

func mustComplete(t *testing.T, l *service.Ledger, app, id string) {
	t.Helper()
	m := domain.Meta{Actor: "system:worker"}
	if _, err := l.Execute(t.Context(), domain.StartBackup{App: app, BackupID: id, Attempt: 1}, m); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Execute(t.Context(), domain.CompleteBackup{App: app, BackupID: id, Attempt: 1, SHA256: strings.Repeat("a", 64)}, m); err != nil {
		t.Fatal(err)
	}
}

func mustFail(t *testing.T, l *service.Ledger, app, id string) {
	t.Helper()
	if _, err := l.Execute(t.Context(), domain.FailBackup{App: app, BackupID: id, Reason: "source unavailable"}, domain.Meta{Actor: "system:worker"}); err != nil {
		t.Fatal(err)
	}
}

// A schedule set after tonight's slot starts with tomorrow's night; the
// default schedule (off) makes nothing.
func TestNightlyStartsWithTheNextSlot(t *testing.T) {
	r := newNightlyRig(t, 10)
	ctx := t.Context()
	n := service.NewNightly(r.ledger, r.f, appList{"crm"}, r.clock, nil)
	if _, err := r.ledger.Execute(ctx, domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(t0.Add(48 * time.Hour))
	if got, err := n.Sweep(ctx); err != nil || got != 0 {
		t.Fatalf("sweep with the default schedule (off): %d, %v", got, err)
	}
	// 2026-11-23 10:15: the schedule is set for 02:00, whose slot passed.
	if _, err := r.ledger.Execute(ctx, domain.SetSchedule{App: "crm", Schedule: domain.Schedule{Enabled: true, Time: "02:00", TimeZone: "UTC"}},
		domain.Meta{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	if got, err := n.Sweep(ctx); err != nil || got != 0 {
		t.Fatalf("sweep right after the schedule was set: %d, %v; want nothing before tomorrow", got, err)
	}
	r.clock.Set(time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC))
	if got, err := n.Sweep(ctx); err != nil || got != 1 {
		t.Fatalf("sweep at the next slot: %d, %v; want 1", got, err)
	}
	// A direct request for an old night or a night not yet due is refused.
	for _, night := range []string{"2026-11-23", "2026-11-24", "2026-11-25"} {
		_, err := r.ledger.Execute(ctx, domain.RequestNightly{App: "crm", Night: night, Try: 1},
			domain.Meta{Actor: domain.NightlyActor, CommandID: "x" + night})
		if domain.Code(err) != domain.CodeBackupStateConflict {
			t.Errorf("night %s: err = %v, want backup_state_conflict", night, err)
		}
	}
}

// A failed nightly backup is tried twice more, then the night is given up.
func TestNightlyRetriesTwice(t *testing.T) {
	r := newNightlyRig(t, 10)
	ctx := t.Context()
	if _, err := r.ledger.Execute(ctx, domain.SetSchedule{App: "crm", Schedule: domain.Schedule{Enabled: true, Time: "02:00", TimeZone: "UTC"}},
		domain.Meta{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	n := service.NewNightly(r.ledger, r.f, appList{"crm"}, r.clock, nil)
	r.clock.Set(time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC))
	for try := 1; try <= 4; try++ {
		got, err := n.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[try <= domain.NightlyTries]; got != want {
			t.Fatalf("sweep %d recorded %d, want %d", try, got, want)
		}
		// A second sweep before the failure does nothing more.
		if got, _ := n.Sweep(ctx); got != 0 {
			t.Fatalf("sweep %d again recorded %d", try, got)
		}
		for _, b := range r.nightlies(t, "crm") {
			if b.Status == domain.StatusQueued {
				mustFail(t, r.ledger, "crm", b.ID)
			}
		}
	}
	got := r.nightlies(t, "crm")
	if len(got) != 3 {
		t.Fatalf("%d nightly backups, want 3 (one try and two retries)", len(got))
	}
	var st domain.NightState
	r.f.ReadApp("crm", func(a *domain.App) { st = a.Nightly() })
	if st.Night != "2026-11-22" || st.Try != 3 {
		t.Errorf("nightly state %+v, want night 2026-11-22 try 3", st)
	}
}

// A full quota skips the night with an event that says why; the next
// night is tried again.
func TestNightlySkippedOnFullQuota(t *testing.T) {
	r := newNightlyRig(t, 1)
	ctx := t.Context()
	if _, err := r.ledger.Execute(ctx, domain.SetSchedule{App: "crm", Schedule: domain.Schedule{Enabled: true, Time: "02:00", TimeZone: "UTC"}},
		domain.Meta{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	res, err := r.ledger.Execute(ctx, domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	n := service.NewNightly(r.ledger, r.f, appList{"crm"}, r.clock, nil)
	r.clock.Set(time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC))
	if got, err := n.Sweep(ctx); err != nil || got != 1 {
		t.Fatalf("sweep: %d, %v", got, err)
	}
	if got, _ := n.Sweep(ctx); got != 0 {
		t.Fatalf("a skipped night was recorded again")
	}
	envs := r.s.envelopes(t, "crm")
	last := envs[len(envs)-1]
	if last.Type != domain.TypeNightlySkipped || last.Actor != domain.NightlyActor ||
		!strings.Contains(string(last.Data), `"code":"backup_quota_exceeded"`) || !strings.Contains(string(last.Data), `"night":"2026-11-22"`) {
		t.Fatalf("last event %s by %s: %s", last.Type, last.Actor, last.Data)
	}
	if len(r.nightlies(t, "crm")) != 0 {
		t.Fatal("a nightly backup was made over the quota")
	}
	// The quota frees up: the next night is made.
	if _, err := r.ledger.Execute(ctx, domain.DeleteBackup{App: "crm", BackupID: res.BackupID}, domain.Meta{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC))
	if got, err := n.Sweep(ctx); err != nil || got != 1 || len(r.nightlies(t, "crm")) != 1 {
		t.Fatalf("next night: %d, %v, %d nightlies", got, err, len(r.nightlies(t, "crm")))
	}
}

// Nightly backups are exempt from the interval of manual backups and
// count in the quota.
func TestNightlyExemptFromIntervalCountsInQuota(t *testing.T) {
	r := newNightlyRig(t, 2)
	ctx := t.Context()
	if _, err := r.ledger.Execute(ctx, domain.SetSchedule{App: "crm", Schedule: domain.Schedule{Enabled: true, Time: "02:00", TimeZone: "UTC"}},
		domain.Meta{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(time.Date(2026, 11, 22, 1, 59, 0, 0, time.UTC))
	if _, err := r.ledger.Execute(ctx, domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC))
	n := service.NewNightly(r.ledger, r.f, appList{"crm"}, r.clock, nil)
	if got, err := n.Sweep(ctx); err != nil || got != 1 || len(r.nightlies(t, "crm")) != 1 {
		t.Fatalf("nightly one minute after a manual backup: %d, %v", got, err)
	}
	_, err := r.ledger.Execute(ctx, domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "bob"})
	if domain.Code(err) != domain.CodeQuotaExceeded {
		t.Fatalf("third backup: err = %v, want backup_quota_exceeded (the nightly counts)", err)
	}
}

func TestSetScheduleRefusesBadInput(t *testing.T) {
	r := newNightlyRig(t, 10)
	before := r.s.len()
	_, err := r.ledger.Execute(t.Context(), domain.SetSchedule{App: "crm", Schedule: domain.Schedule{Enabled: true, Time: "25:00", TimeZone: "UTC"}},
		domain.Meta{Actor: "alice"})
	if domain.Code(err) != domain.CodeInvalidArgument || r.s.len() != before {
		t.Fatalf("err = %v, events %d → %d", err, before, r.s.len())
	}
}
