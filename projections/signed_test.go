package projections_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

// The keys of the signed ledgers of these tests: fixed, so that ids and
// signatures are too.
var (
	ledgerKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x11}, ed25519.SeedSize)) // the genesis key
	ledgerKey2 = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x12}, ed25519.SeedSize)) // the key after a rotation
	foreignKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x66}, ed25519.SeedSize)) // not the ledger's
	ledgerMAC  = bytes.Repeat([]byte{5}, 32)
)

func keyID(priv ed25519.PrivateKey) string { return domain.KeyIDOf(priv.Public().(ed25519.PublicKey)) }

// signedLedger writes the messages of LEDGER as backupd does and feeds
// them to a Store: consecutive sequences across subjects, each event
// chained to its subject's last accepted one, signed with the current key
// once the genesis is written (unsigned before), and stored one second
// after the previous message; an event's time is its store time.
type signedLedger struct {
	t     *testing.T
	s     *projections.Store
	seq   uint64
	now   time.Time
	key   ed25519.PrivateKey // nil before the genesis
	heads map[string]string
	msgs  []domain.StoredMessage // every message fed, for time travel
	log   *bytes.Buffer          // the store's log
}

func newSignedLedger(t *testing.T) *signedLedger {
	return newSignedLedgerWith(t, projections.Options{})
}

// newSignedLedgerWith is newSignedLedger with the store's options opts
// (their Logger replaced by the ledger's log).
func newSignedLedgerWith(t *testing.T, opts projections.Options) *signedLedger {
	var buf bytes.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	s := projections.New(domain.DefaultRules(), opts)
	return &signedLedger{t: t, s: s, now: t0, heads: map[string]string{}, log: &buf}
}

// body encodes ev as the next event of token by actor, chained to the
// token's head, after edit (if any) changed its envelope.
func (l *signedLedger) body(token, actor string, ev domain.Event, edit ...func(*domain.Envelope)) []byte {
	l.t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		l.t.Fatal(err)
	}
	env := domain.Envelope{ID: fmt.Sprintf("ev%05d", l.seq+1), Type: ev.EventType(), Version: 1, App: token, Time: l.now,
		Actor: actor, CommandID: fmt.Sprintf("cmd%05d", l.seq+1), PrevHash: l.heads[token], Data: data}
	for _, e := range edit {
		e(&env)
	}
	b, err := json.Marshal(env)
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

// store feeds body as the next message of token, signed by key (nil:
// unsigned), without moving the head.
func (l *signedLedger) store(token string, body []byte, key ed25519.PrivateKey) domain.StoredMessage {
	l.seq++
	m := domain.StoredMessage{Seq: l.seq, Token: token, Body: body, Stored: l.now}
	if key != nil {
		m.KeyID, m.Signature = domain.SignBody(key, body)
	}
	l.feed(m)
	return m
}

// feed applies m and keeps it.
func (l *signedLedger) feed(m domain.StoredMessage) {
	l.msgs = append(l.msgs, m)
	l.s.Apply(m)
	l.now = l.now.Add(time.Second)
}

// emitWith writes ev on token signed by key, as a genuine event: the head
// moves.
func (l *signedLedger) emitWith(token, actor string, ev domain.Event, key ed25519.PrivateKey) domain.StoredMessage {
	l.t.Helper()
	m := l.store(token, l.body(token, actor, ev), key)
	l.heads[token] = domain.HashEvent(m.Body)
	return m
}

// emit writes ev on token as backupd does: signed with the current key
// (unsigned before the genesis).
func (l *signedLedger) emit(token, actor string, ev domain.Event) domain.StoredMessage {
	l.t.Helper()
	return l.emitWith(token, actor, ev, l.key)
}

// genesis writes the self-signed key.created of key and signs with it
// from then on.
func (l *signedLedger) genesis(key ed25519.PrivateKey) domain.StoredMessage {
	l.t.Helper()
	m := l.emitWith(domain.KeysStream, service.KeysActor, domain.NewKeyCreated(key.Public().(ed25519.PublicKey), ledgerMAC), key)
	l.key = key
	return m
}

// rotate writes the key.rotated to key, signed by the current key.
func (l *signedLedger) rotate(key ed25519.PrivateKey) domain.StoredMessage {
	l.t.Helper()
	m := l.emit(domain.KeysStream, "admin", domain.NewKeyRotated(key.Public().(ed25519.PublicKey), keyID(l.key)))
	l.key = key
	return m
}

// forge writes ev on token chained to the head as a genuine event would
// be, signed by key (nil: unsigned); the head stays.
func (l *signedLedger) forge(token, actor string, ev domain.Event, key ed25519.PrivateKey, edit ...func(*domain.Envelope)) domain.StoredMessage {
	l.t.Helper()
	return l.store(token, l.body(token, actor, ev, edit...), key)
}

// replay stores an exact copy of m, body and signature headers, on token:
// what someone who may publish but holds no key can do.
func (l *signedLedger) replay(m domain.StoredMessage, token string) domain.StoredMessage {
	l.seq++
	c := domain.StoredMessage{Seq: l.seq, Token: token, Body: m.Body, KeyID: m.KeyID, Signature: m.Signature, Stored: l.now}
	l.feed(c)
	return c
}

func (l *signedLedger) appState(app string) (seq uint64, hash string, events int) {
	l.s.ReadApp(app, func(a *domain.App) { seq, hash, events = a.Seq(), a.LastHash(), a.Events() })
	return seq, hash, events
}

// rejectedBut returns the counts of Rejected other than reason that are
// not zero.
func rejectedBut(s *projections.Store, reason string) map[string]uint64 {
	out := map[string]uint64{}
	for r, n := range s.Rejected() {
		if r != reason && n != 0 {
			out[r] = n
		}
	}
	return out
}

// wantNothingRejected fails the test if the store refused a message.
func wantNothingRejected(t *testing.T, s *projections.Store) {
	t.Helper()
	if got := rejectedBut(s, ""); len(got) != 0 {
		t.Errorf("Rejected() = %v, want nothing refused", got)
	}
}

// backupLife is the history of the tests' app crm, written by
// emit(token, actor, ev).
func backupLife(emit func(token, actor string, ev domain.Event)) {
	emit("crm", "alice", requested("b1"))
	emit("crm", "alice", requested("b2"))
	emit("crm", "worker", started("b1"))
	emit("crm", "worker", completed("b1"))
	emit("crm", "bob", &domain.BackupRenamed{BackupID: "b2", Name: "renamed", PreviousName: "name of b2"})
	emit("crm", "carol", &domain.BackupDeleted{BackupID: "b2"})
	emit("crm", "alice", requested("b3"))
}

func TestSignedLedgerFoldsLikeAnUnsignedOne(t *testing.T) {
	// Both ledgers have one message before crm's: the genesis, or an event
	// of another app; so crm's sequences and times are the same.
	signed := newSignedLedger(t)
	signed.genesis(ledgerKey)
	backupLife(func(token, actor string, ev domain.Event) { signed.emit(token, actor, ev) })

	unsigned := newLedger(t, domain.DefaultRules())
	at := t0
	unsigned.emit("other", "alice", at, requested("x"))
	backupLife(func(token, actor string, ev domain.Event) {
		at = at.Add(time.Second)
		unsigned.emit(token, actor, at, ev)
	})

	if got := ids(signed.s.Backups("crm")); !slices.Equal(got, []string{"crm/b1", "crm/b3"}) {
		t.Errorf("Backups(crm) of the signed ledger = %v, want [crm/b1 crm/b3]", got)
	}
	if got, want := signed.s.Backups("crm"), unsigned.s.Backups("crm"); !reflect.DeepEqual(got, want) {
		t.Errorf("Backups(crm):\nsigned   %+v\nunsigned %+v", got, want)
	}
	if got, want := appLogOf(t, signed.s, "crm"), appLogOf(t, unsigned.s, "crm"); !reflect.DeepEqual(got, want) {
		t.Errorf("AppLog(crm):\nsigned   %+v\nunsigned %+v", got, want)
	}
	if got, want := signed.s.App("crm"), unsigned.s.App("crm"); !reflect.DeepEqual(got, want) {
		t.Errorf("App(crm):\nsigned   %+v\nunsigned %+v", got, want)
	}
	if log, err := signed.s.BackupLog(context.Background(), "crm", "b2"); err != nil || len(log) != 3 {
		t.Errorf("BackupLog(crm, b2) = %+v, %v; want its 3 entries", log, err)
	}
	_, hash, _ := signed.appState("crm")
	if hash != signed.heads["crm"] {
		t.Errorf("LastHash(crm) = %s, want the hash of its last event %s", hash, signed.heads["crm"])
	}
	if got := signed.s.Applied(); got != signed.seq {
		t.Errorf("Applied() = %d, want %d", got, signed.seq)
	}
	wantNothingRejected(t, signed.s)
	if apps := signed.s.Apps(); !slices.Equal(apps, []string{"crm"}) {
		t.Errorf("Apps() = %v, want [crm]: the keys' subject is no app", apps)
	}
}

// forgery is a message that is not part of the ledger, written after the
// given history of forgeryGiven.
type forgery struct {
	name   string
	forge  func(l *signedLedger, given map[string]domain.StoredMessage) domain.StoredMessage
	reason string
	app    string // the app it is on; "" is crm
}

// forgeryGiven is a signed ledger where crm's backup b1 is ready, and
// hr's backup b1 was deleted. It returns the messages by name.
func forgeryGiven(l *signedLedger) map[string]domain.StoredMessage {
	l.genesis(ledgerKey)
	return map[string]domain.StoredMessage{
		"crm requested": l.emit("crm", "alice", requested("b1")),
		"hr requested":  l.emit("hr", "alice", requested("b1")),
		"crm started":   l.emit("crm", "worker", started("b1")),
		"hr deleted":    l.emit("hr", "alice", &domain.BackupDeleted{BackupID: "b1"}),
		"crm completed": l.emit("crm", "worker", completed("b1")),
	}
}

var deleteB1 = &domain.BackupDeleted{BackupID: "b1"}

func TestSignedLedgerRefusesAForgedEvent(t *testing.T) {
	for _, tc := range []forgery{
		{name: "an unsigned delete", reason: domain.ReasonUnsigned,
			forge: func(l *signedLedger, _ map[string]domain.StoredMessage) domain.StoredMessage {
				return l.forge("crm", "mallory", deleteB1, nil)
			}},
		{name: "a delete signed by a foreign key", reason: domain.ReasonUnknownKey,
			forge: func(l *signedLedger, _ map[string]domain.StoredMessage) domain.StoredMessage {
				return l.forge("crm", "mallory", deleteB1, foreignKey)
			}},
		{name: "a delete signed by a foreign key under the ledger's key id", reason: domain.ReasonBadSignature,
			forge: func(l *signedLedger, _ map[string]domain.StoredMessage) domain.StoredMessage {
				l.seq++
				body := l.body("crm", "mallory", deleteB1)
				m := domain.StoredMessage{Seq: l.seq, Token: "crm", Body: body, Stored: l.now}
				_, m.Signature = domain.SignBody(foreignKey, body)
				m.KeyID = keyID(ledgerKey)
				l.feed(m)
				return m
			}},
		{name: "a genuine delete of another app replayed on crm", reason: domain.ReasonWrongApp,
			forge: func(l *signedLedger, given map[string]domain.StoredMessage) domain.StoredMessage {
				return l.replay(given["hr deleted"], "crm")
			}},
		{name: "a genuine event of crm replayed", reason: domain.ReasonPrevHash,
			forge: func(l *signedLedger, given map[string]domain.StoredMessage) domain.StoredMessage {
				return l.replay(given["crm started"], "crm") // would make b1 running again
			}},
		{name: "a genuine request of another app replayed on its own subject", reason: domain.ReasonPrevHash, app: "hr",
			forge: func(l *signedLedger, given map[string]domain.StoredMessage) domain.StoredMessage {
				return l.replay(given["hr requested"], "hr") // would bring hr's b1 back
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newSignedLedger(t)
			given := forgeryGiven(l)
			app := cmp.Or(tc.app, "crm")
			_, headBefore, eventsBefore := l.appState(app)
			logBefore, backupsBefore := appLogOf(t, l.s, app), l.s.Backups(app)

			m := tc.forge(l, given)

			if got := l.s.Backups(app); !reflect.DeepEqual(got, backupsBefore) {
				t.Errorf("Backups(%s) = %+v after the forgery, want unchanged %+v", app, got, backupsBefore)
			}
			if b, err := l.s.Backup("crm", "b1"); err != nil || b.Status != "ready" {
				t.Errorf("Backup(crm, b1) = %+v, %v; want it still ready", b, err)
			}
			if got := l.s.Rejected()[tc.reason]; got != 1 {
				t.Errorf("Rejected()[%s] = %d, want 1", tc.reason, got)
			}
			if others := rejectedBut(l.s, tc.reason); len(others) != 0 {
				t.Errorf("Rejected() counts %v besides %s", others, tc.reason)
			}
			appLog := appLogOf(t, l.s, app)
			if len(appLog) != len(logBefore)+1 || !reflect.DeepEqual(appLog[:len(logBefore)], logBefore) {
				t.Fatalf("AppLog(%s) = %+v, want the entries before and one more", app, appLog)
			}
			e := appLog[len(appLog)-1]
			if e.Seq != m.Seq || projections.TypeRejected != "rejected" || e.Event != projections.TypeRejected || e.Result != "rejected" ||
				e.BackupID != "" || !e.Time.Equal(m.Stored) {
				t.Errorf("log entry %+v, want seq %d, event and result %q, no backup, at %s", e, m.Seq, "rejected", m.Stored)
			}
			if !strings.Contains(e.Message, tc.reason) || !strings.Contains(e.Message, fmt.Sprint(m.Seq)) {
				t.Errorf("log message %q does not name the reason %s and seq %d", e.Message, tc.reason, m.Seq)
			}
			if log, err := l.s.BackupLog(context.Background(), "crm", "b1"); err != nil || len(log) != 3 {
				t.Errorf("BackupLog(crm, b1) = %+v, %v; want its 3 genuine entries", log, err)
			}
			for _, want := range []string{"ledger message refused", fmt.Sprintf("seq=%d", m.Seq), "reason=" + tc.reason, "level=ERROR"} {
				if !strings.Contains(l.log.String(), want) {
					t.Errorf("the store's log lacks %q:\n%s", want, l.log.String())
				}
			}
			// The next append to the app expects the refused message's
			// sequence, but chains to the last accepted event.
			seq, head, events := l.appState(app)
			if seq != m.Seq || l.s.App(app).LastSeq != m.Seq {
				t.Errorf("%s's sequence is %d (view %d), want the refused message's %d", app, seq, l.s.App(app).LastSeq, m.Seq)
			}
			if head != headBefore || events != eventsBefore {
				t.Errorf("%s's chain head %s after %d events, want still %s after %d", app, head, events, headBefore, eventsBefore)
			}
			if got := l.s.Applied(); got != m.Seq {
				t.Errorf("Applied() = %d, want %d", got, m.Seq)
			}

			next := l.emit(app, "alice", &domain.BackupRenamed{BackupID: "b1", Name: "kept", PreviousName: "name of b1"})

			seq, head, events = l.appState(app)
			if seq != next.Seq || head != domain.HashEvent(next.Body) || events != eventsBefore+1 {
				t.Errorf("after the next genuine event: seq %d, head %s, %d events; want %d, its hash, %d", seq, head, events, next.Seq, eventsBefore+1)
			}
			if e := appLogOf(t, l.s, app); e[len(e)-1].Event != domain.TypeBackupRenamed || e[len(e)-1].Seq != next.Seq {
				t.Errorf("last log entry %+v, want the rename at seq %d", e[len(e)-1], next.Seq)
			}
			if app == "crm" {
				if b, err := l.s.Backup("crm", "b1"); err != nil || b.Name != "kept" || b.Status != "ready" {
					t.Errorf("Backup(crm, b1) = %+v, %v; want ready and renamed", b, err)
				}
			}
			if got := l.s.Rejected()[tc.reason]; got != 1 {
				t.Errorf("Rejected()[%s] = %d after a genuine event, want still 1", tc.reason, got)
			}
		})
	}
}

// directoryState is what a forged identity event could change.
type directoryState struct {
	seq      uint64
	hash     string
	members  []string
	admins   []string
	mallory  bool // administers crm
	commands bool // remembers mallory's command
}

func readDirectory(s *projections.Store) directoryState {
	var st directoryState
	s.ReadDirectory(func(d *domain.Directory) {
		st.seq, st.hash = d.Seq(), d.LastHash()
		if o, ok := d.Org("acme"); ok {
			for u := range o.Members {
				st.members = append(st.members, u)
			}
		}
		if a, ok := d.App("crm"); ok {
			for u := range a.Admins {
				st.admins = append(st.admins, u)
			}
		}
		st.mallory = d.Administers("mallory", "crm")
		_, st.commands = d.Command(domain.CommandKey("mallory", "forged"))
	})
	slices.Sort(st.members)
	slices.Sort(st.admins)
	return st
}

func TestSignedLedgerRefusesForgedIdentityEvents(t *testing.T) {
	byMallory := func(env *domain.Envelope) { env.CommandID = "forged" }
	for _, tc := range []struct {
		name   string
		forge  func(l *signedLedger) domain.StoredMessage
		reason string
	}{
		{name: "an unsigned member_added", reason: domain.ReasonUnsigned, forge: func(l *signedLedger) domain.StoredMessage {
			return l.forge(domain.IdentityStream, "mallory", &domain.MemberAdded{Org: "acme", User: "mallory"}, nil, byMallory)
		}},
		{name: "a member_added signed by a foreign key", reason: domain.ReasonUnknownKey, forge: func(l *signedLedger) domain.StoredMessage {
			return l.forge(domain.IdentityStream, "mallory", &domain.MemberAdded{Org: "acme", User: "mallory"}, foreignKey, byMallory)
		}},
		{name: "an unsigned admin_granted", reason: domain.ReasonUnsigned, forge: func(l *signedLedger) domain.StoredMessage {
			return l.forge(domain.IdentityStream, "mallory", &domain.AdminGranted{App: "crm", User: "mallory"}, nil, byMallory)
		}},
		{name: "an admin_granted signed by a foreign key", reason: domain.ReasonUnknownKey, forge: func(l *signedLedger) domain.StoredMessage {
			return l.forge(domain.IdentityStream, "mallory", &domain.AdminGranted{App: "crm", User: "mallory"}, foreignKey, byMallory)
		}},
		{name: "a genuine identity event copied onto an app's subject", reason: domain.ReasonWrongApp, forge: func(l *signedLedger) domain.StoredMessage {
			// A genuine identity event copied onto crm's subject.
			return l.replay(l.msgs[len(l.msgs)-1], "crm")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newSignedLedger(t)
			l.genesis(ledgerKey)
			l.emit(domain.IdentityStream, "admin", &domain.OrgCreated{Org: "acme", Name: "ACME"})
			l.emit(domain.IdentityStream, "admin", &domain.UserCreated{User: "bob", Name: "Bob", Email: "bob@example.com"})
			l.emit(domain.IdentityStream, "admin", &domain.UserCreated{User: "mallory", Name: "Mallory", Email: "m@example.com"})
			l.emit(domain.IdentityStream, "admin", &domain.AppRegistered{App: "crm", Org: "acme", Admin: "bob"})
			l.emit(domain.IdentityStream, "admin", &domain.MemberAdded{Org: "acme", User: "bob"})
			before := readDirectory(l.s)

			m := tc.forge(l)

			after := readDirectory(l.s)
			if m.Token == domain.IdentityStream {
				before.seq = m.Seq // only the sequence the next append expects moves
			}
			if !reflect.DeepEqual(after, before) {
				t.Errorf("directory after the forgery %+v, want %+v", after, before)
			}
			if after.mallory || slices.Contains(after.members, "mallory") {
				t.Errorf("mallory gained rights: %+v", after)
			}
			if got := l.s.Rejected()[tc.reason]; got != 1 {
				t.Errorf("Rejected()[%s] = %d, want 1", tc.reason, got)
			}
			if others := rejectedBut(l.s, tc.reason); len(others) != 0 {
				t.Errorf("Rejected() counts %v besides %s", others, tc.reason)
			}
			if slices.Contains(l.s.Apps(), domain.IdentityStream) {
				t.Errorf("Apps() = %v lists the identity subject", l.s.Apps())
			}

			// The next genuine identity event chains to the last accepted one.
			next := l.emit(domain.IdentityStream, "admin", &domain.AdminGranted{App: "crm", User: "bob"})
			st := readDirectory(l.s)
			if st.seq != next.Seq || st.hash != domain.HashEvent(next.Body) {
				t.Errorf("directory at seq %d, hash %s after the next genuine event; want %d, its hash", st.seq, st.hash, next.Seq)
			}
			if got := l.s.Rejected()[tc.reason]; got != 1 {
				t.Errorf("Rejected()[%s] = %d after a genuine event, want still 1", tc.reason, got)
			}
		})
	}
}

func TestUnsignedPrefixThenStrict(t *testing.T) {
	l := newSignedLedger(t)
	// The unsigned prefix: taken as it always was, broken links included,
	// and signature headers ignored.
	l.emit("crm", "alice", requested("old-1"))
	l.emit("hr", "alice", requested("h1"))
	broken := l.forge("crm", "alice", requested("old-2"), nil, func(env *domain.Envelope) { env.PrevHash = "not the chain" })
	l.heads["crm"] = domain.HashEvent(broken.Body) // the prefix's head moves past a broken link
	l.emitWith("crm", "alice", requested("old-3"), foreignKey)
	wantNothingRejected(t, l.s)

	// Before the genesis, only a valid key.created is taken on the keys'
	// subject: an unsigned one is refused and the ledger stays unsigned.
	fake := l.forge(domain.KeysStream, service.KeysActor, domain.NewKeyCreated(foreignKey.Public().(ed25519.PublicKey), ledgerMAC), nil)
	if got := l.s.Rejected()[domain.ReasonUnsigned]; got != 1 {
		t.Errorf("Rejected()[unsigned] = %d after an unsigned key.created, want 1", got)
	}
	if k := l.s.Keys(); k.GenesisSeq != 0 || len(k.Keys) != 0 {
		t.Errorf("Keys() = %+v after a refused key.created at seq %d, want no genesis", k, fake.Seq)
	}
	l.emit("crm", "alice", requested("old-4"))

	if got := ids(l.s.Backups("crm")); !slices.Equal(got, []string{"crm/old-1", "crm/old-2", "crm/old-3", "crm/old-4"}) {
		t.Fatalf("Backups(crm) of the unsigned prefix = %v", got)
	}

	g := l.genesis(ledgerKey)
	if k := l.s.Keys(); k.GenesisSeq != g.Seq {
		t.Errorf("GenesisSeq = %d, want %d", k.GenesisSeq, g.Seq)
	}
	// From the genesis on, the ledger is strict.
	unsigned := l.forge("crm", "alice", requested("new-unsigned"), nil)
	signed := l.emit("crm", "alice", requested("new-signed"))
	l.emit("hr", "alice", requested("h2")) // hr's prefix head carries on into the signed ledger

	if got := ids(l.s.Backups("crm")); !slices.Equal(got, []string{"crm/old-1", "crm/old-2", "crm/old-3", "crm/old-4", "crm/new-signed"}) {
		t.Errorf("Backups(crm) = %v, want the prefix's and the signed one", got)
	}
	if got := ids(l.s.Backups("hr")); !slices.Equal(got, []string{"hr/h1", "hr/h2"}) {
		t.Errorf("Backups(hr) = %v, want [hr/h1 hr/h2]", got)
	}
	if got := l.s.Rejected()[domain.ReasonUnsigned]; got != 2 {
		t.Errorf("Rejected()[unsigned] = %d, want 2 (the fake key.created and seq %d)", got, unsigned.Seq)
	}
	if got := events(appLogOf(t, l.s, "crm")); got[len(got)-2] != projections.TypeRejected || got[len(got)-1] != domain.TypeBackupRequested {
		t.Errorf("AppLog(crm) events %v, want the refused message then the signed one (seq %d)", got, signed.Seq)
	}
}

// keyEvent is one call of the OnKeys hook.
type keyEvent struct {
	id      string
	seq     uint64
	created time.Time
	mac     string
}

func TestOnKeysAndKeys(t *testing.T) {
	var heard []keyEvent
	l := newSignedLedgerWith(t, projections.Options{OnKeys: func(k domain.KeyInfo) {
		heard = append(heard, keyEvent{id: k.ID, seq: k.CreatedSeq, created: k.CreatedAt, mac: k.MACKeySHA256})
	}})

	none := l.s.Keys()
	if none.GenesisSeq != 0 || none.Keys == nil || len(none.Keys) != 0 {
		t.Errorf("Keys() of an unsigned ledger = %#v, want genesis 0 and an empty non-nil list", none)
	}
	if j, _ := json.Marshal(none); string(j) != `{"genesis_seq":0,"keys":[]}` {
		t.Errorf("Keys() JSON = %s", j)
	}

	l.emit("crm", "alice", requested("old"))
	g := l.genesis(ledgerKey)
	l.emit("crm", "alice", requested("b1"))
	// Key events that are not part of the ledger announce nothing.
	l.forge(domain.KeysStream, "mallory", domain.NewKeyRotated(foreignKey.Public().(ed25519.PublicKey), keyID(ledgerKey)), foreignKey)
	l.forge(domain.KeysStream, "mallory", domain.NewKeyCreated(foreignKey.Public().(ed25519.PublicKey), ledgerMAC), foreignKey)
	l.forge("crm", "mallory", domain.NewKeyRotated(foreignKey.Public().(ed25519.PublicKey), keyID(ledgerKey)), ledgerKey)
	r := l.rotate(ledgerKey2)
	l.emit("crm", "alice", requested("b2"))

	want := []keyEvent{
		{id: keyID(ledgerKey), seq: g.Seq, created: g.Stored, mac: domain.MACKeyDigest(ledgerMAC)},
		{id: keyID(ledgerKey2), seq: r.Seq, created: r.Stored},
	}
	if !reflect.DeepEqual(heard, want) {
		t.Errorf("OnKeys heard %+v, want %+v", heard, want)
	}
	if got := l.s.Rejected(); got[domain.ReasonUnknownKey] != 2 || got[domain.ReasonBadKeyEvent] != 1 {
		t.Errorf("Rejected() = %v, want 2 unknown_key (the foreign key events), 1 bad_key_event (a key event on crm)", got)
	}

	keys := l.s.Keys()
	rt := r.Stored.UTC()
	wantKeys := projections.KeyList{GenesisSeq: g.Seq, Keys: []projections.KeyView{
		{ID: keyID(ledgerKey), Algorithm: "ed25519", PublicKey: base64.StdEncoding.EncodeToString(ledgerKey.Public().(ed25519.PublicKey)),
			CreatedSeq: g.Seq, CreatedAt: g.Stored.UTC(), RetiredSeq: r.Seq, RetiredAt: &rt, Current: false},
		{ID: keyID(ledgerKey2), Algorithm: "ed25519", PublicKey: base64.StdEncoding.EncodeToString(ledgerKey2.Public().(ed25519.PublicKey)),
			CreatedSeq: r.Seq, CreatedAt: r.Stored.UTC(), Current: true},
	}}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("Keys() = %+v, want %+v", keys, wantKeys)
	}
	j, err := json.Marshal(keys)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		GenesisSeq uint64           `json:"genesis_seq"`
		Keys       []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(j, &doc); err != nil || doc.GenesisSeq != g.Seq || len(doc.Keys) != 2 {
		t.Fatalf("Keys() JSON %s (%v)", j, err)
	}
	if _, ok := doc.Keys[1]["retired_at"]; ok || doc.Keys[1]["current"] != true || doc.Keys[0]["current"] != false {
		t.Errorf("Keys() JSON %s: want the current key without retired_at, the first retired", j)
	}
	if got := ids(l.s.Backups("crm")); !slices.Equal(got, []string{"crm/old", "crm/b1", "crm/b2"}) {
		t.Errorf("Backups(crm) = %v", got)
	}
}

// A replica that has not seen a rotation yet still signs with the previous
// key: its events are folded within RotationGrace (store time) of the
// key.rotated, and refused after.
func TestRotationGraceInTheProjection(t *testing.T) {
	l := newSignedLedger(t)
	l.genesis(ledgerKey)
	l.emit("crm", "alice", requested("b1"))
	r := l.rotate(ledgerKey2)

	l.now = r.Stored.Add(domain.RotationGrace)
	late := l.emitWith("crm", "alice", requested("b2"), ledgerKey) // the replica that had not learnt it
	l.now = r.Stored.Add(domain.RotationGrace + time.Millisecond)
	tooLate := l.forge("crm", "alice", requested("b3"), ledgerKey)
	l.emit("crm", "alice", requested("b4"))

	if got := ids(l.s.Backups("crm")); !slices.Equal(got, []string{"crm/b1", "crm/b2", "crm/b4"}) {
		t.Errorf("Backups(crm) = %v, want b1, b2 (old key within the grace), b4; not b3 (seq %d, after it)", got, tooLate.Seq)
	}
	if got := l.s.Rejected()[domain.ReasonRetiredKey]; got != 1 {
		t.Errorf("Rejected()[retired_key] = %d, want 1", got)
	}
	if late.KeyID != keyID(ledgerKey) {
		t.Fatalf("test bug: the late event is signed by %s", late.KeyID)
	}
}

// The fast path of this process's own events (Expect, then CheckOwn) skips
// the signature, never the rest.
func TestExpectedEventsAreStillChecked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(env *domain.Envelope)
		key    ed25519.PrivateKey
		reason string
	}{
		{name: "chained to an older event", reason: domain.ReasonPrevHash, key: ledgerKey,
			edit: func(env *domain.Envelope) { env.PrevHash = domain.HashEvent([]byte("an older body")) }},
		{name: "chained to nothing", reason: domain.ReasonPrevHash, key: ledgerKey,
			edit: func(env *domain.Envelope) { env.PrevHash = "" }},
		{name: "unsigned", reason: domain.ReasonUnsigned},
		{name: "of another app", reason: domain.ReasonWrongApp, key: ledgerKey,
			edit: func(env *domain.Envelope) { env.App = "hr" }},
		{name: "well chained and signed", key: ledgerKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newSignedLedger(t)
			l.genesis(ledgerKey)
			l.emit("crm", "alice", requested("b1"))
			l.emit("crm", "alice", completed("b1"))
			_, headBefore, _ := l.appState("crm")
			var edits []func(*domain.Envelope)
			if tc.edit != nil {
				edits = append(edits, tc.edit)
			}
			body := l.body("crm", "alice", deleteB1, edits...)
			var env domain.Envelope
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatal(err)
			}
			ev, err := domain.DecodeEvent(&env)
			if err != nil {
				t.Fatal(err)
			}
			l.s.Expect(domain.HashEvent(body), &env, ev)

			m := l.store("crm", body, tc.key)

			_, head, _ := l.appState("crm")
			_, err = l.s.Backup("crm", "b1")
			live := err == nil
			if tc.reason == "" {
				if live || head != domain.HashEvent(m.Body) {
					t.Errorf("own delete not folded: b1 live %v, head %s", live, head)
				}
				wantNothingRejected(t, l.s)
				return
			}
			if !live || head != headBefore {
				t.Errorf("own %s folded: b1 live %v, head %s (was %s)", tc.name, live, head, headBefore)
			}
			if got := l.s.Rejected()[tc.reason]; got != 1 {
				t.Errorf("Rejected() = %v, want 1 %s", l.s.Rejected(), tc.reason)
			}
		})
	}
}

// historyOf is a HistoryReader over messages: what the stream holds.
type historyOf struct {
	msgs   []domain.StoredMessage
	tokens [][]string
}

func (h *historyOf) Messages(ctx context.Context, tokens []string, fn func(domain.StoredMessage) bool) error {
	h.tokens = append(h.tokens, slices.Clone(tokens))
	for _, m := range h.msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if slices.Contains(tokens, m.Token) && !fn(m) {
			return nil
		}
	}
	return nil
}

func TestTimeTravelSkipsRefusedMessages(t *testing.T) {
	h := &historyOf{} // filled with what the stream holds once fed
	l := newSignedLedgerWith(t, projections.Options{History: h})
	l.emit("crm", "alice", requested("old")) // the unsigned prefix
	l.genesis(ledgerKey)
	l.emit("crm", "alice", requested("b1"))
	l.emit(domain.IdentityStream, "admin", &domain.OrgCreated{Org: "acme", Name: "ACME"})
	l.emit("crm", "worker", completed("b1"))
	forged := l.forge("crm", "mallory", deleteB1, foreignKey)
	l.forge("crm", "mallory", &domain.BackupDeleted{BackupID: "old"}, nil)
	l.rotate(ledgerKey2)
	b2 := l.emit("crm", "alice", requested("b2"))
	l.replay(forged, "crm")
	l.emit("hr", "alice", requested("h1"))
	end := l.now
	h.msgs = slices.Clone(l.msgs)
	ctx := context.Background()

	for _, tc := range []struct {
		at   time.Time
		want []string
	}{
		{at: forged.Stored, want: []string{"crm/old", "crm/b1"}},
		{at: b2.Stored.Add(-time.Millisecond), want: []string{"crm/old", "crm/b1"}},
		{at: b2.Stored, want: []string{"crm/old", "crm/b1", "crm/b2"}},
		{at: end, want: []string{"crm/old", "crm/b1", "crm/b2"}},
	} {
		got, err := l.s.BackupsAsOf(ctx, "crm", tc.at)
		if err != nil {
			t.Fatalf("BackupsAsOf(%s): %v", tc.at, err)
		}
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("BackupsAsOf(%s) = %v, want %v", tc.at, ids(got), tc.want)
		}
	}

	past, err := l.s.BackupsAsOf(ctx, "crm", end)
	if err != nil {
		t.Fatal(err)
	}
	if now := l.s.Backups("crm"); !reflect.DeepEqual(past, now) {
		t.Errorf("BackupsAsOf(now) = %+v, want the live list %+v", past, now)
	}
	app, err := l.s.AppAsOf(ctx, "crm", end)
	if err != nil {
		t.Fatal(err)
	}
	if now := l.s.App("crm"); !reflect.DeepEqual(app, now) {
		t.Errorf("AppAsOf(now) = %+v, want the live view %+v", app, now)
	}
	for _, tokens := range h.tokens {
		if !slices.Contains(tokens, "crm") || !slices.Contains(tokens, domain.KeysStream) {
			t.Errorf("time travel read %v, want crm's messages with the keys'", tokens)
		}
	}
	if len(h.tokens) == 0 {
		t.Error("time travel did not read the history")
	}
}
