package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// SnapshotBucket is the object store bucket of the projection's
// snapshots, in the ledger's account: one object, the latest snapshot any
// backupd made.
const SnapshotBucket = "ledger_snapshots"

// snapshotObject is the name of the snapshot in SnapshotBucket.
const snapshotObject = "projection"

// The metadata of a snapshot object.
const (
	snapshotSeq   = "seq"
	snapshotHash  = "hash"
	snapshotKeyID = "key_id"
	snapshotMAC   = "mac"
)

// MaxSnapshotBytes bounds the snapshot a process reads at its start: a
// fold of a million events is about 75 MB.
const MaxSnapshotBytes = 1 << 30

// ErrNoSnapshot says that no snapshot is stored.
var ErrNoSnapshot = errors.New("no snapshot stored")

// Snapshots keeps the projection's latest snapshot in SnapshotBucket,
// sealed with the ledger's keys (domain.SnapshotMAC).
type Snapshots struct {
	obs njs.ObjectStore
}

// NewSnapshots creates SnapshotBucket (replicas copies) or updates it,
// and returns Snapshots on it.
func NewSnapshots(ctx context.Context, js njs.JetStream, replicas int) (*Snapshots, error) {
	obs, err := ensure.ObjectStore(ctx, js, njs.ObjectStoreConfig{
		Bucket:      SnapshotBucket,
		Description: "backupledger: the latest snapshot of the projection, so that a restart folds only the ledger's tail",
		Storage:     njs.FileStorage,
		Replicas:    max(1, replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", SnapshotBucket, err)
	}
	return &Snapshots{obs: obs}, nil
}

// Save stores snap, sealed under macKey, the event MAC key of the ledger
// key keyID, in place of the snapshot stored before.
func (s *Snapshots) Save(ctx context.Context, snap projections.Snapshot, keyID string, macKey []byte) error {
	if keyID == "" || macKey == nil {
		return errors.New("a snapshot is sealed with a key of the ledger")
	}
	// Replicas share the object: one that is behind does not replace a
	// newer snapshot (two writing at once may still cross; the next
	// snapshot mends it).
	if info, err := s.obs.GetInfo(ctx, snapshotObject); err == nil {
		if stored, err := strconv.ParseUint(info.Metadata[snapshotSeq], 10, 64); err == nil && stored >= snap.Seq {
			return nil
		}
	}
	meta := njs.ObjectMeta{Name: snapshotObject, Description: fmt.Sprintf("projection after seq %d", snap.Seq),
		Metadata: map[string]string{
			snapshotSeq:   strconv.FormatUint(snap.Seq, 10),
			snapshotHash:  snap.Hash,
			snapshotKeyID: keyID,
			snapshotMAC:   domain.SnapshotMAC(macKey, snap.Seq, snap.Hash, snap.Data),
		}}
	if _, err := s.obs.Put(ctx, meta, bytes.NewReader(snap.Data)); err != nil {
		return fmt.Errorf("store snapshot after seq %d: %w", snap.Seq, err)
	}
	return nil
}

// Load returns the stored snapshot if it holds: sealed by the ledger's
// current key (macKey returns its event MAC key, nil for any other key,
// retired ones included: a snapshot made before a rotation is not
// loaded), and made of this stream (the message at its sequence,
// read with message, hashes as it says). It returns ErrNoSnapshot when
// none is stored, and an error saying why when the one stored does not
// hold: the caller folds the stream from the start.
func (s *Snapshots) Load(ctx context.Context, macKey func(keyID string) []byte,
	message func(ctx context.Context, seq uint64) (domain.StoredMessage, error)) (projections.Snapshot, error) {
	info, err := s.obs.GetInfo(ctx, snapshotObject)
	if errors.Is(err, njs.ErrObjectNotFound) {
		return projections.Snapshot{}, ErrNoSnapshot
	}
	if err != nil {
		return projections.Snapshot{}, fmt.Errorf("snapshot info: %w", err)
	}
	if info.Size > MaxSnapshotBytes {
		return projections.Snapshot{}, fmt.Errorf("snapshot of %d bytes, more than the %d a snapshot may have", info.Size, uint64(MaxSnapshotBytes))
	}
	md := info.Metadata
	seq, err := strconv.ParseUint(md[snapshotSeq], 10, 64)
	if err != nil || seq == 0 {
		return projections.Snapshot{}, fmt.Errorf("snapshot without a sequence (%q)", md[snapshotSeq])
	}
	mk := macKey(md[snapshotKeyID])
	if mk == nil {
		return projections.Snapshot{}, fmt.Errorf("snapshot after seq %d sealed by key %q, which is not a key of this ledger that this process holds", seq, md[snapshotKeyID])
	}
	data, err := s.obs.GetBytes(ctx, snapshotObject)
	if err != nil {
		return projections.Snapshot{}, fmt.Errorf("read snapshot after seq %d: %w", seq, err)
	}
	snap := projections.Snapshot{Seq: seq, Hash: md[snapshotHash], Data: data, KeyID: md[snapshotKeyID]}
	if !domain.ValidSnapshotMAC(mk, snap.Seq, snap.Hash, snap.Data, md[snapshotMAC]) {
		return projections.Snapshot{}, fmt.Errorf("snapshot after seq %d: its seal does not hold under key %s", seq, md[snapshotKeyID])
	}
	m, err := message(ctx, seq)
	if err != nil {
		return projections.Snapshot{}, fmt.Errorf("snapshot after seq %d: the stream's message there: %w", seq, err)
	}
	if domain.HashEvent(m.Body) != snap.Hash {
		return projections.Snapshot{}, fmt.Errorf("snapshot after seq %d was made of another stream: the message there is not the one it names", seq)
	}
	return snap, nil
}
