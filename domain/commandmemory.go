package domain

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// wholeRecords is how many of an app's latest command records its memory
// keeps whole: a retry comes soon after its command, and is answered
// without a read. Older records keep only their stream sequence, and are
// recalled from the event there (RecallRecord).
const wholeRecords = 64

// commandMemory is what an app remembers of its recent commands: at most
// size of them, so that a retry beyond the stream's duplicate window is
// still answered with the first result. An app of a long ledger remembers
// Rules.CommandMemory commands and a process folds every app, so it is
// kept small: a key as the first 16 bytes of its SHA-256 (two keys of one
// app meeting there is as likely as guessing a 128-bit secret) with the
// stream sequence of its event, and only the latest wholeRecords whole.
type commandMemory struct {
	size  int
	ring  []commandDigest // in the order remembered, from puts%size
	puts  int
	seqs  map[commandDigest]uint64
	whole map[commandDigest]CommandRecord
}

type commandDigest [16]byte

func newCommandMemory(size int) commandMemory {
	return commandMemory{size: size, seqs: map[commandDigest]uint64{}, whole: map[commandDigest]CommandRecord{}}
}

func digestOf(key string) commandDigest {
	sum := sha256.Sum256([]byte(key))
	return commandDigest(sum[:16])
}

// get returns the record of key: whole, or with only its Seq and Recall
// set.
func (m *commandMemory) get(key string) (CommandRecord, bool) {
	d := digestOf(key)
	seq, ok := m.seqs[d]
	if !ok {
		return CommandRecord{}, false
	}
	if r, ok := m.whole[d]; ok {
		return r, true
	}
	return CommandRecord{Seq: seq, Recall: true}, true
}

// put records key, forgetting the oldest record beyond the memory's size;
// a key already recorded keeps its first record.
func (m *commandMemory) put(key string, r CommandRecord) {
	d := digestOf(key)
	if _, ok := m.seqs[d]; ok {
		return
	}
	if pos := m.puts % m.size; len(m.ring) < m.size {
		m.ring = append(m.ring, d)
	} else {
		delete(m.seqs, m.ring[pos])
		delete(m.whole, m.ring[pos])
		m.ring[pos] = d
	}
	m.seqs[d] = r.Seq
	r.Type = internType(r.Type)
	m.whole[d] = r
	m.puts++
	if m.puts > wholeRecords && wholeRecords < m.size {
		delete(m.whole, m.ring[(m.puts-1-wholeRecords)%m.size])
	}
}

// internType returns the registry's string for a registered event type, so
// that records of one type share it.
func internType(typ string) string {
	if d, ok := registry.lookup(typ); ok {
		return d.name
	}
	return typ
}

// RecallRecord returns the whole record of the command with key whose
// record kept only its sequence (CommandRecord.Recall): from m, the event
// at that sequence. It returns an error when m is not that command's
// event.
func RecallRecord(m StoredMessage, key string) (CommandRecord, error) {
	var env Envelope
	if err := json.Unmarshal(m.Body, &env); err != nil {
		return CommandRecord{}, fmt.Errorf("recall the command at seq %d: %w", m.Seq, err)
	}
	if CommandKey(env.Actor, env.CommandID) != key {
		return CommandRecord{}, fmt.Errorf("recall the command at seq %d: its event is of another command (%s)", m.Seq, env.CommandID)
	}
	ev, err := DecodeEvent(&env)
	if err != nil {
		ev = nil // a type this process does not know: its record has the type only
	}
	return CommandRecord{Seq: m.Seq, Type: internType(env.Type), BackupID: BackupID(ev), RestoreID: RestoreID(ev), Hash: env.CommandHash}, nil
}
