package ensure_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
	"github.com/backupledger/backupledger/test/natstest"
)

// updates counts the update requests of the JetStream API for stream name
// from now on.
func updates(t *testing.T, nc *nats.Conn, name string) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	sub, err := nc.Subscribe("$JS.API.STREAM.UPDATE."+name, func(*nats.Msg) { n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

// settled returns n once every request sent so far has reached the
// subscription (a round trip through the server after them).
func settled(t *testing.T, nc *nats.Conn, n *atomic.Int64) int64 {
	t.Helper()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return n.Load()
}

func TestStreamIsUpdatedOnlyWhenItsConfigChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	nc, js := natstest.Connect(t, natstest.Server(t, ""))
	n := updates(t, nc, "S")
	md := map[string]string{"owner": "tests"}
	cfg := njs.StreamConfig{Name: "S", Subjects: []string{"s.>"}, MaxAge: time.Hour, Metadata: md}

	s, err := ensure.Stream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if got.Metadata["owner"] != "tests" || got.Metadata[ensure.MetadataKey] == "" {
		t.Fatalf("metadata = %v, want the caller's and the digest", got.Metadata)
	}
	if len(md) != 1 {
		t.Fatalf("the caller's metadata map was changed: %v", md)
	}
	for range 3 {
		if _, err := ensure.Stream(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	// The stamped configuration, passed back, is the same configuration.
	if _, err := ensure.Stream(ctx, js, got); err != nil {
		t.Fatal(err)
	}
	if c := settled(t, nc, n); c > 1 {
		t.Fatalf("%d update requests for an unchanged config, want at most the create's own", c)
	}
	before := settled(t, nc, n)

	cfg.MaxAge = 2 * time.Hour
	s, err = ensure.Stream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.CachedInfo().Config.MaxAge != 2*time.Hour {
		t.Fatalf("max age = %s after a change, want 2h", s.CachedInfo().Config.MaxAge)
	}
	if c := settled(t, nc, n) - before; c != 1 {
		t.Fatalf("%d update requests for a changed config, want 1", c)
	}
}

func TestStreamFromBeforeTheDigestIsUpdatedOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	nc, js := natstest.Connect(t, natstest.Server(t, ""))
	cfg := njs.StreamConfig{Name: "OLD", Subjects: []string{"old.>"}}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	n := updates(t, nc, "OLD")
	for range 3 {
		if _, err := ensure.Stream(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if c := settled(t, nc, n); c != 1 {
		t.Fatalf("%d update requests, want 1 (to record the digest)", c)
	}
}

func TestBucketsAreUpdatedOnlyWhenTheirConfigChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	nc, js := natstest.Connect(t, natstest.Server(t, ""))
	kvUpdates, objUpdates := updates(t, nc, "KV_cfg"), updates(t, nc, "OBJ_arch")

	kvCfg := njs.KeyValueConfig{Bucket: "cfg", History: 2}
	objCfg := njs.ObjectStoreConfig{Bucket: "arch", Description: "archives"}
	for range 3 {
		if _, err := ensure.KeyValue(ctx, js, kvCfg); err != nil {
			t.Fatal(err)
		}
		if _, err := ensure.ObjectStore(ctx, js, objCfg); err != nil {
			t.Fatal(err)
		}
	}
	kvBase, objBase := settled(t, nc, kvUpdates), settled(t, nc, objUpdates)
	if kvBase > 1 || objBase > 1 {
		t.Fatalf("update requests for unchanged buckets: kv %d, object store %d; want at most the create's own", kvBase, objBase)
	}

	kvCfg.History, objCfg.Description = 5, "the archives"
	kv, err := ensure.KeyValue(ctx, js, kvCfg)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := ensure.ObjectStore(ctx, js, objCfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ost, err := obs.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != 5 || ost.Description() != "the archives" {
		t.Fatalf("after a change: history %d, description %q", st.History(), ost.Description())
	}
	if k, o := settled(t, nc, kvUpdates)-kvBase, settled(t, nc, objUpdates)-objBase; k != 1 || o != 1 {
		t.Fatalf("update requests for changed buckets: kv %d, object store %d; want 1 each", k, o)
	}
}

// Processes that start together create the same buckets at once, and on a
// cluster the create that lost answers "stream name already in use"
// (seen in CI as replicas started): the set-up tries again, finds the
// bucket, and checks its configuration, instead of failing the start.
func TestRetryAfterALostCreateRace(t *testing.T) {
	tries := 0
	got, err := ensure.Retry(t.Context(), func(context.Context) (string, error) {
		if tries++; tries == 1 {
			return "", fmt.Errorf("create or update kv bucket: %w", njs.ErrStreamNameAlreadyInUse)
		}
		return "bucket", nil
	})
	if err != nil || got != "bucket" || tries != 2 {
		t.Fatalf("Retry after a lost create race = %q, %v after %d tries; want the bucket after 2", got, err, tries)
	}
	// Another refusal is not tried again.
	tries = 0
	_, err = ensure.Retry(t.Context(), func(context.Context) (string, error) {
		tries++
		return "", njs.ErrStreamNotFound
	})
	if err == nil || tries != 1 {
		t.Fatalf("Retry of a refusal: %v after %d tries, want the error after 1", err, tries)
	}
}
