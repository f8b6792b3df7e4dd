package prom_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backupledger/backupledger/adapters/prom"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// t0 is when the first app's backup was made.
var t0 = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// ledgerOf folds, into a real projection, one ready backup per app, the
// i-th made i hours after t0.
func ledgerOf(t *testing.T, apps ...string) *projections.Store {
	t.Helper()
	store := projections.New(domain.DefaultRules(), projections.Options{})
	seq := uint64(0)
	for i, app := range apps {
		at := t0.Add(time.Duration(i) * time.Hour)
		id := fmt.Sprintf("01JDAX3N3Z8Q1V0G5Y9F6K2M%02d", i)
		for _, ev := range []domain.Event{
			&domain.BackupRequested{BackupID: id, Name: "n", Origin: domain.OriginManual, ExpiresAt: at.Add(time.Hour)},
			&domain.BackupStarted{BackupID: id, Attempt: 1},
			&domain.BackupCompleted{BackupID: id, SizeBytes: 10, SHA256: strings.Repeat("a", 64), ItemCount: 1},
		} {
			data, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			seq++
			body, err := json.Marshal(domain.Envelope{ID: fmt.Sprint(seq), Type: ev.EventType(), Version: 1, App: app, Time: at,
				Actor: "alice", CommandID: fmt.Sprint(seq), Data: data})
			if err != nil {
				t.Fatal(err)
			}
			store.Apply(domain.StoredMessage{Seq: seq, Token: app, Body: body})
		}
	}
	return store
}

// samples gathers reg as "name{l=v,...} value" lines of the families
// named, sorted.
func samples(t *testing.T, reg *prometheus.Registry, names ...string) []string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		want := false
		for _, n := range names {
			want = want || f.GetName() == n
		}
		if !want {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out = append(out, fmt.Sprintf("%s{%s} %g", f.GetName(), strings.Join(labels, ","), v))
		}
	}
	sort.Strings(out)
	return out
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The per-app metric keeps the most recent apps up to MaxApps and counts
// the rest; the ledger gauges describe the whole ledger.
func TestPerAppMetricIsBounded(t *testing.T) {
	store := ledgerOf(t, "a", "b", "c")
	reg := prometheus.NewRegistry()
	// Nightly backups are on by default on this server.
	on := domain.Schedule{Enabled: true, Time: "02:00", TimeZone: "UTC"}
	if _, err := prom.New(reg, store, prom.Config{MaxApps: 2, Nightly: on}); err != nil {
		t.Fatal(err)
	}
	equal(t, samples(t, reg, "backupledger_last_successful_backup_timestamp_seconds", "backupledger_metrics_apps_omitted", "backupledger_backups",
		"backupledger_nightly_enabled"), []string{
		"backupledger_backups{status=failed} 0",
		"backupledger_backups{status=queued} 0",
		"backupledger_backups{status=ready} 3",
		"backupledger_backups{status=running} 0",
		fmt.Sprintf("backupledger_last_successful_backup_timestamp_seconds{app=b} %g", float64(t0.Add(time.Hour).Unix())),
		fmt.Sprintf("backupledger_last_successful_backup_timestamp_seconds{app=c} %g", float64(t0.Add(2*time.Hour).Unix())),
		"backupledger_metrics_apps_omitted{} 1",
		"backupledger_nightly_enabled{app=b} 1",
		"backupledger_nightly_enabled{app=c} 1",
	})
}

// The observer counts outcomes, conflicts and, for a finished backup, its
// origin from the projection.
func TestObserver(t *testing.T) {
	store := ledgerOf(t, "a")
	reg := prometheus.NewRegistry()
	m, err := prom.New(reg, store, prom.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{nil, domain.Errorf(domain.CodeTooSoon, "later"), fmt.Errorf("boom")} {
		m.Executed("backup.request", domain.Outcome(domain.Result{}, err), time.Millisecond)
	}
	m.Executed("backup.request", domain.Outcome(domain.Result{Duplicate: true}, nil), time.Millisecond)
	m.Conflict(true)
	m.Conflict(false)
	m.Appended("a", &domain.BackupFailed{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M00", Reason: "x"})
	equal(t, samples(t, reg, "backupledger_commands_total", "backupledger_append_conflicts_total", "backupledger_append_retries_total",
		"backupledger_events_appended_total"), []string{
		"backupledger_append_conflicts_total{} 2",
		"backupledger_append_retries_total{} 1",
		"backupledger_commands_total{command=backup.request,result=duplicate} 1",
		"backupledger_commands_total{command=backup.request,result=error} 1",
		"backupledger_commands_total{command=backup.request,result=ok} 1",
		"backupledger_commands_total{command=backup.request,result=refused} 1",
		"backupledger_events_appended_total{type=backup.failed} 1",
	})
	got := samples(t, reg, "backupledger_backups_finished_total")
	if !strings.Contains(strings.Join(got, "\n"), "backupledger_backups_finished_total{origin=manual,result=failed} 1") {
		t.Errorf("finished backups: %v", got)
	}
}
