package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/backupledger/backupledger/adapters/jetstream"
)

// snapshotAtStop bounds the snapshot made at a graceful stop.
const snapshotAtStop = 30 * time.Second

// loadSnapshot loads the projection's snapshot, if one is stored and
// holds, so that the follower folds only the ledger after it. A snapshot
// that does not hold (sealed by another ledger's key, altered, of another
// stream, of another format or rules) is ignored with a warning: the
// follower folds the ledger from the start.
func (d *Daemon) loadSnapshot(ctx context.Context, store *jetstream.EventStore) {
	start := time.Now()
	seq, size, err := d.loadSnapshotOnce(ctx, store)
	switch {
	case errors.Is(err, jetstream.ErrNoSnapshot):
		d.log.Info("no snapshot of the projection: folding the ledger from the start")
		return
	case err != nil:
		d.log.Warn("snapshot of the projection ignored: folding the ledger from the start", "err", err)
		return
	}
	d.follower.StartAfter(seq)
	d.snapSeq.Store(seq)
	d.loadedSnap = seq
	// The snapshot's bytes and their decoding are garbage now, several
	// times the state they made: give the memory back rather than keep
	// it until the heap grows into it.
	debug.FreeOSMemory()
	d.log.Info("snapshot of the projection loaded: folding the ledger after it", "seq", seq,
		"bytes", size, "took", time.Since(start).Round(time.Millisecond))
}

// loadSnapshotOnce loads the stored snapshot into the projection and
// returns its sequence and size.
func (d *Daemon) loadSnapshotOnce(ctx context.Context, store *jetstream.EventStore) (uint64, int, error) {
	current := func(keyID string) []byte {
		if cur, ok := d.signing.Current(); !ok || cur.ID != keyID {
			return nil
		}
		return d.signing.MACKeyOf(keyID)
	}
	snap, err := d.snapshots.Load(ctx, current, store.Message)
	if err != nil {
		return 0, 0, err
	}
	if err := d.proj.LoadSnapshot(snap); err != nil {
		return 0, 0, fmt.Errorf("after seq %d: %w", snap.Seq, err)
	}
	return snap.Seq, len(snap.Data), nil
}

// snapshotLoop makes a snapshot every Sweeps.SnapshotInterval once the
// projection has folded Sweeps.SnapshotEvery events since the last one.
func (d *Daemon) snapshotLoop(ctx context.Context) error {
	every := uint64(d.cfg.Sweeps.SnapshotEvery)
	if every == 0 {
		return nil
	}
	t := time.NewTicker(d.cfg.Sweeps.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !d.follower.CaughtUp() || d.proj.Applied() < d.snapSeq.Load()+every {
			continue
		}
		if err := d.saveSnapshot(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("snapshot of the projection", "err", err)
		}
	}
}

// saveSnapshot stores a snapshot of the projection, sealed with the
// ledger's current key; nothing while the ledger is unsigned or when
// nothing was folded since the last one.
func (d *Daemon) saveSnapshot(ctx context.Context) error {
	if d.proj.Applied() <= d.snapSeq.Load() {
		return nil
	}
	start := time.Now()
	snap, ok, err := d.proj.Snapshot()
	if err != nil || !ok || snap.KeyID == "" {
		return err
	}
	made := time.Since(start)
	mk := d.signing.MACKeyOf(snap.KeyID)
	if mk == nil {
		return fmt.Errorf("the ledger's key %s is not one this process holds", snap.KeyID)
	}
	if err := d.snapshots.Save(ctx, snap, snap.KeyID, mk); err != nil {
		return err
	}
	d.snapSeq.Store(snap.Seq)
	d.log.Info("snapshot of the projection stored", "seq", snap.Seq, "bytes", len(snap.Data),
		"made_in", made.Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// LoadedSnapshot returns the stream sequence of the snapshot of the
// projection this process loaded at its start, 0 if it folded the ledger
// from the start.
func (d *Daemon) LoadedSnapshot() uint64 { return d.loadedSnap }
