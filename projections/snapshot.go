package projections

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// snapshotFormat is the version of a snapshot's JSON; a snapshot of
// another format is not loaded.
const snapshotFormat = 1

// Snapshot is the whole state of a Store after the message at stream
// sequence Seq, whose body hashes to Hash: Data, its JSON. A process
// loads it (LoadSnapshot) and follows the stream from Seq+1 instead of
// folding it from the start; loaded and folded on, it is the state folded
// from the start, byte for byte.
type Snapshot struct {
	Seq  uint64
	Hash string
	Data []byte
	// KeyID is the ledger's current key when the snapshot was made, ""
	// while the ledger was unsigned (not part of Data).
	KeyID string
}

// storeSnapshot is the JSON of a Snapshot.
type storeSnapshot struct {
	Format        int                             `json:"format"`
	Applied       uint64                          `json:"applied"`
	AppliedHash   string                          `json:"applied_hash"`
	CommandMemory int                             `json:"command_memory"`
	LogMemory     int                             `json:"log_memory"`
	Apps          []appSnapshot                   `json:"apps"`
	Directory     domain.DirectorySnapshot        `json:"directory"`
	Check         domain.CheckSnapshot            `json:"check"`
	Rejected      map[string]uint64               `json:"rejected"`
	Refused       map[uint64]string               `json:"refused"`
	LastRefused   uint64                          `json:"last_refused"`
	RestoreKeys   map[string]domain.CommandRecord `json:"restore_keys"`
}

type appSnapshot struct {
	State   domain.AppSnapshot `json:"state"`
	Log     []entrySnapshot    `json:"log"`
	Dropped int                `json:"dropped"`
	Backups map[string]uint64  `json:"backups"`
}

type entrySnapshot struct {
	Seq   uint64          `json:"seq"`
	Time  time.Time       `json:"time"`
	Actor string          `json:"actor,omitempty"`
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data,omitempty"`
	Note  string          `json:"note,omitempty"`
}

// Snapshot returns the whole state of the store; false when it has
// applied nothing. Messages are not applied while it copies the state;
// it encodes the copy meanwhile.
func (s *Store) Snapshot() (Snapshot, bool, error) {
	snap, events, snapshot, ok := s.copyState()
	if !ok {
		return Snapshot{}, false, nil
	}
	for i := range snap.Apps {
		for j := range snap.Apps[i].Log {
			if ev := events[i][j]; ev != nil {
				data, err := json.Marshal(ev)
				if err != nil {
					return Snapshot{}, false, fmt.Errorf("snapshot of app %s: %w", snap.Apps[i].State.ID, err)
				}
				snap.Apps[i].Log[j].Data = data
			}
		}
	}
	data, err := json.Marshal(snap)
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("snapshot: %w", err)
	}
	snapshot.Data = data
	return snapshot, true, nil
}

// copyState copies the whole state of the store under its lock: the
// snapshot without the log entries' events, which it returns apart
// (events never change once applied), by app and entry.
func (s *Store) copyState() (storeSnapshot, [][]domain.Event, Snapshot, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.applied == 0 {
		return storeSnapshot{}, nil, Snapshot{}, false
	}
	snap := storeSnapshot{Format: snapshotFormat, Applied: s.applied, AppliedHash: s.appliedHash,
		CommandMemory: s.commandMemory, LogMemory: s.logMemory, Directory: s.dir.Snapshot(), Check: s.check.Snapshot(),
		Rejected: maps.Clone(s.rejected), Refused: maps.Clone(s.refused), LastRefused: s.lastRefused, RestoreKeys: maps.Clone(s.restoreKeys)}
	var events [][]domain.Event
	for _, id := range slices.Sorted(maps.Keys(s.apps)) {
		m := s.apps[id]
		a := appSnapshot{State: m.state.Snapshot(), Dropped: m.log.dropped, Backups: maps.Clone(m.log.backups),
			Log: make([]entrySnapshot, len(m.log.entries))}
		evs := make([]domain.Event, len(m.log.entries))
		for i, e := range m.log.entries {
			a.Log[i] = entrySnapshot{Seq: e.seq, Time: e.time, Actor: e.actor, Type: e.typ, Note: e.note}
			evs[i] = e.ev
		}
		snap.Apps = append(snap.Apps, a)
		events = append(events, evs)
	}
	snapshot := Snapshot{Seq: s.applied, Hash: s.appliedHash}
	if k, ok := s.check.CurrentKey(); ok {
		snapshot.KeyID = k.ID
	}
	return snap, events, snapshot, true
}

// errSnapshotMismatch refuses a snapshot made under other rules.
var errSnapshotMismatch = errors.New("snapshot made with another command or log memory")

// LoadSnapshot replaces the state of a store that has applied nothing by
// the snapshot's, and tells OnKeys of the current key. It returns an error,
// and changes nothing, when data is not a snapshot of this format, was made
// with another command or log memory, or does not hold together.
func (s *Store) LoadSnapshot(snap Snapshot) error {
	var st storeSnapshot
	dec := json.NewDecoder(bytes.NewReader(snap.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	switch {
	case st.Format != snapshotFormat:
		return fmt.Errorf("snapshot of format %d, want %d", st.Format, snapshotFormat)
	case st.Applied == 0 || st.Applied != snap.Seq || st.AppliedHash != snap.Hash:
		return fmt.Errorf("snapshot after seq %d (%s), named as after seq %d (%s)", st.Applied, st.AppliedHash, snap.Seq, snap.Hash)
	case s.pin != "" && len(st.Check.Keys) > 0 && st.Check.Keys[0].ID != s.pin:
		return fmt.Errorf("snapshot of a ledger whose genesis key is %s, not the pinned %s", st.Check.Keys[0].ID, s.pin)
	case st.CommandMemory != s.commandMemory || st.LogMemory != s.logMemory:
		return fmt.Errorf("%w: command memory %d and log memory %d, this process %d and %d", errSnapshotMismatch,
			st.CommandMemory, st.LogMemory, s.commandMemory, s.logMemory)
	}
	apps := map[string]*appModel{}
	for _, as := range st.Apps {
		a, err := domain.AppFromSnapshot(as.State)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		if _, dup := apps[a.ID()]; dup {
			return fmt.Errorf("snapshot: app %s twice", a.ID())
		}
		m := &appModel{state: a, log: appLog{dropped: as.Dropped, backups: as.Backups}}
		if m.log.backups == nil {
			m.log.backups = map[string]uint64{}
		}
		for _, es := range as.Log {
			e := logged{seq: es.Seq, time: es.Time, actor: es.Actor, typ: es.Type, note: es.Note}
			if es.Data != nil {
				ev, err := domain.DecodeCurrent(es.Type, es.Data)
				if err != nil {
					return fmt.Errorf("snapshot: app %s, entry at seq %d: %w", a.ID(), es.Seq, err)
				}
				e.ev, e.typ = ev, ev.EventType()
			}
			m.log.entries = append(m.log.entries, e)
		}
		apps[a.ID()] = m
	}
	dir, err := domain.DirectoryFromSnapshot(st.Directory)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	check := s.newCheck()
	if err := check.Restore(st.Check); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	rejected := map[string]uint64{}
	for _, r := range RejectReasons {
		rejected[r] = st.Rejected[r]
	}
	s.mu.Lock()
	if s.applied != 0 {
		s.mu.Unlock()
		return errors.New("snapshot: the store has applied messages already")
	}
	s.apps, s.dir, s.check, s.rejected = apps, dir, check, rejected
	s.refused, s.lastRefused = cmpMap(st.Refused), st.LastRefused
	s.restoreKeys = cmpMap(st.RestoreKeys)
	s.applied, s.appliedHash = st.Applied, st.AppliedHash
	cur, hasKey := s.check.CurrentKey()
	s.mu.Unlock()
	if hasKey {
		s.onKey(cur)
	}
	s.notify(st.Applied)
	return nil
}

// cmpMap returns m, or an empty map for nil.
func cmpMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}
