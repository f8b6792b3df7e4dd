package test

import (
	"net/http"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// Verify reads a stored archive and checks it: a good one is verified, a
// flipped byte marks the backup corrupt (listed, no longer downloadable).
func TestVerifyArchives(t *testing.T) {
	n := startNode(t, t.TempDir(), noMinInterval, nil)
	n.putConfig("crm", "big", string(make([]byte, 1<<16)))
	good := n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
	bad := n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)

	var v projections.BackupView
	n.must(http.StatusOK, "POST", "/v1/apps/crm/backups/"+good.ID+"/verify", nil).json(t, &v)
	if v.VerifiedAt == nil || v.CorruptAt != nil {
		t.Fatalf("verified = %+v", v)
	}

	n.corruptArchive(bad.ID)
	n.must(http.StatusOK, "POST", "/v1/apps/crm/backups/"+bad.ID+"/verify", nil).json(t, &v)
	if v.CorruptAt == nil || v.VerifiedAt != nil {
		t.Fatalf("corrupt = %+v", v)
	}
	var p problem
	n.must(http.StatusConflict, "GET", "/v1/apps/crm/backups/"+bad.ID+"/archive", nil).json(t, &p)
	if p.Code != domain.CodeBackupCorrupt {
		t.Errorf("download of a corrupt backup: %+v", p)
	}
	var events []string
	for _, e := range n.appLog("crm") {
		events = append(events, e.Event)
	}
	want := map[string]bool{domain.TypeBackupVerified: false, domain.TypeBackupCorrupted: false}
	for _, e := range events {
		if _, ok := want[e]; ok {
			want[e] = true
		}
	}
	for typ, seen := range want {
		if !seen {
			t.Errorf("no %s in the log %v", typ, events)
		}
	}
	n.must(http.StatusNotFound, "POST", "/v1/apps/crm/backups/nope/verify", nil)
}
