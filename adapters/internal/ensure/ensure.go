// Package ensure creates the JetStream streams, key-value buckets and
// object stores of backupledger, or updates them to the wanted
// configuration, and leaves alone one that has it already.
//
// Every backupd runs its set-up at every start, and several replicas often
// start together. Updating a stream to the configuration it has is not free
// (a proposal on a cluster) and not harmless: nats-server (v2.15) updates
// the stream's store while a consumer of the same stream may be created by
// another replica, a data race the race detector reports. So each
// configuration carries its own digest in the stream's metadata
// (MetadataKey), and a stream whose digest matches is not updated. A stream
// made before the digest is updated once.
package ensure

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/natserr"
)

// tryFor is how long one try of a set-up call may take, and pauseMax the
// longest pause between tries: a cluster just started may take a while to
// elect the leaders of its streams, and set-up waits for them (until its
// context ends) instead of failing the start.
const (
	tryFor   = 5 * time.Second
	pauseMax = 2 * time.Second
)

// Retry calls f with a context bounded by tryFor until it succeeds, fails
// for good (natserr.Transient says no, and it is no lost create race), or
// ctx ends.
func Retry[T any](ctx context.Context, f func(ctx context.Context) (T, error)) (T, error) {
	pause := 100 * time.Millisecond
	for {
		tctx, cancel := context.WithTimeout(ctx, tryFor)
		v, err := f(tctx)
		cancel()
		if err == nil || !(natserr.Transient(err) || createRace(err)) || ctx.Err() != nil {
			return v, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		pause = min(2*pause, pauseMax)
	}
}

// createRace reports whether err is the answer to a create that another
// process's create of the same stream or bucket won a moment before
// (replicas that start together): the next try finds it and checks its
// configuration.
func createRace(err error) bool {
	var apiErr *njs.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == njs.JSErrCodeStreamNameInUse
}

// Consumer creates or updates the durable consumer cfg of stream, tried
// again (Retry) while the cluster cannot answer.
func Consumer(ctx context.Context, js njs.JetStream, stream string, cfg njs.ConsumerConfig) (njs.Consumer, error) {
	return Retry(ctx, func(ctx context.Context) (njs.Consumer, error) {
		return js.CreateOrUpdateConsumer(ctx, stream, cfg)
	})
}

// MetadataKey is the stream metadata key that holds the digest of the
// configuration the stream was last created or updated with.
const MetadataKey = "backupledger.config"

// digest returns the digest of cfg, whose metadata must not hold
// MetadataKey yet.
func digest(cfg any) string {
	b, err := json.Marshal(cfg)
	if err != nil {
		// Never: the configurations are plain values. An empty digest never
		// matches, so the stream is updated as before.
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// stamp sets *md to a copy of itself without MetadataKey, takes the digest
// of the configuration cfg returns (which holds *md), and sets *md to a
// copy with MetadataKey set to that digest, which it returns. The caller's
// map is not changed.
func stamp(md *map[string]string, cfg func() any) string {
	base := maps.Clone(*md)
	delete(base, MetadataKey) // a copy of an earlier, stamped config
	*md = base
	d := digest(cfg())
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	out[MetadataKey] = d
	*md = out
	return d
}

// current reports whether metadata carries digest d.
func current(md map[string]string, d string) bool { return d != "" && md[MetadataKey] == d }

// Stream returns the stream cfg.Name with the configuration cfg: created
// when missing (also when another process creates it meanwhile), updated
// when its configuration is not cfg, and untouched otherwise. The stream's
// metadata gets MetadataKey besides cfg.Metadata. While the cluster cannot
// answer (no leader yet), it tries again until ctx ends.
func Stream(ctx context.Context, js njs.JetStream, cfg njs.StreamConfig) (njs.Stream, error) {
	return Retry(ctx, func(ctx context.Context) (njs.Stream, error) { return streamOnce(ctx, js, cfg) })
}

// streamOnce is one try of Stream.
func streamOnce(ctx context.Context, js njs.JetStream, cfg njs.StreamConfig) (njs.Stream, error) {
	d := stamp(&cfg.Metadata, func() any { return cfg })
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, njs.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, cfg)
		if !errors.Is(err, njs.ErrStreamNameAlreadyInUse) {
			return s, err
		}
		// Another process created it with another configuration (an older
		// or newer backupd): look again.
		s, err = js.Stream(ctx, cfg.Name)
	}
	if err != nil {
		return nil, err
	}
	if current(s.CachedInfo().Config.Metadata, d) {
		return s, nil
	}
	return js.UpdateStream(ctx, cfg)
}

// KeyValue returns the key-value bucket cfg.Bucket with the configuration
// cfg, as Stream does for streams.
func KeyValue(ctx context.Context, js njs.JetStream, cfg njs.KeyValueConfig) (njs.KeyValue, error) {
	return Retry(ctx, func(ctx context.Context) (njs.KeyValue, error) { return keyValueOnce(ctx, js, cfg) })
}

// keyValueOnce is one try of KeyValue.
func keyValueOnce(ctx context.Context, js njs.JetStream, cfg njs.KeyValueConfig) (njs.KeyValue, error) {
	d := stamp(&cfg.Metadata, func() any { return cfg })
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		st, err := kv.Status(ctx)
		if err != nil {
			return nil, err
		}
		if current(st.Metadata(), d) {
			return kv, nil
		}
	} else if !errors.Is(err, njs.ErrBucketNotFound) {
		return nil, err
	}
	return js.CreateOrUpdateKeyValue(ctx, cfg)
}

// ObjectStore returns the object store cfg.Bucket with the configuration
// cfg, as Stream does for streams.
func ObjectStore(ctx context.Context, js njs.JetStream, cfg njs.ObjectStoreConfig) (njs.ObjectStore, error) {
	return Retry(ctx, func(ctx context.Context) (njs.ObjectStore, error) { return objectStoreOnce(ctx, js, cfg) })
}

// objectStoreOnce is one try of ObjectStore.
func objectStoreOnce(ctx context.Context, js njs.JetStream, cfg njs.ObjectStoreConfig) (njs.ObjectStore, error) {
	d := stamp(&cfg.Metadata, func() any { return cfg })
	obs, err := js.ObjectStore(ctx, cfg.Bucket)
	if err == nil {
		st, err := obs.Status(ctx)
		if err != nil {
			return nil, err
		}
		if current(st.Metadata(), d) {
			return obs, nil
		}
	} else if !errors.Is(err, njs.ErrBucketNotFound) && !errors.Is(err, njs.ErrStreamNotFound) {
		return nil, err
	}
	return js.CreateOrUpdateObjectStore(ctx, cfg)
}

// LeaderReads has the reads of bucket served by its stream's leader only,
// for a bucket whose reads decide something: a direct get, which a KV
// bucket allows by default, is answered by any replica, which may not
// have caught up yet (right after a failover, say). It returns the bucket
// bound anew, so that its reads go to the leader.
func LeaderReads(ctx context.Context, js njs.JetStream, bucket string) (njs.KeyValue, error) {
	return Retry(ctx, func(ctx context.Context) (njs.KeyValue, error) { return leaderReadsOnce(ctx, js, bucket) })
}

// leaderReadsOnce is one try of LeaderReads.
func leaderReadsOnce(ctx context.Context, js njs.JetStream, bucket string) (njs.KeyValue, error) {
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, err
	}
	if cfg := st.CachedInfo().Config; cfg.AllowDirect {
		cfg.AllowDirect = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return nil, err
		}
	}
	return js.KeyValue(ctx, bucket)
}
