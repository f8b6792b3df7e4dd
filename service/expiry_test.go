package service_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

type appList []string

func (l appList) Apps() []string { return l }

// TestSweeperThrough61Days: backups expire exactly 60 days after they were
// made, their archives go, their log stays; a second replica's sweep
// records nothing more.
func TestSweeperThrough61Days(t *testing.T) {
	s := newFakeStream()
	f := newFakeFold(s, 100)
	f.follow = true
	clock := newClock(t0)
	archives := newFakeArchives()
	rules := domain.DefaultRules()
	rules.MinInterval = 0
	l, err := service.NewLedger(service.LedgerConfig{Rules: rules}, s, f, clock, &fakeIDs{}, archives, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var ids []string
	for i := range 3 {
		clock.Set(t0.Add(time.Duration(i) * 24 * time.Hour))
		res, err := l.Execute(ctx, domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.BackupID)
		archives.objects[res.BackupID] = []byte("zip")
	}
	a := service.NewSweeper(l, f, appList{"crm"}, clock, nil)
	b := service.NewSweeper(l, f, appList{"crm"}, clock, nil)
	for day := 1; day <= 61; day++ {
		clock.Set(t0.Add(time.Duration(day)*24*time.Hour - time.Millisecond))
		if n, err := a.Sweep(ctx); err != nil || (day < 60 && n != 0) {
			t.Fatalf("day %d minus 1ms: %d expired, %v", day, n, err)
		}
		clock.Set(t0.Add(time.Duration(day) * 24 * time.Hour))
		n, err := a.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if day >= 60 && day <= 62 {
			want = 1 // the backup made on day day-60
		}
		if n != want {
			t.Fatalf("day %d: %d expired, want %d", day, n, want)
		}
		if n2, err := b.Sweep(ctx); err != nil || n2 != 0 {
			t.Fatalf("day %d: the other replica expired %d (%v)", day, n2, err)
		}
	}
	var left []string
	f.ReadApp("crm", func(a *domain.App) {
		for _, b := range a.Backups() {
			left = append(left, b.ID)
		}
	})
	if !slices.Equal(left, ids[2:]) {
		t.Errorf("backups left after 61 days = %v, want %v", left, ids[2:])
	}
	if got := archives.deleted(); !slices.Equal(got, ids[:2]) {
		t.Errorf("archives deleted = %v, want %v", got, ids[:2])
	}
	if c := strings.Count(strings.Join(s.types("crm"), " "), domain.TypeBackupExpired); c != 2 {
		t.Errorf("%d backup.expired events, want 2", c)
	}
	for _, env := range s.envelopes(t, "crm") {
		if env.Type == domain.TypeBackupExpired && env.Actor != domain.ExpiryActor {
			t.Errorf("expired by %q", env.Actor)
		}
	}
}

// Retention is a dry run: when each backup expires and why, and which rule
// refuses the next backup; it changes nothing.
func TestRetentionExplains(t *testing.T) {
	s := newFakeStream()
	f := newFakeFold(s, 100)
	f.follow = true
	clock := newClock(t0)
	rules := domain.DefaultRules()
	rules.MaxBackups = 2
	l, err := service.NewLedger(service.LedgerConfig{Rules: rules}, s, f, clock, &fakeIDs{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Retention("crm")
	if err != nil || !r.Next.Allowed || len(r.Backups) != 0 {
		t.Fatalf("empty app: %+v, %v", r, err)
	}
	if _, err := l.Execute(t.Context(), domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	r, _ = l.Retention("crm")
	if r.Next.Allowed || r.Next.Code != domain.CodeTooSoon || r.Next.RetryAfter != 4*time.Minute {
		t.Errorf("next after a minute: %+v", r.Next)
	}
	if len(r.Backups) != 1 || !r.Backups[0].ExpiresAt.Equal(t0.Add(60*24*time.Hour)) || !strings.Contains(r.Backups[0].Reason, "60 days") {
		t.Errorf("backups: %+v", r.Backups)
	}
	clock.Advance(10 * time.Minute)
	if _, err := l.Execute(t.Context(), domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	n := s.len()
	r, _ = l.Retention("crm")
	if r.Next.Code != domain.CodeQuotaExceeded || r.QuotaUsed != 2 || s.len() != n {
		t.Errorf("full quota: %+v (%d new events)", r, s.len()-n)
	}
	if _, err := l.Retention("Bad!"); domain.Code(err) != domain.CodeInvalidArgument {
		t.Errorf("bad app: %v", err)
	}
}
