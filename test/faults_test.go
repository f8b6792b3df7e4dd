package test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/natstest"
)

// gate is a source whose exports wait until released (or their context
// ends), so that a test can stop a worker in the middle of a backup.
type gate struct {
	service.Source
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) wrap(s service.Source) service.Source { g.Source = s; return g }

func (g *gate) Export(ctx context.Context, app string, emit func(domain.Item) error) error {
	g.once.Do(func() { close(g.entered) })
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Source.Export(ctx, app, emit)
}

func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no worker started the export")
	}
}

// attempts returns the attempts of the backup.started entries of a backup.
func (n *node) starts(app, id string) []string {
	n.t.Helper()
	var logs projections.LogList
	n.must(http.StatusOK, "GET", "/v1/apps/"+app+"/backups/"+id+"/logs", nil).json(n.t, &logs)
	var out []string
	for _, e := range logs.Entries {
		if e.Event == domain.TypeBackupStarted {
			out = append(out, e.Message)
		}
	}
	return out
}

func TestWorkerKilledMidBackupIsRedelivered(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	a := startNode(t, dir, nil, g.wrap)
	a.putConfig("shop", "catalog", `{"items":12}`)
	b := a.createBackup("shop", map[string]any{})
	g.waitEntered(t)
	if got := a.waitStatus("shop", b.ID, 10*time.Second, domain.StatusRunning); got.Status != "running" {
		t.Fatalf("status = %s", got.Status)
	}
	a.kill()

	c := startNode(t, dir, nil, nil)
	got := c.waitStatus("shop", b.ID, 30*time.Second, domain.StatusReady, domain.StatusFailed)
	if got.Status != "ready" || got.ItemCount != 1 {
		t.Fatalf("after redelivery: %+v", got)
	}
	starts := c.starts("shop", b.ID)
	if len(starts) != 2 || !strings.Contains(starts[0], "attempt 1") || !strings.Contains(starts[1], "attempt 2") {
		t.Errorf("started entries = %q, want attempts 1 and 2", starts)
	}
}

func TestBackupFailsAfterLastDelivery(t *testing.T) {
	dir := t.TempDir()
	twice := func(c *daemon.Config) { c.Jobs.MaxDeliver = 2 }
	g := newGate()
	a := startNode(t, dir, twice, g.wrap)
	b := a.createBackup("shop", map[string]any{})
	g.waitEntered(t)
	a.waitStatus("shop", b.ID, 10*time.Second, domain.StatusRunning)
	a.kill()

	// The second delivery is the last: the backup is failed, not tried.
	c := startNode(t, dir, twice, newGate().wrap)
	got := c.waitStatus("shop", b.ID, 30*time.Second, domain.StatusReady, domain.StatusFailed)
	if got.Status != "failed" || got.Error == nil || !strings.Contains(*got.Error, "deliveries") {
		t.Fatalf("after the last delivery: %+v", got)
	}
	if _, err := c.archiveBytes(b.ID); err == nil {
		t.Error("a failed backup left an archive")
	}
}

func TestGracefulStopFinishesRunningJob(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	a := startNode(t, dir, nil, g.wrap)
	b := a.createBackup("shop", map[string]any{})
	g.waitEntered(t)
	stopped := make(chan struct{})
	go func() { defer close(stopped); a.nc.Close(); a.d.Close() }()
	// Once the stop is under way (the HTTP API is gone), let the job finish:
	// the stop waits for it.
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if resp, err := http.Get(a.base + "/healthz"); err == nil {
			resp.Body.Close()
			return natstest.Errorf("still serving")
		}
		return nil
	})
	close(g.release)
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("graceful stop did not end")
	}
	c := startNode(t, dir, nil, nil)
	if got := c.backup("shop", b.ID); got.Status != "ready" {
		t.Fatalf("after a graceful stop the running backup is %s, want ready", got.Status)
	}
}

func TestGracefulStopHandsBackJobPastGrace(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	short := func(c *daemon.Config) { c.ShutdownTimeout = 3 * time.Second }
	a := startNode(t, dir, short, g.wrap)
	b := a.createBackup("shop", map[string]any{})
	g.waitEntered(t)
	a.stop() // the export never returns: the job is handed back

	c := startNode(t, dir, short, nil)
	got := c.waitStatus("shop", b.ID, 30*time.Second, domain.StatusReady, domain.StatusFailed)
	if got.Status != "ready" {
		t.Fatalf("after hand back: %+v", got)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	first := n.createBackup("paced", map[string]any{})
	n.waitStatus("paced", first.ID, 20*time.Second, domain.StatusReady)
	n.ensureApp("crm")

	long := strings.Repeat("n", 101)
	cases := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		code               string
	}{
		{"malformed json", "POST", "/v1/apps/crm/backups", `{"name":`, nil, 400, "invalid_argument"},
		{"unknown field", "POST", "/v1/apps/crm/backups", `{"nmae":"x"}`, nil, 400, "invalid_argument"},
		{"wrong type", "POST", "/v1/apps/crm/backups", `{"name":5}`, nil, 400, "invalid_argument"},
		{"trailing data", "POST", "/v1/apps/crm/backups", `{} {}`, nil, 400, "invalid_argument"},
		{"invalid app id", "POST", "/v1/apps/Bad.App/backups", `{}`, nil, 400, "invalid_argument"},
		{"overlong name", "POST", "/v1/apps/crm/backups", map[string]any{"name": long}, nil, 400, "invalid_argument"},
		{"empty name after trim", "POST", "/v1/apps/crm/backups", map[string]any{"name": "  \t "}, nil, 400, "invalid_argument"},
		{"control character in name", "POST", "/v1/apps/crm/backups", map[string]any{"name": "a\x07b"}, nil, 400, "invalid_argument"},
		{"bad idempotency key", "POST", "/v1/apps/crm/backups", `{}`, []string{"Idempotency-Key", "not allowed!"}, 400, "invalid_argument"},
		{"rename unknown backup", "PATCH", "/v1/apps/crm/backups/01JUNKNOWN0000000000000000", map[string]any{"name": "x"}, nil, 404, "not_found"},
		{"rename to empty", "PATCH", "/v1/apps/paced/backups/" + first.ID, map[string]any{"name": " "}, nil, 400, "invalid_argument"},
		{"delete unknown backup", "DELETE", "/v1/apps/crm/backups/01JUNKNOWN0000000000000000", nil, nil, 404, "not_found"},
		{"get unknown backup", "GET", "/v1/apps/crm/backups/01JUNKNOWN0000000000000000", nil, nil, 404, "not_found"},
		{"missing token", "POST", "/v1/apps/crm/backups", `{}`, []string{"Authorization", ""}, 401, "unauthenticated"},
		{"bad token", "POST", "/v1/apps/crm/backups", `{}`, []string{"Authorization", "Bearer nope"}, 401, "unauthenticated"},
		{"bad token on read", "GET", "/v1/apps/crm/backups", nil, []string{"Authorization", "Bearer nope"}, 401, "unauthenticated"},
		{"too soon", "POST", "/v1/apps/paced/backups", `{}`, nil, 409, "backup_too_soon"},
		// No command creates an app, the administrator's neither.
		{"unregistered app", "POST", "/v1/apps/nosuchapp/backups", `{}`, nil, 404, "not_found"},
		{"config of an unregistered app", "PUT", "/v1/apps/nosuchapp/config/app.json", `{}`, nil, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := n.lastSeq()
			r := n.do(tc.method, tc.path, tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("content type %q", ct)
			}
			var p problem
			r.json(t, &p)
			if p.Code != tc.code || p.Status != tc.status || p.Detail == "" {
				t.Errorf("problem = %+v, want code %s", p, tc.code)
			}
			if tc.code == "backup_too_soon" {
				if p.RetryAfterSeconds < 1 || p.RetryAfterSeconds > 300 || r.header.Get("Retry-After") == "" {
					t.Errorf("retry_after_seconds = %d, Retry-After %q", p.RetryAfterSeconds, r.header.Get("Retry-After"))
				}
			}
			if after := n.lastSeq(); after != before {
				t.Errorf("stream moved from %d to %d on a refused request", before, after)
			}
		})
	}

}

func TestQuotaRefusesAndDeleteFreesRoom(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *daemon.Config) { c.Rules.MaxBackups = 2; c.Rules.MinInterval = 0 }, nil)
	var ids []string
	for i := 0; i < 2; i++ {
		ids = append(ids, n.createBackup("quota", map[string]any{}).ID)
	}
	for _, id := range ids { // no worker may append while we watch the stream
		n.waitStatus("quota", id, 20*time.Second, domain.StatusReady)
	}
	before := n.lastSeq()
	r := n.do("POST", "/v1/apps/quota/backups", `{}`)
	var p problem
	r.json(t, &p)
	if r.status != 409 || p.Code != "backup_quota_exceeded" {
		t.Fatalf("third backup: status %d %+v", r.status, p)
	}
	if after := n.lastSeq(); after != before {
		t.Errorf("stream moved from %d to %d", before, after)
	}
	// Another app has its own quota.
	n.createBackup("other", map[string]any{})
	n.must(http.StatusNoContent, "DELETE", "/v1/apps/quota/backups/"+ids[0], nil)
	n.createBackup("quota", map[string]any{})
}
