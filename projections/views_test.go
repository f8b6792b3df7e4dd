package projections_test

import (
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// The answer to a create is the backup as queued, whatever a worker did
// with it meanwhile.
func TestAsRequested(t *testing.T) {
	done := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ready := projections.NewBackupView(domain.Backup{ID: "b1", App: "crm", Name: "n", Status: domain.StatusReady, Origin: domain.OriginManual,
		CreatedBy: "alice", CreatedAt: done.Add(-time.Minute), CompletedAt: done, ExpiresAt: done.Add(time.Hour), SchemaVersion: 2,
		SizeBytes: 10, SHA256: "ab", ItemCount: 3, Source: "kv", VerifiedAt: done})
	q := projections.AsRequested(ready)
	if q.Status != "queued" || q.CompletedAt != nil || q.SHA256 != nil || q.SizeBytes != 0 || q.ItemCount != 0 || q.SchemaVersion != 0 ||
		q.Source != "" || q.VerifiedAt != nil {
		t.Errorf("as requested: %+v", q)
	}
	if q.ID != "b1" || q.Name != "n" || q.CreatedBy != "alice" || !q.CreatedAt.Equal(done.Add(-time.Minute)) || !q.ExpiresAt.Equal(done.Add(time.Hour)) {
		t.Errorf("the request's own fields changed: %+v", q)
	}
	if ready.Status != "ready" || ready.SHA256 == nil {
		t.Errorf("the view given was changed: %+v", ready)
	}
}
