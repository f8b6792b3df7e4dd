package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/natstest"
)

// putArchive stores raw under name in the archive bucket behind the
// ledger's back, as a crash between storing and recording would leave it.
func (n *node) putArchive(name, app string, raw []byte) {
	n.t.Helper()
	ctx := context.Background()
	store, err := n.js.ObjectStore(ctx, "ledger_archives")
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := store.PutBytes(ctx, name, raw); err != nil {
		n.t.Fatal(err)
	}
	if err := store.UpdateMeta(ctx, name, njs.ObjectMeta{Name: name, Metadata: map[string]string{"app": app}}); err != nil {
		n.t.Fatal(err)
	}
}

// The situations of issue 6, made on purpose: an upload stored but never
// recorded (a crash in between), a failed backup whose archive was stored
// all the same, and a ready backup whose archive is gone. The orphans go
// after the grace period with an event each; the backup without an
// archive is marked corrupt. Live backups keep their archives.
func TestOrphanedAndMissingArchives(t *testing.T) {
	clock := &movableClock{}
	n := startNodeWith(t, t.TempDir(), func(c *daemon.Config) {
		c.Rules.MinInterval = 0
		c.Sweeps.OrphanInterval = time.Hour // the test sweeps
	}, func(h *daemon.TestHooks) {
		h.Clock = clock
		h.SourceWrapper = func(s service.Source) service.Source { return failingExports{s, map[string]bool{"broken": true}} }
	})
	n.putConfig("crm", "app.json", `{"v":1}`)
	n.putConfig("broken", "app.json", `{"v":1}`)
	keep := n.waitStatus("crm", n.createBackup("crm", map[string]any{"name": "keep"}).ID, 20*time.Second, domain.StatusReady)
	gone := n.waitStatus("crm", n.createBackup("crm", map[string]any{"name": "gone"}).ID, 20*time.Second, domain.StatusReady)
	failed := n.waitStatus("broken", n.createBackup("broken", map[string]any{}).ID, 20*time.Second, domain.StatusFailed)

	raw, err := n.archiveBytes(keep.ID)
	if err != nil {
		t.Fatal(err)
	}
	const upload = "01JUPLOADNEVERRECORDED0000"
	n.putArchive(upload, "crm", raw)
	n.putArchive(failed.ID, "broken", raw)
	store, err := n.js.ObjectStore(t.Context(), "ledger_archives")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(t.Context(), gone.ID); err != nil {
		t.Fatal(err)
	}

	// Within the grace period the orphans stay; the missing archive is
	// found at once.
	rep, err := n.d.OrphansNow(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep != (domain.OrphanReport{Missing: 1, Young: 2}) {
		t.Fatalf("first sweep %+v", rep)
	}
	b := n.backup("crm", gone.ID)
	if b.CorruptAt == nil || b.CorruptReason == nil || !strings.Contains(*b.CorruptReason, "missing") {
		t.Fatalf("backup without its archive: %+v", b)
	}
	var p problem
	n.must(http.StatusConflict, "GET", "/v1/apps/crm/backups/"+gone.ID+"/archive", nil).json(t, &p)
	if p.Code != domain.CodeBackupCorrupt {
		t.Errorf("download of a backup without archive: %+v", p)
	}

	clock.set(2 * time.Hour)
	if rep, err = n.d.OrphansNow(t.Context()); err != nil || rep != (domain.OrphanReport{Removed: 2}) {
		t.Fatalf("sweep after the grace period %+v, %v", rep, err)
	}
	objects := n.objects("ledger_archives")
	if slices.Contains(objects, upload) || slices.Contains(objects, failed.ID) || !slices.Contains(objects, keep.ID) {
		t.Fatalf("archives left: %v", objects)
	}
	orphanEvents := func(app string) []projections.LogEntry {
		var out []projections.LogEntry
		for _, e := range n.appLog(app) {
			if e.Event == domain.TypeArchiveOrphanRemoved {
				out = append(out, e)
			}
		}
		return out
	}
	if ev := orphanEvents("crm"); len(ev) != 1 || !strings.Contains(ev[0].Message, upload) || ev[0].Actor != domain.OrphanActor {
		t.Errorf("crm's orphan events: %+v", ev)
	}
	if ev := orphanEvents("broken"); len(ev) != 1 || !strings.Contains(ev[0].Message, "failed") {
		t.Errorf("broken's orphan events: %+v", ev)
	}
	// Nothing more to do, and the kept backup is still whole.
	if rep, err = n.d.OrphansNow(t.Context()); err != nil || rep != (domain.OrphanReport{}) {
		t.Fatalf("third sweep %+v, %v", rep, err)
	}
	if v := n.backup("crm", keep.ID); v.CorruptAt != nil {
		t.Errorf("kept backup: %+v", v)
	}
}

// stopAfterExport emits every item of the source and then holds the export
// at its stopper: the archive's chunks are written, its record is not.
type stopAfterExport struct {
	service.Source
	stop *stopper
}

func (s stopAfterExport) Export(ctx context.Context, app string, emit func(domain.Item) error) error {
	if err := s.Source.Export(ctx, app, emit); err != nil {
		return err
	}
	s.stop.stop(ctx)
	return ctx.Err()
}

// archiveChunks returns the NUIDs of the live archives and the chunk count
// of every object in the archive bucket's stream, live or not.
func (n *node) archiveChunks() (live map[string]string, chunks map[string]uint64) {
	n.t.Helper()
	ctx := context.Background()
	store, err := n.js.ObjectStore(ctx, "ledger_archives")
	if err != nil {
		n.t.Fatal(err)
	}
	list, err := store.List(ctx)
	if err != nil && !strings.Contains(err.Error(), "no objects found") {
		n.t.Fatal(err)
	}
	live = map[string]string{}
	for _, o := range list {
		live[o.NUID] = o.Name
	}
	st, err := n.js.Stream(ctx, "OBJ_ledger_archives")
	if err != nil {
		n.t.Fatal(err)
	}
	prefix := "$O.ledger_archives.C."
	info, err := st.Info(ctx, njs.WithSubjectFilter(prefix+">"))
	if err != nil {
		n.t.Fatal(err)
	}
	chunks = map[string]uint64{}
	for subject, count := range info.State.Subjects {
		chunks[strings.TrimPrefix(subject, prefix)] = count
	}
	return live, chunks
}

// A backupd killed while it writes an archive leaves the chunks of an
// archive that was never completed. After the restart the backup is made
// again, and the orphan sweep past its grace period removes the leftover
// chunks: the store then holds the live archives and nothing else.
func TestKilledMidArchiveLeavesOnlyLiveArchives(t *testing.T) {
	dir := t.TempDir()
	stop := newStopper(t)
	tune := func(c *daemon.Config) {
		c.Rules.MinInterval = 0
		c.Sweeps.OrphanInterval = time.Hour // the test sweeps
	}
	a := startNode(t, dir, tune, func(s service.Source) service.Source { return stopAfterExport{s, stop} })
	for i := range 4 {
		// Random bytes, hex: the archive is several chunks even compressed.
		a.putConfig("crm", fmt.Sprintf("part-%d.txt", i), hex.EncodeToString(randomBytes(t, 150_000)))
	}
	b1 := a.createBackup("crm", map[string]any{"name": "killed mid-archive"})
	select {
	case <-stop.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the export never ended")
	}
	var leftover string
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		live, chunks := a.archiveChunks()
		for nuid := range chunks {
			if _, ok := live[nuid]; !ok {
				leftover = nuid
				return nil
			}
		}
		return fmt.Errorf("no chunks of an unfinished archive yet (live %v, chunks %v)", live, chunks)
	})
	a.kill()

	clock := &movableClock{}
	b := startNodeWith(t, dir, tune, func(h *daemon.TestHooks) { h.Clock = clock })
	b.waitStatus("crm", b1.ID, 60*time.Second, domain.StatusReady)
	_, chunks := b.archiveChunks()
	left := chunks[leftover]
	if left == 0 {
		t.Fatalf("the killed write's chunks are gone before the sweep: %v", chunks)
	}
	clock.set(2 * time.Hour)
	rep, err := b.d.OrphansNow(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unfinished != 1 {
		t.Errorf("sweep %+v, want the one unfinished archive removed", rep)
	}
	live, chunks := b.archiveChunks()
	if len(live) != 1 || !slices.Contains(slices.Collect(maps.Values(live)), b1.ID) {
		t.Errorf("live archives %v, want only backup %s's", live, b1.ID)
	}
	var kept uint64
	for nuid, n := range chunks {
		kept += n
		if _, ok := live[nuid]; !ok {
			t.Errorf("%d chunks of object %s, which is not a live archive", n, nuid)
		}
	}
	t.Logf("summary: the killed write left %d chunks, the sweep removed %d unfinished archive(s); the store holds %d archive(s) in %d chunks",
		left, rep.Unfinished, len(live), kept)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
