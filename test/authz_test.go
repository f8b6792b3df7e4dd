package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/natstest"
)

// lockedBuffer is a log sink safe for the daemon's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// caller is one row of the authorisation matrix.
type caller struct {
	name  string
	token string // "" sends no Authorization header
	// allowed callers succeed; the others get status.
	allowed bool
	status  int
}

// authzWorld is a node with organisations, users and tokens for the matrix:
// crm belongs to acme and is administered by carol; dave is a member of
// acme who does not administer it; erin belongs to another organisation.
type authzWorld struct {
	n       *node
	callers []caller
	secrets []string // passwords and token secrets that must never leak
	logs    *lockedBuffer
	ready   projections.BackupView
	archive []byte
	// webhook is a webhook of crm, for the delivery log route.
	webhook string
}

func (n *node) as(tok string) []string {
	if tok == "" {
		return []string{"Authorization", ""}
	}
	return []string{"Authorization", "Bearer " + tok}
}

func newAuthzWorld(t *testing.T) *authzWorld {
	t.Helper()
	logs := &lockedBuffer{}
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		c.Identity.PasswordParams = password.TestParams()
		c.Rules.MinInterval = 0
		c.Rules.MaxBackups = 1000
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}, nil)
	w := &authzWorld{n: n, logs: logs}
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "acme"})
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "other"})
	login := func(user string) string {
		pw := user + " has a long password"
		w.secrets = append(w.secrets, pw)
		n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": user, "name": user, "password": pw})
		var tok projections.NewTokenView
		n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": user, "password": pw}, n.as("")...).json(t, &tok)
		w.secrets = append(w.secrets, tok.Token)
		return tok.Token
	}
	carol, dave, erin := login("carol"), login("dave"), login("erin")
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/acme/members/carol", nil)
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/acme/members/dave", nil)
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/other/members/erin", nil)
	n.must(http.StatusOK, "PUT", "/v1/apps/crm", map[string]string{"org": "acme"}, n.as(carol)...)

	// An API token that is revoked, and one that expires in a moment.
	newToken := func(body map[string]string) projections.NewTokenView {
		var tok projections.NewTokenView
		n.must(http.StatusCreated, "POST", "/v1/tokens", body, n.as(carol)...).json(t, &tok)
		w.secrets = append(w.secrets, tok.Token)
		return tok
	}
	revoked := newToken(map[string]string{"name": "revoked"})
	n.must(http.StatusNoContent, "DELETE", "/v1/tokens/"+revoked.ID, nil, n.as(carol)...)
	expiring := newToken(map[string]string{"name": "expiring", "expires_at": time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)})
	natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if r := n.do("GET", "/v1/me", nil, n.as(expiring.Token)...); r.status != http.StatusUnauthorized {
			return fmt.Errorf("token not expired yet: %d", r.status)
		}
		return nil
	})

	w.callers = []caller{
		{"no token", "", false, http.StatusUnauthorized},
		{"bad token", "bl_01JDAX3N3Z8Q1V0G5Y9F6K2M4C_" + strings.Repeat("A", 43), false, http.StatusUnauthorized},
		{"expired token", expiring.Token, false, http.StatusUnauthorized},
		{"revoked token", revoked.Token, false, http.StatusUnauthorized},
		{"user of another organisation", erin, false, http.StatusNotFound},
		{"member who is not admin", dave, false, http.StatusNotFound},
		{"app admin", carol, true, 0},
		{"server admin", token, true, 0},
	}
	w.ready = n.readyBackup("crm")
	_, w.archive = n.download("crm", w.ready, "")
	var hook projections.NewWebhookView
	n.must(http.StatusCreated, "POST", "/v1/apps/crm/webhooks", map[string]any{"url": "https://hooks.example.com/crm", "events": []string{"restore.failed"}}).json(t, &hook)
	w.webhook = hook.ID
	w.secrets = append(w.secrets, hook.Secret)
	return w
}

// settle waits until no backup of crm is queued or running, so that no
// worker moves the stream while a refused command is checked.
func (w *authzWorld) settle(t *testing.T) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		var list projections.BackupList
		w.n.must(http.StatusOK, "GET", "/v1/apps/crm/backups", nil).json(t, &list)
		for _, b := range list.Backups {
			if b.Status == string(domain.StatusQueued) || b.Status == string(domain.StatusRunning) {
				return fmt.Errorf("backup %s is %s", b.ID, b.Status)
			}
		}
		return nil
	})
}

// endpoint is one route of the matrix: its request, made fresh for each
// caller (a delete gets a backup of its own), and its success status.
type endpoint struct {
	name string
	ok   int
	req  func(w *authzWorld) (method, path string, body any, headers []string)
}

func httpEndpoints() []endpoint {
	id := func(w *authzWorld) string { return w.ready.ID }
	return []endpoint{
		{"create backup", http.StatusAccepted, func(*authzWorld) (string, string, any, []string) {
			return "POST", "/v1/apps/crm/backups", map[string]string{"name": "matrix"}, nil
		}},
		{"list backups", http.StatusOK, func(*authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm/backups", nil, nil
		}},
		{"get backup", http.StatusOK, func(w *authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm/backups/" + id(w), nil, nil
		}},
		{"rename backup", http.StatusOK, func(w *authzWorld) (string, string, any, []string) {
			return "PATCH", "/v1/apps/crm/backups/" + id(w), map[string]string{"name": "renamed in the matrix"}, nil
		}},
		{"delete backup", http.StatusNoContent, func(w *authzWorld) (string, string, any, []string) {
			b := w.n.createBackup("crm", map[string]string{"name": "to delete"})
			return "DELETE", "/v1/apps/crm/backups/" + b.ID, nil, nil
		}},
		{"download archive", http.StatusOK, func(w *authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm/backups/" + id(w) + "/archive", nil, nil
		}},
		{"upload archive", http.StatusCreated, func(w *authzWorld) (string, string, any, []string) {
			return "POST", "/v1/apps/crm/backups/upload?name=matrix", w.archive, []string{"Content-Type", "application/zip"}
		}},
		{"app state", http.StatusOK, func(*authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm", nil, nil
		}},
		{"app log", http.StatusOK, func(*authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm/logs", nil, nil
		}},
		{"backup log", http.StatusOK, func(w *authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm/backups/" + id(w) + "/logs", nil, nil
		}},
		{"put config", http.StatusCreated, func(*authzWorld) (string, string, any, []string) {
			return "PUT", "/v1/apps/crm/config/k" + strconv.FormatInt(time.Now().UnixNano(), 36), "v", []string{"Content-Type", "application/octet-stream"}
		}},
		{"get config", http.StatusOK, func(w *authzWorld) (string, string, any, []string) {
			w.n.putConfig("crm", "shown", "v")
			return "GET", "/v1/apps/crm/config/shown", nil, nil
		}},
		{"list config", http.StatusOK, func(*authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm/config", nil, nil
		}},
		{"delete config", http.StatusNoContent, func(w *authzWorld) (string, string, any, []string) {
			w.n.putConfig("crm", "gone", "v")
			return "DELETE", "/v1/apps/crm/config/gone", nil, nil
		}},
		{"app admins", http.StatusOK, func(*authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm/admins", nil, nil
		}},
		{"grant admin", http.StatusNoContent, func(*authzWorld) (string, string, any, []string) {
			return "PUT", "/v1/apps/crm/admins/carol", nil, nil
		}},
		{"revoke admin", http.StatusNoContent, func(*authzWorld) (string, string, any, []string) {
			return "DELETE", "/v1/apps/crm/admins/nobody", nil, nil
		}},
		{"get schedule", http.StatusOK, func(*authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm/schedule", nil, nil
		}},
		{"set schedule", http.StatusOK, func(*authzWorld) (string, string, any, []string) {
			return "PUT", "/v1/apps/crm/schedule", map[string]any{"enabled": false, "time": "03:00"}, nil
		}},
		{"register webhook", http.StatusCreated, func(*authzWorld) (string, string, any, []string) {
			return "POST", "/v1/apps/crm/webhooks", map[string]any{"url": "https://hooks.example.com/matrix", "events": []string{"restore.failed"}}, nil
		}},
		{"list webhooks", http.StatusOK, func(*authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm/webhooks", nil, nil
		}},
		{"webhook deliveries", http.StatusOK, func(w *authzWorld) (string, string, any, []string) {
			return "GET", "/v1/apps/crm/webhooks/" + w.webhook + "/deliveries", nil, nil
		}},
		{"remove webhook", http.StatusNoContent, func(w *authzWorld) (string, string, any, []string) {
			var made projections.NewWebhookView
			w.n.must(http.StatusCreated, "POST", "/v1/apps/crm/webhooks", map[string]any{"url": "https://hooks.example.com/gone", "events": []string{"restore.failed"}}).json(w.n.t, &made)
			return "DELETE", "/v1/apps/crm/webhooks/" + made.ID, nil, nil
		}},
	}
}

// TestAuthorizationMatrixHTTP: every app route × every kind of caller.
func TestAuthorizationMatrixHTTP(t *testing.T) {
	w := newAuthzWorld(t)
	n := w.n
	for _, e := range httpEndpoints() {
		for _, c := range w.callers {
			method, path, body, headers := e.req(w)
			w.settle(t)
			before := n.lastSeq()
			r := n.do(method, path, body, append(headers, n.as(c.token)...)...)
			want := c.status
			if c.allowed {
				want = e.ok
			}
			if r.status != want {
				t.Errorf("%s (%s %s) by %s: status %d, want %d: %s", e.name, method, path, c.name, r.status, want, r.body)
				continue
			}
			if !c.allowed {
				var p problem
				r.json(t, &p)
				wantCode := domain.CodeUnauthenticated
				if c.status == http.StatusNotFound {
					wantCode = domain.CodeNotFound
				}
				if p.Code != wantCode || strings.Contains(p.Detail, "carol") {
					t.Errorf("%s by %s: problem %+v", e.name, c.name, p)
				}
				if after := n.lastSeq(); after != before {
					t.Errorf("%s by %s: refused, but the stream moved from %d to %d", e.name, c.name, before, after)
				}
			}
			if e.name == "rename backup" && c.allowed {
				var b projections.BackupView
				r.json(t, &b)
				if b.Name != "renamed in the matrix" {
					t.Errorf("rename by %s: %+v", c.name, b)
				}
			}
		}
	}
	// The cross-app list shows each caller only what it administers.
	for _, c := range w.callers {
		r := n.do("GET", "/v1/backups", nil, n.as(c.token)...)
		if !c.allowed && c.status == http.StatusUnauthorized {
			if r.status != http.StatusUnauthorized {
				t.Errorf("GET /v1/backups by %s: %d", c.name, r.status)
			}
			continue
		}
		var list projections.BackupList
		r.json(t, &list)
		if c.allowed != (len(list.Backups) > 0) {
			t.Errorf("GET /v1/backups by %s: %d backups", c.name, len(list.Backups))
		}
	}
	w.assertNoLeaks(t)
}

// TestAuthorizationMatrixNATS: every app subject × every kind of caller.
func TestAuthorizationMatrixNATS(t *testing.T) {
	w := newAuthzWorld(t)
	n := w.n
	staged := func(w *authzWorld) string {
		// A producer stages the archive for each upload.
		var dl struct {
			Object string `json:"object"`
		}
		resp := n.request("ledger.api.backups.download", map[string]any{"app": "crm", "id": w.ready.ID}, token)
		if err := json.Unmarshal(resp.Data, &dl); err != nil || dl.Object == "" {
			t.Fatalf("stage: %s", resp.Data)
		}
		return dl.Object
	}
	subjects := []struct {
		name string
		body func(w *authzWorld) map[string]any
	}{
		{"backups.create", func(*authzWorld) map[string]any { return map[string]any{"app": "crm", "name": "matrix"} }},
		{"backups.list", func(*authzWorld) map[string]any { return map[string]any{"app": "crm"} }},
		{"backups.get", func(w *authzWorld) map[string]any { return map[string]any{"app": "crm", "id": w.ready.ID} }},
		{"backups.rename", func(w *authzWorld) map[string]any {
			return map[string]any{"app": "crm", "id": w.ready.ID, "name": "renamed over nats"}
		}},
		{"backups.delete", func(w *authzWorld) map[string]any {
			return map[string]any{"app": "crm", "id": w.n.createBackup("crm", map[string]string{"name": "to delete"}).ID}
		}},
		{"backups.download", func(w *authzWorld) map[string]any { return map[string]any{"app": "crm", "id": w.ready.ID} }},
		{"backups.upload", func(w *authzWorld) map[string]any {
			return map[string]any{"app": "crm", "object": staged(w), "name": "matrix"}
		}},
		{"apps.get", func(*authzWorld) map[string]any { return map[string]any{"app": "crm"} }},
		{"logs.app", func(*authzWorld) map[string]any { return map[string]any{"app": "crm"} }},
		{"logs.backup", func(w *authzWorld) map[string]any { return map[string]any{"app": "crm", "id": w.ready.ID} }},
		{"config.list", func(*authzWorld) map[string]any { return map[string]any{"app": "crm"} }},
		{"apps.admins.get", func(*authzWorld) map[string]any { return map[string]any{"app": "crm"} }},
		{"apps.admins.grant", func(*authzWorld) map[string]any { return map[string]any{"app": "crm", "user": "carol"} }},
		{"schedule.get", func(*authzWorld) map[string]any { return map[string]any{"app": "crm"} }},
		{"schedule.set", func(*authzWorld) map[string]any { return map[string]any{"app": "crm", "enabled": false} }},
		{"webhooks.list", func(*authzWorld) map[string]any { return map[string]any{"app": "crm"} }},
		{"webhooks.deliveries", func(w *authzWorld) map[string]any { return map[string]any{"app": "crm", "id": w.webhook} }},
	}
	for _, s := range subjects {
		for _, c := range w.callers {
			body := s.body(w)
			w.settle(t)
			before := n.lastSeq()
			resp := n.request("ledger.api."+s.name, body, c.token)
			code := resp.Header.Get("Nats-Service-Error-Code")
			want := strconv.Itoa(c.status)
			if c.allowed {
				want = ""
			}
			if code != want {
				t.Errorf("%s by %s: error code %q, want %q: %s", s.name, c.name, code, want, resp.Data)
				continue
			}
			if !c.allowed {
				if after := n.lastSeq(); after != before {
					t.Errorf("%s by %s: refused, but the stream moved from %d to %d", s.name, c.name, before, after)
				}
			}
		}
	}
	w.assertNoLeaks(t)
}

// assertNoLeaks checks that no password, token, or stored hash is in the
// logs or anywhere in the stream.
func (w *authzWorld) assertNoLeaks(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	kv, err := w.n.js.KeyValue(ctx, jetstream.SecretsBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{}
	for _, s := range w.secrets {
		secrets = append(secrets, []byte(s))
	}
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, e.Value())
	}
	if len(secrets) < len(w.secrets)+3 {
		t.Fatalf("only %d secrets in the bucket", len(secrets)-len(w.secrets))
	}
	logs := []byte(w.logs.String())
	if len(logs) == 0 {
		t.Fatal("no logs captured")
	}
	stream := bytes.Join(w.n.ledgerBodies(), []byte("\n"))
	for _, s := range secrets {
		if bytes.Contains(logs, s) {
			t.Errorf("the logs hold a secret (%d bytes)", len(s))
		}
		if bytes.Contains(stream, s) {
			t.Errorf("the stream holds a secret (%d bytes)", len(s))
		}
	}
	if !bytes.Contains(stream, []byte(`"type":"token.revoked"`)) || !bytes.Contains(stream, []byte(`"type":"user.created"`)) {
		t.Error("the identity events are not in the stream")
	}
}

// Identity survives a restart: users, memberships, admin rights and tokens
// are folded again from the stream, and the secrets are in their bucket.
func TestIdentitySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	fast := func(c *daemon.Config) { c.Identity.PasswordParams = password.TestParams() }
	n := startNode(t, dir, fast, nil)
	const pw = "carol has a long password"
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "acme"})
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "carol", "name": "Carol", "password": pw})
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/acme/members/carol", nil)
	var sess projections.NewTokenView
	n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "carol", "password": pw}, n.as("")...).json(t, &sess)
	n.must(http.StatusOK, "PUT", "/v1/apps/crm", map[string]string{"org": "acme"}, n.as(sess.Token)...)
	var api projections.NewTokenView
	n.must(http.StatusCreated, "POST", "/v1/tokens", map[string]string{"name": "ci"}, n.as(sess.Token)...).json(t, &api)
	b := n.createBackup("crm", map[string]string{"name": "before restart"})
	n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)
	n.stop()

	m := startNode(t, dir, fast, nil)
	for _, tok := range []string{sess.Token, api.Token} {
		var list projections.BackupList
		m.must(http.StatusOK, "GET", "/v1/apps/crm/backups", nil, m.as(tok)...).json(t, &list)
		if len(list.Backups) != 1 || list.Backups[0].CreatedBy != "admin" {
			t.Errorf("after the restart: %+v", list.Backups)
		}
	}
	m.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "carol", "password": pw}, m.as("")...)
	m.must(http.StatusUnauthorized, "POST", "/v1/sessions", map[string]string{"user": "carol", "password": "not her password"}, m.as("")...)
	var me projections.MeView
	m.must(http.StatusOK, "GET", "/v1/me", nil, m.as(api.Token)...).json(t, &me)
	if me.ID != "carol" || len(me.Apps) != 1 || me.Apps[0] != "crm" {
		t.Errorf("me after the restart = %+v", me)
	}
}
