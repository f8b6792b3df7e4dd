package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/projections"
)

var restoreT0 = time.Date(2026, 8, 31, 12, 2, 0, 0, time.UTC)

func strPtr(s string) *string { return &s }

// steps makes restore steps a second apart from restoreT0.
func steps(pairs ...string) []projections.RestoreStepView {
	var out []projections.RestoreStepView
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, projections.RestoreStepView{Step: pairs[i], At: restoreT0.Add(time.Duration(i/2) * time.Second), Outcome: pairs[i+1]})
	}
	return out
}

func TestStepLine(t *testing.T) {
	for _, tc := range []struct {
		step projections.RestoreStepView
		want string
	}{
		{projections.RestoreStepView{Step: "requested", At: restoreT0, Outcome: "requested by ada"},
			"12:02:00  requested            requested by ada"},
		{projections.RestoreStepView{Step: "import", At: restoreT0.In(time.FixedZone("x", 3600)).Add(time.Second), Outcome: "failed:\nline\x1b[2J"},
			"12:02:01  import               failed: line [2J"},
	} {
		if got := stepLine(tc.step); got != tc.want {
			t.Errorf("stepLine(%+v)\n got %q\nwant %q", tc.step, got, tc.want)
		}
	}
}

func TestRestoreSummary(t *testing.T) {
	base := projections.RestoreView{ID: "R1", App: "crm", SourceApp: "erp", BackupID: "B1"}
	with := func(f func(*projections.RestoreView)) projections.RestoreView {
		v := base
		f(&v)
		return v
	}
	for _, tc := range []struct {
		name          string
		v             projections.RestoreView
		inMaintenance bool
		failed        bool
		want          string
	}{
		{"completed, maintenance ended", with(func(v *projections.RestoreView) {
			v.Status, v.AutoEndMaintenance = "completed", true
		}), false, false, "Restore R1 completed: crm now holds backup B1 of erp."},
		{"completed, maintenance kept", with(func(v *projections.RestoreView) {
			v.Status = "completed"
		}), true, false, "Restore R1 completed: crm now holds backup B1 of erp.\ncrm is still in maintenance; end it with: backupctl maintenance end crm"},
		{"failed with a pre-restore backup", with(func(v *projections.RestoreView) {
			v.Status, v.FailedStep, v.Error, v.PreRestoreBackupID = "failed", strPtr("import"), strPtr("disk\nfull"), strPtr("PB")
		}), true, true, "restore R1 into crm failed at step import: disk full\n" +
			"crm stays in maintenance (end it with: backupctl maintenance end crm)\n" +
			"To roll back to the state before the restore: backupctl restore crm PB"},
		{"failed without, maintenance ended by hand since", with(func(v *projections.RestoreView) {
			v.Status, v.FailedStep, v.Error = "failed", strPtr("verify_archive"), strPtr("archive does not match")
		}), false, true, "restore R1 into crm failed at step verify_archive: archive does not match"},
		{"still running", with(func(v *projections.RestoreView) { v.Status = "running" }), true, false, "Restore R1 is running."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, failed := restoreSummary(tc.v, tc.inMaintenance)
			if got != tc.want || failed != tc.failed {
				t.Errorf("got (%v)\n%s\nwant (%v)\n%s", failed, got, tc.failed, tc.want)
			}
		})
	}
}

func TestMaintenanceText(t *testing.T) {
	since := restoreT0
	for _, tc := range []struct {
		v    projections.AppView
		want string
	}{
		{projections.AppView{App: "crm"}, "App crm is not in maintenance."},
		{projections.AppView{App: "crm", Maintenance: projections.MaintenanceView{On: true, Since: &since, By: "ada", Reason: "upgrade"}},
			"App crm is in maintenance, on since 2026-08-31 12:02:00 UTC, by ada: upgrade."},
		{projections.AppView{App: "crm", Maintenance: projections.MaintenanceView{On: true, Since: &since, By: "system:restore", Reason: "restore R1", RestoreID: "R1"}},
			"App crm is in maintenance, on since 2026-08-31 12:02:00 UTC, by system:restore for restore R1: restore R1."},
	} {
		if got := maintenanceText(tc.v); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

// restoreServer serves a restore of backup B1 of crm into the app target
// whose GETs answer the views of answers one after the other (the last
// one again after that), and records the request body.
type restoreServer struct {
	t      *testing.T
	admin  bool
	target string
	// answers are what GET of the restore answers, in turn.
	answers []projections.RestoreView
	// maintenanceOn is the app's maintenance for restoreOver.
	maintenanceOn bool

	mu   sync.Mutex
	gets int
	body map[string]any
}

func (s *restoreServer) routes() map[string]http.HandlerFunc {
	path := "/v1/apps/" + s.target + "/restores/R1"
	return map[string]http.HandlerFunc{
		"GET /v1/me": func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, `{"id":"ada","admin":%v,"orgs":[],"apps":[]}`, s.admin)
		},
		"POST /v1/apps/crm/restores": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Idempotency-Key") == "" {
				s.t.Error("restore without an Idempotency-Key")
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if err := json.NewDecoder(r.Body).Decode(&s.body); err != nil {
				s.t.Errorf("decode body: %v", err)
			}
			w.Header().Set("Location", path)
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(projections.RestoreView{ID: "R1", App: s.target, SourceApp: "crm", BackupID: "B1",
				Status: "running", Step: "requested", Steps: steps("requested", "requested by ada")})
		},
		"GET " + path: func(w http.ResponseWriter, _ *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			v := s.answers[min(s.gets, len(s.answers)-1)]
			s.gets++
			_ = json.NewEncoder(w).Encode(v)
		},
		"GET /v1/apps/" + s.target: func(w http.ResponseWriter, _ *http.Request) {
			_ = json.NewEncoder(w).Encode(projections.AppView{App: s.target,
				Maintenance: projections.MaintenanceView{On: s.maintenanceOn, RestoreID: "R1"}})
		},
	}
}

func TestRestoreFollowsToFailure(t *testing.T) {
	running := func(st []projections.RestoreStepView) projections.RestoreView {
		return projections.RestoreView{ID: "R1", App: "crm", SourceApp: "crm", BackupID: "B1", Status: "running", Steps: st}
	}
	all := steps("requested", "requested by ada", "maintenance", "maintenance started",
		"pre_restore_backup", "pre-restore backup PB ready", "verify_archive", "archive matches", "import", "failed: disk full")
	failed := running(all)
	failed.Status, failed.FailedStep, failed.Error, failed.PreRestoreBackupID = "failed", strPtr("import"), strPtr("disk full"), strPtr("PB")
	s := &restoreServer{t: t, admin: true, target: "crm", maintenanceOn: true, answers: []projections.RestoreView{
		running(all[:1]), running(all[:2]), running(all[:2]), running(all[:4]), failed,
	}}
	srv := fakeServer(t, s.routes())
	r := runCLI(t, srv, "", "", false, "restore", "crm", "B1", "--pre-backup")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	// The administrator is not asked for a password, and sends none.
	if _, ok := s.body["password"]; ok || s.body["pre_restore_backup"] != true || s.body["auto_end_maintenance"] != false ||
		s.body["backup_id"] != "B1" || s.body["target_app"] != nil {
		t.Errorf("request body %v", s.body)
	}
	want := "Restore R1 of backup B1 of crm into crm:\n"
	for _, st := range all {
		want += stepLine(st) + "\n"
	}
	if r.stdout != want {
		t.Errorf("stdout\n%s\nwant\n%s", r.stdout, want)
	}
	for _, w := range []string{"backupctl: restore R1 into crm failed at step import: disk full\n",
		"crm stays in maintenance", "To roll back to the state before the restore: backupctl restore crm PB\n"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q lacks %q", r.stderr, w)
		}
	}
}

func TestRestoreAsksAUserForItsPassword(t *testing.T) {
	done := projections.RestoreView{ID: "R1", App: "crm-copy", SourceApp: "crm", BackupID: "B1", Status: "completed",
		AutoEndMaintenance: true, Digest: strPtr("abc"),
		Steps: steps("requested", "requested by ada", "verify", "verified", "end_maintenance", "maintenance ended")}
	s := &restoreServer{t: t, target: "crm-copy", answers: []projections.RestoreView{done}}
	srv := fakeServer(t, s.routes())

	r := runCLI(t, srv, "", "ada's long password\n", false, "restore", "crm", "B1", "--to", "crm-copy", "--auto-end", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if s.body["password"] != "ada's long password" || s.body["target_app"] != "crm-copy" || s.body["auto_end_maintenance"] != true {
		t.Errorf("request body %v", s.body)
	}
	// --json: the final restore on stdout, the steps on stderr.
	var got projections.RestoreView
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Status != "completed" || len(got.Steps) != 3 {
		t.Errorf("stdout %s: %v", r.stdout, err)
	}
	for _, w := range []string{stepLine(done.Steps[2]), "Restore R1 completed: crm-copy now holds backup B1 of crm."} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q lacks %q", r.stderr, w)
		}
	}

	// No password on stdin: a usage error, and nothing is asked of the
	// server.
	s.body = nil
	r = runCLI(t, srv, "", "", false, "restore", "crm", "B1")
	if r.code != 2 || !strings.Contains(r.stderr, "no password") || s.body != nil {
		t.Errorf("without a password: exit %d, stderr %q, body %v", r.code, r.stderr, s.body)
	}
}

func TestRestoreWaitsForTheEndOfMaintenance(t *testing.T) {
	// Completed, asked to end the maintenance, and the app is still in
	// maintenance for it: backupctl waits until it is not.
	done := projections.RestoreView{ID: "R1", App: "crm", SourceApp: "crm", BackupID: "B1", Status: "completed",
		AutoEndMaintenance: true, Steps: steps("requested", "requested by ada", "verify", "verified")}
	ended := done
	ended.Steps = steps("requested", "requested by ada", "verify", "verified", "end_maintenance", "maintenance ended")
	s := &restoreServer{t: t, admin: true, target: "crm", answers: []projections.RestoreView{done}}
	routes := s.routes()
	appGets := 0
	routes["GET /v1/apps/crm"] = func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		appGets++
		on := appGets < 3
		if !on {
			s.answers = []projections.RestoreView{ended}
		}
		_ = json.NewEncoder(w).Encode(projections.AppView{App: "crm", Maintenance: projections.MaintenanceView{On: on, RestoreID: "R1"}})
	}
	srv := fakeServer(t, routes)
	r := runCLI(t, srv, "", "", false, "restore", "crm", "B1", "--auto-end")
	// Three looks while following, one for the summary.
	if r.code != 0 || appGets != 4 {
		t.Fatalf("exit %d after %d looks at the app\nstdout %s\nstderr %s", r.code, appGets, r.stdout, r.stderr)
	}
	if strings.Count(r.stdout, "verified") != 1 || !strings.Contains(r.stdout, stepLine(ended.Steps[2])) ||
		strings.Contains(r.stdout, "still in maintenance") {
		t.Errorf("stdout %s", r.stdout)
	}
}

func TestRestoreStatusPrints(t *testing.T) {
	ended := restoreT0.Add(5 * time.Second)
	v := projections.RestoreView{ID: "R1", App: "crm", SourceApp: "erp", BackupID: "B1", Status: "failed", Step: "import",
		RequestedBy: "ada", RequestedAt: restoreT0, EndedAt: &ended, PreRestoreBackup: true, PreRestoreBackupID: strPtr("PB"),
		FailedStep: strPtr("import"), Error: strPtr("disk full"),
		Steps: steps("requested", "requested by ada", "import", "failed: disk full")}
	var b strings.Builder
	if err := printRestore(&b, v); err != nil {
		t.Fatal(err)
	}
	want := `ID:                    R1
App:                   crm
Backup:                B1 of erp
Status:                failed
Step:                  import
Requested by:          ada
Requested:             2026-08-31 12:02:00 UTC
Ended:                 2026-08-31 12:02:05 UTC
Pre-restore backup:    yes
Pre-restore backup ID: PB
Auto end maintenance:  no
Failed step:           import
Error:                 disk full

Steps (UTC):
  12:02:00  requested            requested by ada
  12:02:01  import               failed: disk full
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
