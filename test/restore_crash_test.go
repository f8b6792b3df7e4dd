package test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

// appLog returns an app's log.
func (n *node) appLog(app string) []projections.LogEntry {
	n.t.Helper()
	var l projections.LogList
	n.must(http.StatusOK, "GET", "/v1/apps/"+app+"/logs", nil).json(n.t, &l)
	return l.Entries
}

// stopper stops a restore runner once, at one point, and holds it there.
type stopper struct {
	once    sync.Once
	reached chan struct{}
	release chan struct{}
}

func newStopper(t *testing.T) *stopper {
	s := &stopper{reached: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(s.release) })
	return s
}

// stop signals that the point is reached and holds the runner there
// until the test ends or the runner's process is killed (ctx ends; by
// then nothing leaves the process any more).
func (s *stopper) stop(ctx context.Context) {
	s.once.Do(func() {
		close(s.reached)
		select {
		case <-s.release:
		case <-ctx.Done():
		}
	})
}

// halfReplacer wraps a source so that its Replace writes half of the
// items and then stops, as a process killed in the middle of an import.
type halfReplacer struct {
	service.Source
	s *stopper
}

func (h halfReplacer) Replace(ctx context.Context, app string, items func(emit func(domain.Item) error) error) error {
	var all []domain.Item
	err := items(func(it domain.Item) error {
		b := new(strings.Builder)
		if _, err := copyAll(b, it); err != nil {
			return err
		}
		it.Body = strings.NewReader(b.String())
		all = append(all, it)
		return nil
	})
	if err != nil {
		return err
	}
	half := all[:len(all)/2]
	if err := h.Source.(service.Replacer).Replace(ctx, app, func(emit func(domain.Item) error) error {
		for _, it := range half {
			if err := emit(it); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	h.s.stop(ctx)
	return ctx.Err()
}

func copyAll(b *strings.Builder, it domain.Item) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := it.Body.Read(buf)
		b.Write(buf[:k])
		n += int64(k)
		if err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
	}
}

// TestRestoreSurvivesCrashes kills backupd at each step boundary of a
// restore (and once in the middle of its import) and starts another on the
// same NATS server: the restore ends completed and verified, each step's
// event recorded once.
func TestRestoreSurvivesCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts backupd nine times")
	}
	points := []struct {
		name string
		kind domain.RestoreActionKind // 0: in the middle of the import
	}{
		{"before maintenance", domain.ActStartMaintenance},
		{"before the pre-restore backup", domain.ActRequestPreBackup},
		{"waiting for the pre-restore backup", domain.ActWaitPreBackup},
		{"before recording the pre-restore backup", domain.ActRecordPreBackup},
		{"before checking the archive", domain.ActVerifyArchive},
		{"before the import", domain.ActImport},
		{"in the middle of the import", 0},
		{"before verifying", domain.ActVerify},
		{"before ending maintenance", domain.ActEndMaintenance},
	}
	for _, p := range points {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			cluster := onCluster(docsCluster(t, false))
			stop := newStopper(t)
			tune := func(c *daemon.Config) {
				cluster(c)
				c.Rules.MinInterval = 0
				c.Jobs.AckWait = 2 * time.Second
			}
			a := startNodeWith(t, t.TempDir(), tune, func(h *daemon.TestHooks) {
				if p.kind == 0 {
					h.RestoreSourceWrapper = func(src service.Source) service.Source { return halfReplacer{src, stop} }
					return
				}
				h.RestoreHook = func(ctx context.Context, _, _ string, act domain.RestoreAction) {
					if act.Kind == p.kind {
						stop.stop(ctx)
					}
				}
			})
			docs := map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}
			a.setDocs("crm", docs)
			b := a.waitStatus("crm", a.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
			a.setDocs("crm", map[string]string{"a": "changed", "z": "added later"})
			r := a.restore("crm", map[string]any{"backup_id": b.ID, "pre_restore_backup": true, "auto_end_maintenance": true})
			select {
			case <-stop.reached:
			case <-time.After(30 * time.Second):
				t.Fatal("the restore never reached the point")
			}
			a.kill()

			n := startNode(t, t.TempDir(), tune, nil)
			got := n.waitRestore("crm", r.ID)
			if got.Status != "completed" || got.Digest == "" {
				t.Fatalf("restore after the crash = %+v", got)
			}
			if c := n.configDocs("crm"); !maps.Equal(c, docs) {
				t.Errorf("config = %v, want %v", c, docs)
			}
			if st := n.appState("crm"); st.Maintenance.On {
				t.Error("maintenance still on")
			}
			counts := map[string]int{}
			for _, e := range n.appLog("crm") {
				counts[e.Event]++
			}
			for _, typ := range []string{domain.TypeRestoreRequested, domain.TypeMaintenanceStarted, domain.TypeRestorePreBackup,
				domain.TypeRestoreArchiveVerified, domain.TypeRestoreImported, domain.TypeRestoreCompleted, domain.TypeMaintenanceEnded} {
				if counts[typ] != 1 {
					t.Errorf("%s recorded %d times", typ, counts[typ])
				}
			}
			if counts[domain.TypeBackupRequested] != 2 {
				t.Errorf("%d backups requested, want the backup and one pre-restore backup", counts[domain.TypeBackupRequested])
			}
		})
	}
}

// Two backupd on one NATS server, one restore: exactly one of them runs
// each step, once.
func TestRestoreTwoProcesses(t *testing.T) {
	cluster := onCluster(docsCluster(t, false))
	tune := func(c *daemon.Config) {
		cluster(c)
		c.Rules.MinInterval = 0
	}
	var (
		mu   sync.Mutex
		runs = map[domain.RestoreActionKind][]string{}
	)
	record := func(name string) func(*daemon.TestHooks) {
		return func(h *daemon.TestHooks) {
			h.RestoreHook = func(_ context.Context, _, _ string, act domain.RestoreAction) {
				mu.Lock()
				defer mu.Unlock()
				runs[act.Kind] = append(runs[act.Kind], name)
			}
		}
	}
	a := startNodeWith(t, t.TempDir(), tune, record("a"))
	b := startNodeWith(t, t.TempDir(), tune, record("b"))
	docs := map[string]string{"a": "1", "b": "2"}
	a.setDocs("crm", docs)
	bk := a.waitStatus("crm", a.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
	a.setDocs("crm", map[string]string{"x": "later"})
	r := b.restore("crm", map[string]any{"backup_id": bk.ID, "pre_restore_backup": true, "auto_end_maintenance": true})
	if got := a.waitRestore("crm", r.ID); got.Status != "completed" {
		t.Fatalf("restore = %+v", got)
	}
	if c := b.configDocs("crm"); !maps.Equal(c, docs) {
		t.Errorf("config = %v", c)
	}
	mu.Lock()
	defer mu.Unlock()
	var runner string
	for _, kind := range []domain.RestoreActionKind{domain.ActStartMaintenance, domain.ActRequestPreBackup, domain.ActRecordPreBackup,
		domain.ActVerifyArchive, domain.ActImport, domain.ActVerify, domain.ActEndMaintenance} {
		who := runs[kind]
		if len(who) != 1 {
			t.Errorf("action %d ran %d times (%v), want once", kind, len(who), who)
			continue
		}
		if runner == "" {
			runner = who[0]
		}
		if who[0] != runner {
			t.Errorf("action %d ran on %s, the others on %s", kind, who[0], runner)
		}
	}
}

// While a restore runs (held here before its import), a second one into
// the same app is refused and changes nothing; maintenance cannot be ended
// under it.
func TestRestoreWhileOneRuns(t *testing.T) {
	stop := newStopper(t)
	n := startNodeWith(t, t.TempDir(), noMinInterval, func(h *daemon.TestHooks) {
		h.RestoreHook = func(ctx context.Context, _, _ string, act domain.RestoreAction) {
			if act.Kind == domain.ActImport {
				stop.stop(ctx)
			}
		}
	})
	n.setDocs("crm", map[string]string{"a": "1"})
	b := n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
	first := n.restore("crm", map[string]any{"backup_id": b.ID})
	select {
	case <-stop.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the restore never reached its import")
	}
	before := n.lastSeq()
	var p problem
	n.must(http.StatusConflict, "POST", "/v1/apps/crm/restores", map[string]any{"backup_id": b.ID,
		"pre_restore_backup": false, "auto_end_maintenance": false}).json(t, &p)
	if p.Code != domain.CodeRestoreInProgress || !strings.Contains(p.Detail, first.ID) {
		t.Errorf("second restore: %+v", p)
	}
	n.must(http.StatusConflict, "DELETE", "/v1/apps/crm/maintenance", nil).json(t, &p)
	if p.Code != domain.CodeRestoreInProgress {
		t.Errorf("ending maintenance under a restore: %+v", p)
	}
	if after := n.lastSeq(); after != before {
		t.Errorf("refusals moved the stream from %d to %d", before, after)
	}
}
