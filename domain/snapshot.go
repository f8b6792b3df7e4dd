package domain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"
)

// The states the projection folds (App, Directory, LedgerCheck) as a
// snapshot keeps them: every field, so that a state loaded from a snapshot
// and folded on is the state folded from the start (projections tests
// compare both). Encoded as JSON, maps in key order: the same state makes
// the same bytes.

// AppSnapshot is the whole state of an App.
type AppSnapshot struct {
	ID            string              `json:"id"`
	Seq           uint64              `json:"seq"`
	LastHash      string              `json:"last_hash"`
	Events        int                 `json:"events"`
	Backups       map[string]*Backup  `json:"backups"`
	Deleted       []string            `json:"deleted"`
	LastManualAt  time.Time           `json:"last_manual_at"`
	RecentManual  []ManualSnapshot    `json:"recent_manual"`
	LastReadyAt   time.Time           `json:"last_ready_at"`
	Commands      CommandsSnapshot    `json:"commands"`
	Maintenance   Maintenance         `json:"maintenance"`
	Restores      map[string]*Restore `json:"restores"`
	RestoreOrder  []string            `json:"restore_order"`
	ActiveRestore string              `json:"active_restore"`
	FirstAt       time.Time           `json:"first_at"`
	Night         NightState          `json:"night"`
}

// ManualSnapshot is one of an app's recent manual requests.
type ManualSnapshot struct {
	BackupID string    `json:"backup_id"`
	At       time.Time `json:"at"`
}

// CommandsSnapshot is an app's command memory: Ring its slots (a 16-byte
// digest and an 8-byte sequence each), Table its slot table (4 bytes an
// entry), Whole the latest records.
type CommandsSnapshot struct {
	Size  int             `json:"size"`
	Puts  int             `json:"puts"`
	Ring  []byte          `json:"ring"`
	Table []byte          `json:"table"`
	Whole []CommandRecord `json:"whole"`
}

// Snapshot returns the whole state of a, a copy that shares nothing that
// Apply changes: it may be encoded while a folds on.
func (a *App) Snapshot() AppSnapshot {
	s := AppSnapshot{ID: a.id, Seq: a.seq, LastHash: a.lastHash, Events: a.events, Backups: make(map[string]*Backup, len(a.backups)),
		Deleted: sortedKeys(a.deleted), LastManualAt: a.lastManualAt, LastReadyAt: a.lastReadyAt,
		Commands: a.commands.snapshot(), Maintenance: a.maintenance, Restores: make(map[string]*Restore, len(a.restores)),
		RestoreOrder: slices.Clone(a.restoreOrder), ActiveRestore: a.activeRestore, FirstAt: a.firstAt, Night: a.night}
	for id, b := range a.backups {
		c := *b
		s.Backups[id] = &c
	}
	for id, r := range a.restores {
		c := *r
		c.Migrations, c.Steps = slices.Clone(r.Migrations), slices.Clone(r.Steps)
		s.Restores[id] = &c
	}
	if a.night.Schedule != nil {
		sc := *a.night.Schedule
		s.Night.Schedule = &sc
	}
	if a.recentManual != nil {
		s.RecentManual = make([]ManualSnapshot, 0, len(a.recentManual))
	}
	for _, m := range a.recentManual {
		s.RecentManual = append(s.RecentManual, ManualSnapshot{BackupID: m.backupID, At: m.at})
	}
	return s
}

// AppFromSnapshot returns the App whose Snapshot s is. It returns an error
// when s cannot be such a snapshot.
func AppFromSnapshot(s AppSnapshot) (*App, error) {
	if err := ValidateAppID(s.ID); err != nil {
		return nil, err
	}
	cm, err := commandMemoryFromSnapshot(s.Commands)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", s.ID, err)
	}
	a := &App{id: s.ID, seq: s.Seq, lastHash: s.LastHash, events: s.Events, backups: s.Backups, deleted: map[string]bool{},
		lastManualAt: s.LastManualAt, lastReadyAt: s.LastReadyAt, commands: cm, maintenance: s.Maintenance,
		restores: s.Restores, restoreOrder: s.RestoreOrder, activeRestore: s.ActiveRestore, firstAt: s.FirstAt, night: s.Night}
	if a.backups == nil {
		a.backups = map[string]*Backup{}
	}
	if a.restores == nil {
		a.restores = map[string]*Restore{}
	}
	for _, id := range s.Deleted {
		a.deleted[id] = true
	}
	if s.RecentManual != nil {
		a.recentManual = make([]manualRequest, 0, len(s.RecentManual))
	}
	for _, m := range s.RecentManual {
		a.recentManual = append(a.recentManual, manualRequest{backupID: m.BackupID, at: m.At})
	}
	return a, nil
}

const ringEntrySize = 16 + 8

func (m *commandMemory) snapshot() CommandsSnapshot {
	s := CommandsSnapshot{Size: m.size, Puts: m.puts, Ring: make([]byte, 0, len(m.ring)*ringEntrySize),
		Table: make([]byte, 0, 4*len(m.table)), Whole: slices.Clone(m.whole)}
	for _, r := range m.ring {
		s.Ring = append(s.Ring, r.digest[:]...)
		s.Ring = binary.BigEndian.AppendUint64(s.Ring, r.seq)
	}
	for _, v := range m.table {
		s.Table = binary.BigEndian.AppendUint32(s.Table, v)
	}
	return s
}

func commandMemoryFromSnapshot(s CommandsSnapshot) (commandMemory, error) {
	m := commandMemory{size: s.Size, puts: s.Puts, whole: s.Whole}
	n := len(s.Ring) / ringEntrySize
	switch {
	case s.Size < 1 || s.Puts < 0 || len(s.Ring)%ringEntrySize != 0 || len(s.Table)%4 != 0 || n > s.Size || len(s.Whole) > wholeRecords:
		return commandMemory{}, fmt.Errorf("command memory snapshot of size %d with %d bytes of ring, %d of table and %d records", s.Size, len(s.Ring), len(s.Table), len(s.Whole))
	case n != min(s.Puts, s.Size) || len(s.Whole) != min(s.Puts, wholeRecords):
		return commandMemory{}, fmt.Errorf("command memory snapshot of %d puts with %d commands and %d records", s.Puts, n, len(s.Whole))
	case len(s.Table)/4 != 0 && (len(s.Table)/4)&(len(s.Table)/4-1) != 0 || len(s.Table)/4 < 2*n:
		return commandMemory{}, fmt.Errorf("command memory snapshot with a table of %d entries for %d commands", len(s.Table)/4, n)
	}
	m.ring = make([]rememberedCommand, n)
	for i := range m.ring {
		e := s.Ring[i*ringEntrySize:]
		copy(m.ring[i].digest[:], e[:16])
		m.ring[i].seq = binary.BigEndian.Uint64(e[16:])
	}
	if len(s.Table) > 0 {
		m.table = make([]uint32, len(s.Table)/4)
		for i := range m.table {
			v := binary.BigEndian.Uint32(s.Table[4*i:])
			if int(v) > n {
				return commandMemory{}, fmt.Errorf("command memory snapshot: table entry %d names slot %d of %d", i, v, n)
			}
			m.table[i] = v
		}
	}
	for i := range m.whole {
		m.whole[i].Type = internType(m.whole[i].Type)
	}
	return m, nil
}

// DirectorySnapshot is the whole state of a Directory.
type DirectorySnapshot struct {
	Seq          uint64                   `json:"seq"`
	LastHash     string                   `json:"last_hash"`
	Orgs         map[string]*Org          `json:"orgs"`
	Users        map[string]*User         `json:"users"`
	Apps         map[string]*AppAccess    `json:"apps"`
	Tokens       map[string]*Token        `json:"tokens"`
	Webhooks     map[string]*Webhook      `json:"webhooks"`
	RemovedHooks []string                 `json:"removed_hooks"`
	Commands     map[string]CommandRecord `json:"commands"`
	CmdRing      []string                 `json:"cmd_ring"`
	CmdNext      int                      `json:"cmd_next"`
}

// Snapshot returns the whole state of d, a copy that shares nothing that
// Apply changes.
func (d *Directory) Snapshot() DirectorySnapshot {
	s := DirectorySnapshot{Seq: d.seq, LastHash: d.lastHash, Orgs: copyMap(d.orgs, func(o Org) Org {
		o.Members = maps.Clone(o.Members)
		return o
	}), Users: copyMap(d.users, func(u User) User { return u }), Apps: copyMap(d.apps, func(a AppAccess) AppAccess {
		a.Admins = maps.Clone(a.Admins)
		return a
	}), Tokens: copyMap(d.tokens, func(t Token) Token { return t }), Webhooks: copyMap(d.webhooks, func(w Webhook) Webhook {
		w.Events = slices.Clone(w.Events)
		return w
	}), RemovedHooks: sortedKeys(d.removedHooks), Commands: maps.Clone(d.commands),
		CmdRing: slices.Clone(d.cmdRing), CmdNext: d.cmdNext}
	return s
}

// copyMap copies m and each value it points to, with cp.
func copyMap[V any](m map[string]*V, cp func(V) V) map[string]*V {
	if m == nil {
		return nil
	}
	out := make(map[string]*V, len(m))
	for k, v := range m {
		c := cp(*v)
		out[k] = &c
	}
	return out
}

// DirectoryFromSnapshot returns the Directory whose Snapshot s is.
func DirectoryFromSnapshot(s DirectorySnapshot) (Directory, error) {
	if s.CmdNext < 0 || (len(s.CmdRing) > 0 && s.CmdNext >= len(s.CmdRing)) {
		return Directory{}, fmt.Errorf("directory snapshot: command ring position %d of %d", s.CmdNext, len(s.CmdRing))
	}
	d := Directory{seq: s.Seq, lastHash: s.LastHash, orgs: s.Orgs, users: s.Users, apps: s.Apps, tokens: s.Tokens,
		webhooks: s.Webhooks, commands: s.Commands, cmdRing: s.CmdRing, cmdNext: s.CmdNext}
	if s.RemovedHooks != nil {
		d.removedHooks = map[string]bool{}
		for _, id := range s.RemovedHooks {
			d.removedHooks[id] = true
		}
	}
	return d, nil
}

// CheckSnapshot is the whole state of a LedgerCheck but its options
// (TrustMAC, PinGenesis), which the process sets.
type CheckSnapshot struct {
	Genesis     uint64            `json:"genesis"`
	Keys        []KeyInfo         `json:"keys"`
	Heads       map[string]string `json:"heads"`
	AnnouncedBy map[string]string `json:"announced_by"`
}

// Snapshot returns the state of c.
func (c *LedgerCheck) Snapshot() CheckSnapshot {
	return CheckSnapshot{Genesis: c.genesis, Keys: c.Keys(), Heads: maps.Clone(c.heads), AnnouncedBy: maps.Clone(c.announcedBy)}
}

// Restore replaces the state of c, a check that has seen no message, by
// s; its options stay.
func (c *LedgerCheck) Restore(s CheckSnapshot) error {
	byID := map[string]int{}
	for i, k := range s.Keys {
		if _, dup := byID[k.ID]; dup || k.ID == "" {
			return fmt.Errorf("check snapshot: key %q twice or unnamed", k.ID)
		}
		byID[k.ID] = i
	}
	c.genesis, c.keys, c.byID = s.Genesis, s.Keys, byID
	c.heads, c.announcedBy = s.Heads, s.AnnouncedBy
	if c.heads == nil {
		c.heads = map[string]string{}
	}
	if c.announcedBy == nil {
		c.announcedBy = map[string]string{}
	}
	return nil
}

// sortedKeys returns the keys of m in order: nil for a nil map, empty for
// an empty one.
func sortedKeys(m map[string]bool) []string {
	if m == nil {
		return nil
	}
	return append([]string{}, slices.Sorted(maps.Keys(m))...)
}

// SnapshotMAC seals a snapshot of the projection after stream sequence
// seq, whose message's body hashes to hash, with data: an HMAC-SHA256,
// base64, under a key derived from eventMACKey (EventMACKey of the ledger
// key current when it was made), so that only a process holding the
// ledger's keys makes one that another takes.
func SnapshotMAC(eventMACKey []byte, seq uint64, hash string, data []byte) string {
	k := hmac.New(sha256.New, eventMACKey)
	k.Write([]byte("backupledger projection snapshots v1"))
	h := hmac.New(sha256.New, k.Sum(nil))
	fmt.Fprintf(h, "%d\n%s\n", seq, hash)
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// ValidSnapshotMAC reports whether mac is SnapshotMAC of the rest.
func ValidSnapshotMAC(eventMACKey []byte, seq uint64, hash string, data []byte, mac string) bool {
	return hmac.Equal([]byte(SnapshotMAC(eventMACKey, seq, hash, data)), []byte(mac))
}
