package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
)

// views are what the API answers of app billing: everything a restart
// must keep.
func (n *node) views(ids ...string) map[string]string {
	n.t.Helper()
	out := map[string]string{}
	for _, path := range []string{"/v1/apps/billing", "/v1/apps/billing/backups", "/v1/apps/billing/logs", "/v1/backups", "/v1/orgs", "/v1/apps/billing/admins", "/v1/ledger/keys"} {
		out[path] = string(n.must(http.StatusOK, "GET", path, nil).body)
	}
	for _, id := range ids {
		path := "/v1/apps/billing/backups/" + id + "/logs"
		out[path] = string(n.must(http.StatusOK, "GET", path, nil).body)
	}
	return out
}

func sameViews(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for path, w := range want {
		if got[path] != w {
			t.Errorf("%s: GET %s\n got %.400s\nwant %.400s", what, path, got[path], w)
		}
	}
}

// snapshotWorld makes a ledger worth a snapshot: backups ready, renamed
// more often than an app keeps whole (each with its own key), one deleted.
func snapshotWorld(t *testing.T, n *node) []string {
	n.putConfig("billing", "plans", `{"basic":5}`)
	var ids []string
	for range 2 {
		b := n.createBackup("billing", map[string]any{})
		n.waitStatus("billing", b.ID, 20*time.Second, domain.StatusReady)
		ids = append(ids, b.ID)
	}
	for i := range 80 {
		n.must(http.StatusOK, "PATCH", "/v1/apps/billing/backups/"+ids[1], map[string]any{"name": fmt.Sprintf("name %d", i)},
			"Idempotency-Key", fmt.Sprintf("rename-%d", i))
	}
	n.must(http.StatusNoContent, "DELETE", "/v1/apps/billing/backups/"+ids[0], nil)
	return ids
}

// A graceful stop leaves a snapshot; the next start loads it and folds
// only what came after: the API answers the same as before the stop and
// as a fold from the start, and a retry of a command older than the
// latest the app keeps whole is answered with its first result.
func TestRestartFromASnapshot(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, noMinInterval, nil)
	ids := snapshotWorld(t, n)
	before := n.views(ids...)
	seq := n.appliedSeq()
	n.stop()

	m := startNode(t, dir, noMinInterval, nil)
	if got := m.d.LoadedSnapshot(); got != seq {
		t.Fatalf("the restart loaded the snapshot after seq %d, want the one after %d (the stop's)", got, seq)
	}
	sameViews(t, "after a restart from the snapshot", m.views(ids...), before)
	first := m.must(http.StatusOK, "PATCH", "/v1/apps/billing/backups/"+ids[1], map[string]any{"name": "name 0"}, "Idempotency-Key", "rename-0")
	if first.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the retry of rename-0 after the restart was not answered as a replay: %s", first.body)
	}
	m.must(http.StatusUnprocessableEntity, "PATCH", "/v1/apps/billing/backups/"+ids[1], map[string]any{"name": "another"}, "Idempotency-Key", "rename-0")

	// A tail after the snapshot, then a crash: no new snapshot.
	for i := range 5 {
		m.must(http.StatusOK, "PATCH", "/v1/apps/billing/backups/"+ids[1], map[string]any{"name": fmt.Sprintf("tail %d", i)})
	}
	withTail := m.views(ids...)
	m.kill()

	p := startNode(t, dir, noMinInterval, nil)
	if got := p.d.LoadedSnapshot(); got != seq {
		t.Fatalf("after a crash the restart loaded the snapshot after seq %d, want %d", got, seq)
	}
	sameViews(t, "snapshot and tail", p.views(ids...), withTail)
	// Without the snapshot, the fold from the start answers the same.
	obs, err := p.js.ObjectStore(context.Background(), jetstream.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.Delete(context.Background(), "projection"); err != nil {
		t.Fatal(err)
	}
	p.kill()
	q := startNode(t, dir, noMinInterval, nil)
	if got := q.d.LoadedSnapshot(); got != 0 {
		t.Fatalf("loaded a snapshot after seq %d although none was stored", got)
	}
	sameViews(t, "a fold from the start", q.views(ids...), withTail)
}

// A snapshot that does not hold is ignored with a warning, and the ledger
// is folded from the start: one sealed by a key this ledger does not
// have, one whose bytes were changed after it was sealed, one that names
// another message of the stream than the one it was made after.
func TestSnapshotThatDoesNotHoldIsIgnored(t *testing.T) {
	tamper := map[string]func(info *njs.ObjectInfo, data []byte) (map[string]string, []byte){
		"sealed by a foreign key": func(info *njs.ObjectInfo, data []byte) (map[string]string, []byte) {
			md := maps.Clone(info.Metadata)
			md["key_id"] = "ed25519:" + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
			md["mac"] = domain.SnapshotMAC(bytes.Repeat([]byte{9}, 32), 1, md["hash"], data)
			return md, data
		},
		"changed after it was sealed": func(info *njs.ObjectInfo, data []byte) (map[string]string, []byte) {
			return info.Metadata, bytes.Replace(data, []byte(`"name 79"`), []byte(`"forged!"`), 1)
		},
		"named after another message": func(info *njs.ObjectInfo, data []byte) (map[string]string, []byte) {
			md := maps.Clone(info.Metadata)
			md["hash"] = strings.Repeat("0", 64)
			return md, data
		},
	}
	for name, change := range tamper {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			logs := &lockedBuffer{}
			tune := func(c *daemon.Config) {
				c.Rules.MinInterval = 0
				c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
			}
			n := startNode(t, dir, tune, nil)
			ids := snapshotWorld(t, n)
			before := n.views(ids...)
			n.stop()

			// Changed while no backupd runs: the embedded server alone.
			m := startNode(t, dir, tune, nil)
			if m.d.LoadedSnapshot() == 0 {
				t.Fatal("the genuine snapshot was not loaded")
			}
			ctx := context.Background()
			obs, err := m.js.ObjectStore(ctx, jetstream.SnapshotBucket)
			if err != nil {
				t.Fatal(err)
			}
			info, err := obs.GetInfo(ctx, "projection")
			if err != nil {
				t.Fatal(err)
			}
			data, err := obs.GetBytes(ctx, "projection")
			if err != nil {
				t.Fatal(err)
			}
			md, changed := change(info, data)
			if _, err := obs.Put(ctx, njs.ObjectMeta{Name: "projection", Metadata: md}, bytes.NewReader(changed)); err != nil {
				t.Fatal(err)
			}
			m.kill() // no snapshot of its own at the stop
			mark := len(logs.String())

			p := startNode(t, dir, tune, nil)
			if got := p.d.LoadedSnapshot(); got != 0 {
				t.Fatalf("loaded the snapshot after seq %d that was %s", got, name)
			}
			if !strings.Contains(logs.String()[mark:], "snapshot of the projection ignored") {
				t.Errorf("no warning that the snapshot was ignored; logs:\n%.2000s", logs.String()[mark:])
			}
			sameViews(t, "after an ignored snapshot", p.views(ids...), before)
		})
	}
}

// A snapshot sealed by a key that has since been rotated out is not
// loaded (one who held that key could forge a whole fold): the restart
// folds the ledger from the start, and the next stop seals with the new
// key, which the start after loads.
func TestSnapshotOfARetiredKeyIsNotLoaded(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, noMinInterval, nil)
	ids := snapshotWorld(t, n)
	n.stop()

	m := startNode(t, dir, noMinInterval, nil)
	if m.d.LoadedSnapshot() == 0 {
		t.Fatal("the snapshot of the first stop was not loaded")
	}
	m.must(http.StatusCreated, "POST", "/v1/ledger/keys/rotate", nil)
	want := m.views(ids...)
	m.kill() // the snapshot stays the one sealed by the old key

	p := startNode(t, dir, noMinInterval, nil)
	if got := p.d.LoadedSnapshot(); got != 0 {
		t.Fatalf("loaded the snapshot after seq %d sealed by the retired key", got)
	}
	sameViews(t, "after a fold from the start", p.views(ids...), want)
	seq := p.appliedSeq()
	p.stop()
	q := startNode(t, dir, noMinInterval, nil)
	if got := q.d.LoadedSnapshot(); got != seq {
		t.Fatalf("the snapshot sealed by the new key: loaded after seq %d, want %d", got, seq)
	}
	sameViews(t, "from the new key's snapshot", q.views(ids...), want)
}
