package test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// The list and the state of an app as they were at a time, folded from
// its events: a deleted backup comes back, a later one is not there yet,
// a rename is undone.
func TestTimeTravel(t *testing.T) {
	clock := &movableClock{}
	n := startNodeWith(t, t.TempDir(), noMinInterval, func(h *daemon.TestHooks) { h.Clock = clock })
	n.putConfig("crm", "app.json", `{"v":1}`)
	base := time.Now().UTC().Truncate(time.Second)
	at := func(h int) time.Time { return base.Add(time.Duration(h) * time.Hour) }
	clock.set(time.Until(at(1)))
	first := n.waitStatus("crm", n.createBackup("crm", map[string]any{"name": "first"}).ID, 20*time.Second, domain.StatusReady)
	clock.set(time.Until(at(2)))
	second := n.waitStatus("crm", n.createBackup("crm", map[string]any{"name": "second"}).ID, 20*time.Second, domain.StatusReady)
	clock.set(time.Until(at(3)))
	n.must(http.StatusNoContent, "DELETE", "/v1/apps/crm/backups/"+first.ID, nil)
	clock.set(time.Until(at(4)))
	n.must(http.StatusOK, "PATCH", "/v1/apps/crm/backups/"+second.ID, map[string]any{"name": "renamed"})

	listAt := func(when time.Time) []projections.BackupView {
		t.Helper()
		var l projections.BackupList
		n.must(http.StatusOK, "GET", "/v1/apps/crm/backups?as_of="+url.QueryEscape(when.Format(time.RFC3339Nano)), nil).json(t, &l)
		return l.Backups
	}
	names := func(l []projections.BackupView) []string {
		var out []string
		for _, b := range l {
			out = append(out, b.Name+"/"+b.Status)
		}
		return out
	}
	for _, c := range []struct {
		when time.Time
		want []string
	}{
		{base, nil},
		{at(1).Add(30 * time.Minute), []string{"first/ready"}},
		{at(2).Add(30 * time.Minute), []string{"first/ready", "second/ready"}},
		{at(3).Add(30 * time.Minute), []string{"second/ready"}},
		{at(5), []string{"renamed/ready"}},
	} {
		if got := names(listAt(c.when)); !slices.Equal(got, c.want) {
			t.Errorf("as of %s: %v, want %v", c.when, got, c.want)
		}
	}
	var app projections.AppView
	n.must(http.StatusOK, "GET", "/v1/apps/crm?as_of="+url.QueryEscape(at(2).Add(30*time.Minute).Format(time.RFC3339)), nil).json(t, &app)
	if app.BackupCount != 2 || app.ByStatus["ready"] != 2 || app.QuotaUsed != 2 {
		t.Errorf("app as of hour 2: %+v", app)
	}
	var now projections.AppView
	n.must(http.StatusOK, "GET", "/v1/apps/crm", nil).json(t, &now)
	if now.BackupCount != 1 {
		t.Errorf("app now: %+v", now)
	}
	var p problem
	n.must(http.StatusBadRequest, "GET", "/v1/apps/crm/backups?as_of=yesterday", nil).json(t, &p)
	if p.Code != domain.CodeInvalidArgument {
		t.Errorf("bad as_of: %+v", p)
	}
	// The same over NATS.
	var overNATS projections.BackupList
	resp := n.request("ledger.api.backups.list", map[string]any{"app": "crm", "as_of": at(2).Add(30 * time.Minute)}, token)
	if err := json.Unmarshal(resp.Data, &overNATS); err != nil || len(overNATS.Backups) != 2 {
		t.Errorf("backups.list as of hour 2 over NATS: %s", resp.Data)
	}
	var appNATS projections.AppView
	resp = n.request("ledger.api.apps.get", map[string]any{"app": "crm", "as_of": at(3).Add(30 * time.Minute)}, token)
	if err := json.Unmarshal(resp.Data, &appNATS); err != nil || appNATS.BackupCount != 1 {
		t.Errorf("apps.get as of hour 3 over NATS: %s", resp.Data)
	}
	// A registered app without events had no backups at any time; an
	// unregistered one does not exist.
	n.must(http.StatusNotFound, "GET", "/v1/apps/never-used/backups?as_of="+url.QueryEscape(at(5).Format(time.RFC3339)), nil)
	n.ensureApp("never-used")
	var l projections.BackupList
	n.must(http.StatusOK, "GET", "/v1/apps/never-used/backups?as_of="+url.QueryEscape(at(5).Format(time.RFC3339)), nil).json(t, &l)
	if len(l.Backups) != 0 {
		t.Errorf("never-used as of hour 5: %+v", l)
	}
}
