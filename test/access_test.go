package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/natstest"
)

// legacyApp appends to the unsigned ledger of the data dir dir the events
// of an app that no one registered (as a backupd before registration
// wrote them): a backup that failed.
func legacyApp(t *testing.T, dir, app string) {
	t.Helper()
	onPlainStore(t, dir, func(js njs.JetStream) {
		prev := ""
		for i, ev := range []domain.Event{
			&domain.BackupRequested{BackupID: "01JOLDBACKUP00000000000000", Name: "kept from the old days", Origin: domain.OriginManual,
				ExpiresAt: time.Now().Add(24 * time.Hour * 365).UTC()},
			&domain.BackupFailed{BackupID: "01JOLDBACKUP00000000000000", Reason: "source unavailable"},
		} {
			raw, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(domain.Envelope{ID: fmt.Sprintf("01JOLDAPP%017d", i), Type: ev.EventType(), Version: 1, App: app,
				Time: time.Now().UTC().Truncate(time.Millisecond), Actor: "admin", CommandID: fmt.Sprint("old", i), PrevHash: prev, Data: raw})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(context.Background(), jetstream.Subject(app), b); err != nil {
				t.Fatal(err)
			}
			prev = domain.HashEvent(b)
		}
	})
}

// No one takes over an app someone else used: a member registers only an
// id that was never used (no registration, no events, nothing in its
// configuration source), and restores only into such an id as a new app;
// anything else is 404 and records nothing. No command creates an app,
// the server administrator's neither; it alone moves an app of "default"
// (from before registration) into an organisation.
func TestNoOneClaimsAnAppInUse(t *testing.T) {
	dir := t.TempDir()
	const adaPW = "ada has a long password"
	legacyLedger(t, dir, adaPW) // ada administers crm in acme
	legacyApp(t, dir, "old")    // backups from before registration
	files := filepath.Join(dir, "files", "wiki")
	if err := os.MkdirAll(files, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "home.md"), []byte("# the wiki's home page"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, dir, func(c *daemon.Config) {
		c.Identity.PasswordParams = password.TestParams()
		c.Rules.MinInterval = 0
		c.Sources.ByApp = map[string]string{"wiki": daemon.SourceDir}
	}, nil)

	// mallory is a member of an organisation of her own.
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "evil"})
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "mallory", "name": "M", "password": "mallory has a long password"})
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/evil/members/mallory", nil)
	var sess projections.NewTokenView
	n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "mallory", "password": "mallory has a long password"}, n.as("")...).json(t, &sess)
	mallory := n.as(sess.Token)

	before := n.lastSeq()
	for _, app := range []string{"old", "wiki", "crm"} {
		if r := n.do("PUT", "/v1/apps/"+app, map[string]string{"org": "evil"}, mallory...); r.status != http.StatusNotFound ||
			strings.Contains(string(r.body), "ada") {
			t.Errorf("mallory registers %s: %d %s", app, r.status, r.body)
		}
		n.must(http.StatusNotFound, "GET", "/v1/apps/"+app+"/backups", nil, mallory...)
		// The same over NATS, with her token.
		resp := n.request(natsapi.SubjectAppsRegister, natsapi.RegisterAppRequest{App: app, Org: "evil"}, sess.Token)
		if code := resp.Header.Get("Nats-Service-Error-Code"); code != "404" || strings.Contains(string(resp.Data), "ada") {
			t.Errorf("mallory registers %s over NATS: %q %s", app, code, resp.Data)
		}
	}
	if got := n.lastSeq(); got != before {
		t.Errorf("refused registrations appended %d events", got-before)
	}
	// Her own app, registered: a never-used id. Restored into an app in
	// use: 404; into a never-used one: a new app of evil.
	n.must(http.StatusOK, "PUT", "/v1/apps/mine", map[string]string{"org": "evil"}, mallory...)
	n.must(http.StatusCreated, "PUT", "/v1/apps/mine/config/app.json", `{"name":"mine"}`, append(mallory, "Content-Type", "application/octet-stream")...)
	var b projections.BackupView
	n.must(http.StatusAccepted, "POST", "/v1/apps/mine/backups", map[string]any{}, mallory...).json(t, &b)
	n.waitStatus("mine", b.ID, 20*time.Second, domain.StatusReady)
	mid := n.lastSeq()
	for _, target := range []string{"old", "wiki", "crm"} {
		n.must(http.StatusNotFound, "POST", "/v1/apps/mine/restores", map[string]any{"backup_id": b.ID, "target_app": target,
			"password": "mallory has a long password", "pre_restore_backup": false, "auto_end_maintenance": true}, mallory...)
		resp := n.request(natsapi.SubjectRestoresCreate, map[string]any{"app": "mine", "backup_id": b.ID, "target_app": target,
			"password": "mallory has a long password", "pre_restore_backup": false, "auto_end_maintenance": true}, sess.Token)
		if code := resp.Header.Get("Nats-Service-Error-Code"); code != "404" {
			t.Errorf("mallory restores into %s over NATS: %q %s", target, code, resp.Data)
		}
	}
	if got := n.lastSeq(); got != mid {
		t.Errorf("refused restores appended %d events", got-mid)
	}
	var r restoreView
	n.must(http.StatusAccepted, "POST", "/v1/apps/mine/restores", map[string]any{"backup_id": b.ID, "target_app": "mine-copy",
		"password": "mallory has a long password", "pre_restore_backup": false, "auto_end_maintenance": true}, mallory...).json(t, &r)
	if st := n.waitRestore("mine-copy", r.ID); st.Status != "completed" {
		t.Fatalf("restore into a never-used id: %+v", st)
	}
	var acc projections.AppAccessView
	n.must(http.StatusOK, "GET", "/v1/apps/mine-copy/admins", nil, mallory...).json(t, &acc)
	if acc.Org != "evil" || len(acc.Admins) != 1 || acc.Admins[0] != "mallory" {
		t.Errorf("the new app: %+v", acc)
	}

	// The server administrator: no implicit app; the old app is visible,
	// and moves into an organisation.
	for _, path := range []string{"/v1/apps/nosuchapp/backups", "/v1/apps/nosuchapp/maintenance"} {
		n.must(http.StatusNotFound, "POST", path, map[string]any{"reason": "typo"})
	}
	n.must(http.StatusNotFound, "PUT", "/v1/apps/nosuchapp/config/app.json", `{}`, "Content-Type", "application/octet-stream")
	if code := n.request(natsapi.SubjectBackupsCreate, map[string]any{"app": "nosuchapp"}, token).Header.Get("Nats-Service-Error-Code"); code != "404" {
		t.Errorf("the administrator's backup of an unregistered app over NATS: %q", code)
	}
	var list projections.BackupList
	n.must(http.StatusOK, "GET", "/v1/apps/old/backups", nil).json(t, &list)
	if len(list.Backups) != 1 || list.Backups[0].Name != "kept from the old days" {
		t.Errorf("the old app's backups: %+v", list.Backups)
	}
	n.must(http.StatusOK, "GET", "/v1/apps/old/admins", nil).json(t, &acc)
	if acc.Org != domain.DefaultOrg {
		t.Errorf("the old app before the move: %+v", acc)
	}
	n.must(http.StatusOK, "PUT", "/v1/apps/old", map[string]string{"org": "acme"}).json(t, &acc)
	if acc.Org != "acme" || len(acc.Admins) != 0 {
		t.Errorf("the old app after the move: %+v", acc)
	}
	n.must(http.StatusConflict, "PUT", "/v1/apps/old", map[string]string{"org": "evil"})
}

// A stolen session is not the account: it cannot set a new password
// without the current one, nor restore without the password; the user's
// own change ends the other sessions, the thief's among them.
func TestStolenSessionIsNotTheAccount(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		c.Identity.PasswordParams = password.TestParams()
		c.Rules.MinInterval = 0
	}, nil)
	const pw = "carol has a long password"
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "acme"})
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "carol", "name": "C", "password": pw})
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/acme/members/carol", nil)
	login := func() string {
		var s projections.NewTokenView
		n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "carol", "password": pw}, n.as("")...).json(t, &s)
		return s.Token
	}
	carol, stolen := login(), login()
	n.must(http.StatusOK, "PUT", "/v1/apps/crm", map[string]string{"org": "acme"}, n.as(carol)...)
	n.must(http.StatusCreated, "PUT", "/v1/apps/crm/config/app.json", `{"v":1}`, append(n.as(carol), "Content-Type", "application/octet-stream")...)
	var b projections.BackupView
	n.must(http.StatusAccepted, "POST", "/v1/apps/crm/backups", map[string]any{}, n.as(carol)...).json(t, &b)
	n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)

	before := n.lastSeq()
	n.must(http.StatusBadRequest, "PUT", "/v1/users/carol/password", map[string]string{"password": "the thief's new password"}, n.as(stolen)...)
	if code := n.request(natsapi.SubjectUsersPassword, natsapi.PasswordRequest{User: "carol", Password: "the thief's new password"},
		stolen).Header.Get("Nats-Service-Error-Code"); code != "400" {
		t.Errorf("a password change without the current one over NATS: %q", code)
	}
	n.must(http.StatusForbidden, "PUT", "/v1/users/carol/password", map[string]string{"password": "the thief's new password",
		"current_password": "a guess at it"}, n.as(stolen)...)
	n.must(http.StatusForbidden, "POST", "/v1/apps/crm/restores", map[string]any{"backup_id": b.ID, "password": "another guess",
		"pre_restore_backup": false, "auto_end_maintenance": true}, n.as(stolen)...)
	if code := n.request(natsapi.SubjectUsersPassword, natsapi.PasswordRequest{User: "carol", Password: "the thief's new password",
		CurrentPassword: "a guess over NATS"}, stolen).Header.Get("Nats-Service-Error-Code"); code != "403" {
		t.Errorf("a password change with a wrong current one over NATS: %q", code)
	}
	// Only the three wrong passwords are on record (written in the
	// background).
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := n.lastSeq() - before; got != 3 {
			return fmt.Errorf("%d events since, want the 3 wrong passwords", got)
		}
		return nil
	})
	if s := n.appState("crm"); s.Maintenance.On || s.ActiveRestore != "" {
		t.Errorf("app after the thief's restore: %+v", s)
	}

	var v projections.PasswordChangeView
	n.must(http.StatusOK, "PUT", "/v1/users/carol/password", map[string]string{"password": "carol's new long password",
		"current_password": pw}, n.as(carol)...).json(t, &v)
	if len(v.RevokedSessions) != 1 {
		t.Errorf("the change revoked %v, want the stolen session", v.RevokedSessions)
	}
	n.must(http.StatusUnauthorized, "GET", "/v1/me", nil, n.as(stolen)...)
	n.must(http.StatusOK, "GET", "/v1/me", nil, n.as(carol)...)
}

// The login answers the same for a name no user has as for a user's
// wrong password, and throttles both alike; the right password works
// once the wait is over.
func TestLoginAnswersTheSameForEveryName(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *daemon.Config) { c.Identity.PasswordParams = password.TestParams() }, nil)
	const pw = "carol has a long password"
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "carol", "name": "C", "password": pw})
	answers := map[string][]string{}
	for _, user := range []string{"carol", "nobody"} {
		for range service.PairFailures + 1 {
			r := n.do("POST", "/v1/sessions", map[string]string{"user": user, "password": "not the password"}, n.as("")...)
			answers[user] = append(answers[user], fmt.Sprint(r.status, " ", r.header.Get("Retry-After")))
		}
	}
	if fmt.Sprint(answers["carol"]) != fmt.Sprint(answers["nobody"]) || answers["carol"][service.PairFailures] != "429 1" {
		t.Errorf("answers: %v", answers)
	}
	natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if r := n.do("POST", "/v1/sessions", map[string]string{"user": "carol", "password": pw}, n.as("")...); r.status != http.StatusCreated {
			return fmt.Errorf("login: %d %s", r.status, r.body)
		}
		return nil
	})
}
