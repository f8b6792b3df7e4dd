package test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/natstest"
)

// failingExports makes every export of the apps in fail fail.
type failingExports struct {
	service.Source
	fail map[string]bool
}

func (f failingExports) Export(ctx context.Context, app string, emit func(domain.Item) error) error {
	if f.fail[app] {
		return errors.New("source unavailable (test)")
	}
	return f.Source.Export(ctx, app, emit)
}

// nightlies returns the nightly backups of app, oldest first.
func (n *node) nightlies(app string) []projections.BackupView {
	n.t.Helper()
	var l projections.BackupList
	n.must(http.StatusOK, "GET", "/v1/apps/"+app+"/backups", nil).json(n.t, &l)
	var out []projections.BackupView
	for _, b := range l.Backups {
		if b.Origin == string(domain.OriginNightly) {
			out = append(out, b)
		}
	}
	return out
}

// Three simulated nights, two replicas sweeping at once (one of them
// restarted between nights): exactly three nightly backups, by Nightly.
// The fourth night finds the quota full: it is skipped with an event that
// says why.
func TestNightlyBackupsTwoReplicas(t *testing.T) {
	cluster := onCluster(docsCluster(t, false))
	clock := &movableClock{}
	tune := func(c *daemon.Config) {
		cluster(c)
		c.Rules.MaxBackups = 3
		c.Sweeps.NightlyInterval = time.Hour // the test sweeps
	}
	withClock := func(h *daemon.TestHooks) { h.Clock = clock }
	a := startNodeWith(t, t.TempDir(), tune, withClock)
	b := startNodeWith(t, t.TempDir(), tune, withClock)
	a.putConfig("crm", "app.json", `{"v":1}`)

	// The schedule: every day two hours from now, UTC.
	at := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Minute)
	var sched projections.ScheduleView
	a.must(http.StatusOK, "PUT", "/v1/apps/crm/schedule", map[string]any{"enabled": true, "time": at.Format("15:04"), "time_zone": "UTC"}).json(t, &sched)
	if !sched.Enabled || sched.Default || sched.NextRunAt == nil || !sched.NextRunAt.Equal(at) {
		t.Fatalf("schedule = %+v, want on, next run at %s", sched, at)
	}
	// The app's timer is a message schedule of the server, at its slot in
	// its zone.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		st, err := a.js.Stream(t.Context(), "LEDGER_TIMERS")
		if err != nil {
			return err
		}
		m, err := st.GetLastMsgForSubject(t.Context(), "ledger.timers.nightly.crm")
		if err != nil {
			return err
		}
		if got, want := m.Header.Get("Nats-Schedule"), fmt.Sprintf("0 %d %d * * *", at.Minute(), at.Hour()); got != want ||
			m.Header.Get("Nats-Schedule-Time-Zone") != "UTC" || m.Header.Get("Nats-Schedule-Target") != "ledger.ticks.nightly.crm" {
			return fmt.Errorf("timer %q (%v), want %q in UTC", got, m.Header, want)
		}
		return nil
	})
	// Before the first slot nothing happens.
	if got, err := a.d.NightlyNow(t.Context()); err != nil || got != 0 {
		t.Fatalf("before the first night: %d, %v", got, err)
	}

	sweepBoth := func(x, y *node) int {
		t.Helper()
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			total int
		)
		for _, n := range []*node{x, y} {
			wg.Go(func() {
				got, err := n.d.NightlyNow(t.Context())
				if err != nil {
					t.Errorf("sweep: %v", err)
				}
				mu.Lock()
				total += got
				mu.Unlock()
			})
		}
		wg.Wait()
		return total
	}
	for night := range 3 {
		clock.set(time.Until(at.Add(time.Duration(night)*24*time.Hour)) + time.Minute)
		want := 1
		if night == 1 {
			// A restart between two nights loses nothing and repeats
			// nothing: the restarted replica sweeps as it starts, and
			// may be first.
			b.kill()
			b = startNodeWith(t, t.TempDir(), tune, withClock)
			want = -1
		}
		if got := sweepBoth(a, b); want >= 0 && got != want {
			t.Fatalf("night %d: %d tries recorded by both replicas, want %d", night+1, got, want)
		}
		if got := sweepBoth(b, a); got != 0 {
			t.Fatalf("night %d swept again: %d more", night+1, got)
		}
		nl := a.nightlies("crm")
		if len(nl) != night+1 {
			t.Fatalf("night %d: %d nightly backups", night+1, len(nl))
		}
		a.waitStatus("crm", nl[night].ID, 20*time.Second, domain.StatusReady)
	}
	nl := a.nightlies("crm")
	for i, bk := range nl {
		slot := at.Add(time.Duration(i) * 24 * time.Hour)
		if bk.CreatedBy != domain.NightlyActor || bk.CreatedAt.Before(slot) {
			t.Errorf("nightly %d: by %q at %s, want by Nightly after %s", i, bk.CreatedBy, bk.CreatedAt, slot)
		}
	}

	// Night four: three backups are the quota.
	clock.set(time.Until(at.Add(3*24*time.Hour)) + time.Minute)
	if got := sweepBoth(a, b); got != 1 {
		t.Fatalf("night 4: %d tries recorded, want 1 (skipped)", got)
	}
	if len(a.nightlies("crm")) != 3 {
		t.Fatalf("a nightly backup was made over the quota")
	}
	var skipped []projections.LogEntry
	for _, e := range a.appLog("crm") {
		if e.Event == domain.TypeNightlySkipped {
			skipped = append(skipped, e)
		}
	}
	if len(skipped) != 1 || skipped[0].Actor != domain.NightlyActor {
		t.Fatalf("nightly.skipped log entries: %+v", skipped)
	}
	a.must(http.StatusOK, "GET", "/v1/apps/crm/schedule", nil).json(t, &sched)
	if sched.LastNight != at.Add(3*24*time.Hour).Format("2006-01-02") || sched.LastSkipped == "" {
		t.Errorf("schedule after the skipped night: %+v", sched)
	}
}

// A failed nightly backup is tried twice more; then the night is over.
func TestNightlyBackupRetriedTwice(t *testing.T) {
	clock := &movableClock{}
	n := startNodeWith(t, t.TempDir(), func(c *daemon.Config) { c.Sweeps.NightlyInterval = time.Hour }, func(h *daemon.TestHooks) {
		h.Clock = clock
		h.SourceWrapper = func(s service.Source) service.Source { return failingExports{s, map[string]bool{"flaky": true}} }
	})
	at := time.Now().UTC().Add(time.Hour).Truncate(time.Minute)
	n.ensureApp("flaky")
	n.must(http.StatusOK, "PUT", "/v1/apps/flaky/schedule", map[string]any{"enabled": true, "time": at.Format("15:04")})
	clock.set(time.Until(at) + time.Minute)
	for try := 1; try <= domain.NightlyTries+1; try++ {
		got, err := n.d.NightlyNow(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if try > domain.NightlyTries {
			want = 0
		}
		if got != want {
			t.Fatalf("sweep %d recorded %d tries, want %d", try, got, want)
		}
		nl := n.nightlies("flaky")
		if len(nl) != min(try, domain.NightlyTries) {
			t.Fatalf("sweep %d: %d nightly backups", try, len(nl))
		}
		n.waitStatus("flaky", nl[len(nl)-1].ID, 20*time.Second, domain.StatusFailed)
	}
	for i, b := range n.nightlies("flaky") {
		if b.Status != string(domain.StatusFailed) || b.Error == nil {
			t.Errorf("try %d: %+v", i+1, b)
		}
		if i > 0 && b.Description != fmt.Sprintf("Nightly backup of %s (try %d of %d)", at.Format("2006-01-02"), i+1, domain.NightlyTries) {
			t.Errorf("try %d description %q", i+1, b.Description)
		}
	}
	var p problem
	n.must(http.StatusBadRequest, "PUT", "/v1/apps/flaky/schedule", map[string]any{"enabled": true, "time": "25:00"}).json(t, &p)
	if p.Code != domain.CodeInvalidArgument {
		t.Errorf("bad time: %+v", p)
	}
	n.must(http.StatusBadRequest, "PUT", "/v1/apps/flaky/schedule", map[string]any{"time": "03:00"})
	n.must(http.StatusBadRequest, "PUT", "/v1/apps/flaky/schedule", map[string]any{"enabled": true, "time_zone": "Mars/Base"})
	var sched projections.ScheduleView
	n.must(http.StatusOK, "GET", "/v1/apps/flaky/schedule", nil).json(t, &sched)
	if sched.Time != at.Format("15:04") || sched.TimeZone != "UTC" || sched.LastTry != domain.NightlyTries {
		t.Errorf("schedule after refused changes: %+v", sched)
	}
}
