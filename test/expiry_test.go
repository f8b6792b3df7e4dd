package test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
)

// movableClock is a clock the test moves.
type movableClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *movableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *movableClock) set(off time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = off
}

// Through 61 days: a backup expires exactly 60 days after it was made; its
// archive goes, its log stays, the list no longer shows it.
func TestBackupsExpireAfter60Days(t *testing.T) {
	clock := &movableClock{}
	n := startNodeWith(t, t.TempDir(), func(c *daemon.Config) { c.Rules.MinInterval = 0 }, func(h *daemon.TestHooks) { h.Clock = clock })
	n.putConfig("crm", "app.json", "v1")
	b := n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
	clock.set(time.Hour)
	keep := n.waitStatus("crm", n.createBackup("crm", map[string]any{"name": "an hour later"}).ID, 20*time.Second, domain.StatusReady)
	if !slices.Contains(n.objects("ledger_archives"), b.ID) {
		t.Fatal("no archive to expire")
	}
	ctx := t.Context()
	if b.ExpiresAt.IsZero() {
		t.Fatalf("backup without expiry: %+v", b)
	}
	until := time.Until(b.ExpiresAt)
	clock.set(until - time.Second)
	if got, err := n.d.SweepNow(ctx); err != nil || got != 0 {
		t.Fatalf("a second before its expiry: %d expired, %v", got, err)
	}
	clock.set(until + time.Second)
	got, err := n.d.SweepNow(ctx)
	if err != nil || got != 1 {
		t.Fatalf("at its expiry: %d expired (%v), want 1", got, err)
	}
	if n.do("GET", "/v1/apps/crm/backups/"+b.ID, nil).status != 404 {
		t.Error("the expired backup is still shown")
	}
	var list struct {
		Backups []struct {
			ID string `json:"id"`
		} `json:"backups"`
	}
	n.must(200, "GET", "/v1/apps/crm/backups", nil).json(t, &list)
	if len(list.Backups) != 1 || list.Backups[0].ID != keep.ID {
		t.Errorf("list = %+v, want only %s", list.Backups, keep.ID)
	}
	if slices.Contains(n.objects("ledger_archives"), b.ID) {
		t.Error("the expired backup's archive is still stored")
	}
	var expired bool
	for _, e := range n.appLog("crm") {
		expired = expired || e.Event == domain.TypeBackupExpired && e.BackupID == b.ID && e.Actor == domain.ExpiryActor
	}
	if !expired {
		t.Error("the log does not show the expiry")
	}
	if got, err := n.d.SweepNow(ctx); err != nil || got != 0 {
		t.Errorf("a second sweep: %d expired, %v", got, err)
	}
}
