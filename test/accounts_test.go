package test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/docs"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// docsCluster starts an in-process NATS server configured the way
// docs/security.md tells operators to configure a cluster of their own:
// their own listen and JetStream settings, then docs/nats/accounts.conf as
// it is, with the three passwords. With include, the file is included
// (`include "accounts.conf"`) and the passwords come from the environment
// (so the test may not run in parallel); else the passwords are variables
// followed by the file's text, as the embedded server does. It returns the
// server and each role's login.
func docsCluster(t *testing.T, include bool) (*server.Server, map[string]daemon.NATSCredentials) {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf("listen: \"127.0.0.1:-1\"\njetstream { store_dir: %q }\n", filepath.Join(dir, "store"))
	logins := map[string]daemon.NATSCredentials{}
	for _, role := range daemon.NATSRoles() {
		pw, v := rand.Text(), strings.ToUpper(role)+"_NATS_PASSWORD"
		if include {
			t.Setenv(v, pw)
		} else {
			conf += fmt.Sprintf("%s: %q\n", v, pw)
		}
		logins[role] = daemon.NATSCredentials{User: role, Password: pw, InboxPrefix: "_INBOX_" + role}
	}
	if include {
		if err := os.WriteFile(filepath.Join(dir, "accounts.conf"), docs.NATSAccounts, 0o600); err != nil {
			t.Fatal(err)
		}
		conf += "include \"accounts.conf\"\n"
	} else {
		conf += string(docs.NATSAccounts)
	}
	path := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	bd := logins[daemon.RoleBackupd]
	bd.InboxPrefix = "_INBOX"
	logins[daemon.RoleBackupd] = bd
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("the configuration of docs/security.md: %v", err)
	}
	s := natstest.ServerWithOptions(t, opts)
	for role, l := range logins {
		l.URL = s.ClientURL()
		logins[role] = l
	}
	return s, logins
}

// onCluster returns the settings that run backupd with --nats-url on a
// docsCluster as the backupd user, as docs/security.md says.
func onCluster(s *server.Server, logins map[string]daemon.NATSCredentials) func(*daemon.Config) {
	return func(c *daemon.Config) {
		c.NATS.URL = s.ClientURL()
		c.NATS.User, c.NATS.Password = daemon.RoleBackupd, logins[daemon.RoleBackupd].Password
	}
}

// startOnDocsCluster starts backupd on a new docsCluster.
func startOnDocsCluster(t *testing.T, tune func(*daemon.Config)) (*node, map[string]daemon.NATSCredentials) {
	t.Helper()
	s, logins := docsCluster(t, true)
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		onCluster(s, logins)(c)
		if tune != nil {
			tune(c)
		}
	}, nil)
	if n.d.Server() != nil {
		t.Fatal("with --nats-url the daemon must not start its own server")
	}
	return n, logins
}

// A cluster configured as docs/security.md says: backups, producers'
// requests and archives over NATS, audit consumers on the mirror, and none
// of the reply attacks lands.
func TestExternalNATSWithTheDocumentedAccounts(t *testing.T) {
	s, logins := docsCluster(t, true)
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		onCluster(s, logins)(c)
		c.Identity.PasswordParams = password.TestParams()
	}, nil)
	producer := connectRole(t, logins[daemon.RoleProducer])
	audit := connectRole(t, logins[daemon.RoleAudit])
	n.producer = producer
	w := newAttackWorld(t, n, s, producer, audit)

	// A producer's request, and an archive both ways through the staging
	// bucket of its account.
	var list struct {
		Backups []struct{ ID string } `json:"backups"`
	}
	resp := n.request("ledger.api.backups.list", map[string]any{"app": "crm"}, token)
	if err := json.Unmarshal(resp.Data, &list); err != nil || len(list.Backups) != 1 || list.Backups[0].ID != w.backup.ID {
		t.Fatalf("producer: list = %s (%v)", resp.Data, err)
	}
	resp = n.request("ledger.api.backups.download", map[string]any{"app": "crm", "id": w.backup.ID}, token)
	var staged struct {
		Object string `json:"object"`
	}
	if err := json.Unmarshal(resp.Data, &staged); err != nil || staged.Object == "" {
		t.Fatalf("producer: download = %s (%v)", resp.Data, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	obs, err := producer.js.ObjectStore(ctx, "ledger_staging")
	if err != nil {
		t.Fatal(err)
	}
	zip, err := obs.GetBytes(ctx, staged.Object)
	if err != nil {
		t.Fatalf("producer: get the staged download: %v", err)
	}
	if _, err := obs.PutBytes(ctx, "copy.zip", zip); err != nil {
		t.Fatal(err)
	}
	n.must(http.StatusOK, "PUT", "/v1/apps/crm-copy", map[string]string{"org": "acme"})
	resp = n.request("ledger.api.backups.upload", map[string]any{"app": "crm-copy", "object": "copy.zip"}, token)
	var up struct {
		Status string `json:"status"`
		SHA256 string `json:"sha256"`
	}
	if err := json.Unmarshal(resp.Data, &up); err != nil || up.Status != string(domain.StatusReady) || up.SHA256 != *w.backup.SHA256 {
		t.Fatalf("producer: upload = %s (%v)", resp.Data, err)
	}

	w.run()
}
