package domain

import (
	"crypto/sha256"
	"encoding/binary"
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
// kept small, about 41 bytes a command: a key as the first 16 bytes of its
// SHA-256 (two keys of one app meeting there is as likely as guessing a
// 128-bit secret) with the stream sequence of its event, found through an
// open-addressing table of slot numbers, and only the latest wholeRecords
// records whole.
type commandMemory struct {
	size int
	// ring holds the remembered commands in the order remembered: the
	// command of put number n (from 0) is in slot n%size.
	ring []rememberedCommand
	puts int
	// table maps a digest to its slot: slot+1 in the first free place
	// from the digest's home on (linear probing), 0 where free; its length
	// is a power of two at least twice the ring's.
	table []uint32
	// whole are the latest records whole: put number n in n%wholeRecords.
	whole []CommandRecord
}

type commandDigest [16]byte

type rememberedCommand struct {
	digest commandDigest
	seq    uint64
}

func newCommandMemory(size int) commandMemory {
	return commandMemory{size: size}
}

func digestOf(key string) commandDigest {
	sum := sha256.Sum256([]byte(key))
	return commandDigest(sum[:16])
}

// home is where the search for d in the table starts.
func (m *commandMemory) home(d commandDigest) int {
	return int(binary.BigEndian.Uint64(d[:8]) & uint64(len(m.table)-1))
}

// find returns the table position and the slot of d.
func (m *commandMemory) find(d commandDigest) (pos, slot int, ok bool) {
	if len(m.table) == 0 {
		return 0, 0, false
	}
	mask := len(m.table) - 1
	for i := m.home(d); ; i = (i + 1) & mask {
		v := m.table[i]
		if v == 0 {
			return 0, 0, false
		}
		if m.ring[v-1].digest == d {
			return i, int(v - 1), true
		}
	}
}

// insert adds slot, holding a digest not in the table.
func (m *commandMemory) insert(slot int) {
	mask := len(m.table) - 1
	i := m.home(m.ring[slot].digest)
	for m.table[i] != 0 {
		i = (i + 1) & mask
	}
	m.table[i] = uint32(slot + 1)
}

// remove frees table position pos, moving back the entries after it that
// would no longer be found.
func (m *commandMemory) remove(pos int) {
	mask := len(m.table) - 1
	m.table[pos] = 0
	for j := (pos + 1) & mask; m.table[j] != 0; j = (j + 1) & mask {
		k := m.home(m.ring[m.table[j]-1].digest)
		// The entry at j stays if its home is cyclically in (pos, j].
		if (pos < j && pos < k && k <= j) || (pos > j && (pos < k || k <= j)) {
			continue
		}
		m.table[pos], m.table[j] = m.table[j], 0
		pos = j
	}
}

// grow makes room for one more slot in the ring and the table.
func (m *commandMemory) grow() {
	n := len(m.ring)
	if n == cap(m.ring) {
		r := make([]rememberedCommand, n, min(max(2*n, 8), m.size))
		copy(r, m.ring)
		m.ring = r
	}
	m.ring = m.ring[:n+1]
	if 2*(n+1) > len(m.table) {
		m.table = make([]uint32, max(16, 2*len(m.table)))
		for slot := range n {
			m.insert(slot)
		}
	}
}

// get returns the record of key: whole, or with only its Seq and Recall
// set.
func (m *commandMemory) get(key string) (CommandRecord, bool) {
	_, slot, ok := m.find(digestOf(key))
	if !ok {
		return CommandRecord{}, false
	}
	// The put that filled slot: the latest with that remainder.
	age := ((m.puts-1-slot)%m.size + m.size) % m.size
	if age < len(m.whole) && age < wholeRecords {
		return m.whole[(m.puts-1-age)%wholeRecords], true
	}
	return CommandRecord{Seq: m.ring[slot].seq, Recall: true}, true
}

// put records key, forgetting the oldest record beyond the memory's size;
// a key already recorded keeps its first record.
func (m *commandMemory) put(key string, r CommandRecord) {
	d := digestOf(key)
	if _, _, ok := m.find(d); ok {
		return
	}
	slot := m.puts % m.size
	if len(m.ring) < m.size {
		m.grow()
	} else if pos, _, ok := m.find(m.ring[slot].digest); ok {
		m.remove(pos)
	}
	m.ring[slot] = rememberedCommand{digest: d, seq: r.Seq}
	m.insert(slot)
	r.Type = internType(r.Type)
	if len(m.whole) < wholeRecords {
		m.whole = append(m.whole, r)
	} else {
		m.whole[m.puts%wholeRecords] = r
	}
	m.puts++
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
