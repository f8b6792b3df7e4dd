package domain_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// ledgerWriter writes the messages of LEDGER as backupd does: each event
// chained to its subject's last one and signed with the writer's key (none
// before the genesis), stored one second after the previous message.
type ledgerWriter struct {
	t     *testing.T
	seq   uint64
	now   time.Time // store time of the next message
	key   ed25519.PrivateKey
	heads map[string]string
	log   []domain.StoredMessage // every message stored
}

func newLedgerWriter(t *testing.T) *ledgerWriter {
	return &ledgerWriter{t: t, now: t0, heads: map[string]string{}}
}

// body returns the envelope of ev on token, chained to the writer's head
// of token, after edit (if any) changed it.
func (w *ledgerWriter) body(token string, ev domain.Event, edit ...func(*domain.Envelope)) []byte {
	w.t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		w.t.Fatal(err)
	}
	env := domain.Envelope{ID: fmt.Sprintf("01JDAX3N3Z8Q1V0G5Y9F6K%04d", w.seq+1), Type: ev.EventType(), Version: 1, App: token,
		Time: w.now, Actor: "alice", CommandID: fmt.Sprintf("cmd-%d", w.seq+1), PrevHash: w.heads[token], Data: data}
	for _, e := range edit {
		e(&env)
	}
	body, err := json.Marshal(env)
	if err != nil {
		w.t.Fatal(err)
	}
	return body
}

// store returns body as the next message of token, signed by key (nil:
// unsigned). It does not move the writer's head.
func (w *ledgerWriter) store(token string, body []byte, key ed25519.PrivateKey) domain.StoredMessage {
	w.seq++
	m := domain.StoredMessage{Seq: w.seq, Token: token, Body: body, Stored: w.now}
	w.now = w.now.Add(time.Second)
	if key != nil {
		m.KeyID, m.Signature = domain.SignBody(key, body)
	}
	w.log = append(w.log, m)
	return m
}

// replay stores again an exact copy of the i-th message stored (from 0),
// body and headers: what someone who can publish but not sign can do.
func (w *ledgerWriter) replay(i int) domain.StoredMessage {
	m := w.log[i]
	w.seq++
	m.Seq, m.Stored = w.seq, w.now
	w.now = w.now.Add(time.Second)
	w.log = append(w.log, m)
	return m
}

// appendSigned writes ev on token signed by key, and moves the head.
func (w *ledgerWriter) appendSigned(token string, ev domain.Event, key ed25519.PrivateKey) domain.StoredMessage {
	w.t.Helper()
	m := w.store(token, w.body(token, ev), key)
	w.heads[token] = domain.HashEvent(m.Body)
	return m
}

// append writes ev on token as backupd does.
func (w *ledgerWriter) append(token string, ev domain.Event) domain.StoredMessage {
	w.t.Helper()
	return w.appendSigned(token, ev, w.key)
}

// genesis announces key and signs with it from then on.
func (w *ledgerWriter) genesis(key ed25519.PrivateKey) domain.StoredMessage {
	w.t.Helper()
	w.key = key
	return w.append(domain.KeysStream, domain.NewKeyCreated(pubOf(key), macKey))
}

// rotate replaces the writer's key by key.
func (w *ledgerWriter) rotate(key ed25519.PrivateKey) domain.StoredMessage {
	w.t.Helper()
	m := w.append(domain.KeysStream, domain.NewKeyRotated(pubOf(key), idOf(w.key)))
	w.key = key
	return m
}

// forge returns ev on token, chained to the head like a genuine event,
// signed by key (nil: unsigned); the head stays.
func (w *ledgerWriter) forge(token string, ev domain.Event, key ed25519.PrivateKey, edit ...func(*domain.Envelope)) domain.StoredMessage {
	w.t.Helper()
	return w.store(token, w.body(token, ev, edit...), key)
}

// exploded is an event type this code does not know: a newer process's.
type exploded struct {
	BackupID string `json:"backup_id"`
}

func (*exploded) EventType() string { return "backup.exploded" }

var (
	evRequested = &domain.BackupRequested{BackupID: "b1", Name: "n", Origin: domain.OriginManual, ExpiresAt: t0.Add(60 * day)}
	evDeleted   = &domain.BackupDeleted{BackupID: "b1"}
	evOrg       = &domain.OrgCreated{Org: "acme", Name: "ACME"}
)

// then is what a Verdict must say. The other fields: Hash is always the
// body's, Env set when the body decodes.
type then struct {
	rejected string
	legacy   bool
	broken   string
	keyID    string
	event    string // the type of Verdict.Event; "" for nil
}

// checkCase is one given/when/then row: the messages given are checked
// (each must be accepted), then the message when; its verdict must be
// then. A rejected message must change nothing, an accepted one must be
// its subject's head.
type checkCase struct {
	name  string
	given func(w *ledgerWriter) []domain.StoredMessage
	when  func(w *ledgerWriter) domain.StoredMessage
	then  then
}

func runCheck(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newLedgerWriter(t)
			c := domain.NewLedgerCheck()
			if tc.given != nil {
				for _, m := range tc.given(w) {
					if v := c.Check(m); !v.Accepted() {
						t.Fatalf("given seq %d on %s: rejected %s: %s", m.Seq, m.Token, v.Rejected, v.Detail)
					}
				}
			}
			m := tc.when(w)
			head, keys, genesis := c.Head(m.Token), c.Keys(), c.Genesis()
			v := c.Check(m)
			got := then{rejected: v.Rejected, legacy: v.Legacy, broken: v.Broken, keyID: v.KeyID}
			if v.Event != nil {
				got.event = v.Event.EventType()
			}
			if got != tc.then {
				t.Fatalf("verdict %+v (%s), want %+v", got, v.Detail, tc.then)
			}
			if v.Hash != domain.HashEvent(m.Body) {
				t.Errorf("Hash %q, want the body's", v.Hash)
			}
			if (v.Detail == "") != (v.Rejected == "" && v.Broken == "") {
				t.Errorf("Detail %q with rejected %q, broken %q", v.Detail, v.Rejected, v.Broken)
			}
			var env domain.Envelope
			if decodes := json.Unmarshal(m.Body, &env) == nil; decodes != (v.Env != nil) {
				t.Errorf("Env %v for a body that decodes: %v", v.Env, decodes)
			}
			if v.Accepted() {
				if c.Head(m.Token) != v.Hash {
					t.Errorf("accepted, but the head of %s is %q, not its hash", m.Token, c.Head(m.Token))
				}
				return
			}
			if c.Head(m.Token) != head || !reflect.DeepEqual(c.Keys(), keys) || c.Genesis() != genesis {
				t.Errorf("rejected, but the head, keys or genesis changed")
			}
		})
	}
}

// signed is a ledger signed from its start with keyA, with one event of
// crm.
func signed(w *ledgerWriter) []domain.StoredMessage {
	return []domain.StoredMessage{w.genesis(keyA), w.append("crm", evRequested)}
}

// rotated is a ledger signed with keyA, then keyB, with one event of crm
// under each.
func rotated(w *ledgerWriter) []domain.StoredMessage {
	return append(signed(w), w.rotate(keyB), w.append("crm", &domain.BackupRenamed{BackupID: "b1", Name: "m", PreviousName: "n"}))
}

func TestCheckSignedLedger(t *testing.T) {
	runCheck(t, []checkCase{
		{name: "the genesis", when: func(w *ledgerWriter) domain.StoredMessage { return w.genesis(keyA) },
			then: then{keyID: idOf(keyA), event: domain.TypeKeyCreated}},
		{name: "an app's event", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.append("crm", evDeleted) },
			then: then{keyID: idOf(keyA), event: domain.TypeBackupDeleted}},
		{name: "the first event of another app", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.append("erp", evRequested) },
			then: then{keyID: idOf(keyA), event: domain.TypeBackupRequested}},
		{name: "an identity event", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.append(domain.IdentityStream, evOrg) },
			then: then{keyID: idOf(keyA), event: domain.TypeOrgCreated}},
		{name: "a type this code does not know", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.append("crm", &exploded{BackupID: "b1"}) },
			then: then{keyID: idOf(keyA)}},
		{name: "a newer version of a known type", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				m := w.store("crm", w.body("crm", evDeleted, func(e *domain.Envelope) { e.Version = 2 }), keyA)
				w.heads["crm"] = domain.HashEvent(m.Body)
				return m
			},
			then: then{keyID: idOf(keyA)}},
		{name: "a rotation", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.rotate(keyB) },
			then: then{keyID: idOf(keyA), event: domain.TypeKeyRotated}},
		{name: "the new key after a rotation", given: rotated,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.append("crm", evDeleted) },
			then: then{keyID: idOf(keyB), event: domain.TypeBackupDeleted}},
		{name: "a second rotation", given: rotated,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.rotate(keyC) },
			then: then{keyID: idOf(keyB), event: domain.TypeKeyRotated}},
	})
}

func TestCheckLegacyPrefix(t *testing.T) {
	legacy := func(w *ledgerWriter) []domain.StoredMessage {
		return []domain.StoredMessage{w.append("crm", evRequested), w.append(domain.IdentityStream, evOrg)}
	}
	runCheck(t, []checkCase{
		{name: "an unsigned event", given: legacy,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.append("crm", evDeleted) },
			then: then{legacy: true, event: domain.TypeBackupDeleted}},
		{name: "the first event of a subject", when: func(w *ledgerWriter) domain.StoredMessage { return w.append("crm", evRequested) },
			then: then{legacy: true, event: domain.TypeBackupRequested}},
		{name: "signature headers are ignored", given: legacy,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.appendSigned("crm", evDeleted, mallory) },
			then: then{legacy: true, event: domain.TypeBackupDeleted}},
		{name: "a type this code does not know", given: legacy,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.append("crm", &exploded{}) },
			then: then{legacy: true}},
		{name: "a key event on an app's subject announces nothing", given: legacy,
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.append("crm", domain.NewKeyCreated(pubOf(mallory), macKey))
			},
			then: then{legacy: true}},
		// Broken links are folded, as backupd of old folded them.
		{name: "broken: undecodable", given: legacy,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.store("crm", []byte("not json"), nil) },
			then: then{legacy: true, broken: domain.ReasonUndecodable}},
		{name: "broken: no prev_hash", given: legacy,
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.store("crm", []byte(`{"type":"backup.deleted","version":1,"app":"crm","data":{"backup_id":"b1"}}`), nil)
			},
			then: then{legacy: true, broken: domain.ReasonNoPrevHash, event: domain.TypeBackupDeleted}},
		{name: "broken: the first event without prev_hash",
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.store("crm", []byte(`{"type":"backup.deleted","version":1,"app":"crm","data":{"backup_id":"b1"}}`), nil)
			},
			then: then{legacy: true, broken: domain.ReasonNoPrevHash, event: domain.TypeBackupDeleted}},
		{name: "broken: wrong app", given: legacy,
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.forge("crm", evDeleted, nil, func(e *domain.Envelope) { e.App = "erp" })
			},
			then: then{legacy: true, broken: domain.ReasonWrongApp, event: domain.TypeBackupDeleted}},
		{name: "broken: prev_hash", given: legacy,
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.forge("crm", evDeleted, nil, func(e *domain.Envelope) { e.PrevHash = domain.HashEvent(nil) })
			},
			then: then{legacy: true, broken: domain.ReasonPrevHash, event: domain.TypeBackupDeleted}},
		{name: "the genesis after the prefix", given: legacy,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.genesis(keyA) },
			then: then{keyID: idOf(keyA), event: domain.TypeKeyCreated}},
		{name: "the first signed event chains to the prefix",
			given: func(w *ledgerWriter) []domain.StoredMessage { return append(legacy(w), w.genesis(keyA)) },
			when:  func(w *ledgerWriter) domain.StoredMessage { return w.append("crm", evDeleted) },
			then:  then{keyID: idOf(keyA), event: domain.TypeBackupDeleted}},
		{name: "the first signed event chains past a broken link",
			given: func(w *ledgerWriter) []domain.StoredMessage {
				ms := append(legacy(w), w.store("crm", []byte("not json"), nil))
				w.heads["crm"] = domain.HashEvent([]byte("not json"))
				return append(ms, w.genesis(keyA))
			},
			when: func(w *ledgerWriter) domain.StoredMessage { return w.append("crm", evDeleted) },
			then: then{keyID: idOf(keyA), event: domain.TypeBackupDeleted}},
		{name: "unsigned after the genesis",
			given: func(w *ledgerWriter) []domain.StoredMessage { return append(legacy(w), w.genesis(keyA)) },
			when:  func(w *ledgerWriter) domain.StoredMessage { return w.appendSigned("crm", evDeleted, nil) },
			then:  then{rejected: domain.ReasonUnsigned}},
	})
}

func TestCheckGenesis(t *testing.T) {
	// keyEvent returns ev on _keys signed by key, chained to the head.
	keyEvent := func(ev domain.Event, key ed25519.PrivateKey, edit ...func(*domain.Envelope)) func(w *ledgerWriter) domain.StoredMessage {
		return func(w *ledgerWriter) domain.StoredMessage { return w.forge(domain.KeysStream, ev, key, edit...) }
	}
	good := func() *domain.KeyCreated { return domain.NewKeyCreated(pubOf(keyA), macKey) }
	with := func(f func(*domain.KeyCreated)) *domain.KeyCreated { k := good(); f(k); return k }
	runCheck(t, []checkCase{
		{name: "self-signed key.created", when: keyEvent(good(), keyA), then: then{keyID: idOf(keyA), event: domain.TypeKeyCreated}},
		{name: "unsigned", when: keyEvent(good(), nil), then: then{rejected: domain.ReasonUnsigned}},
		{name: "signature without key id",
			when: func(w *ledgerWriter) domain.StoredMessage {
				m := w.forge(domain.KeysStream, good(), keyA)
				m.KeyID = ""
				return m
			},
			then: then{rejected: domain.ReasonUnsigned}},
		{name: "signed junk",
			when: func(w *ledgerWriter) domain.StoredMessage { return w.store(domain.KeysStream, []byte("junk"), keyA) },
			then: then{rejected: domain.ReasonUndecodable}},
		{name: "on another app's subject", when: keyEvent(good(), keyA, func(e *domain.Envelope) { e.App = "crm" }),
			then: then{rejected: domain.ReasonWrongApp}},
		{name: "key.rotated first", when: keyEvent(domain.NewKeyRotated(pubOf(keyA), idOf(keyB)), keyA),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "another type", when: keyEvent(evDeleted, keyA), then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "with a prev_hash", when: keyEvent(good(), keyA, func(e *domain.Envelope) { e.PrevHash = domain.HashEvent(nil) }),
			then: then{rejected: domain.ReasonPrevHash}},
		{name: "version 2", when: keyEvent(good(), keyA, func(e *domain.Envelope) { e.Version = 2 }),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "data not an object", when: keyEvent(good(), keyA, func(e *domain.Envelope) { e.Data = json.RawMessage(`"key"`) }),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "another algorithm", when: keyEvent(with(func(k *domain.KeyCreated) { k.Algorithm = "Ed25519" }), keyA),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "public key of 31 bytes",
			when: keyEvent(with(func(k *domain.KeyCreated) {
				k.PublicKey = encodeStd(pubOf(keyA)[:31])
				k.KeyID = domain.KeyIDOf(pubOf(keyA)[:31])
			}), keyA),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "public key in URL base64",
			when: keyEvent(with(func(k *domain.KeyCreated) { k.PublicKey = "gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5Q=" }), keyA),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "key id not the key's", when: keyEvent(with(func(k *domain.KeyCreated) { k.KeyID = idOf(keyB) }), keyA),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "no MAC key digest", when: keyEvent(with(func(k *domain.KeyCreated) { k.MACKeySHA256 = "" }), keyA),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "signed by another key than it announces", when: keyEvent(good(), mallory),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "the announced key's id over another key's signature",
			when: func(w *ledgerWriter) domain.StoredMessage {
				m := w.forge(domain.KeysStream, good(), mallory)
				m.KeyID = idOf(keyA)
				return m
			},
			then: then{rejected: domain.ReasonBadSignature}},
		{name: "a genesis after junk",
			given: func(w *ledgerWriter) []domain.StoredMessage { return nil },
			when: func(w *ledgerWriter) domain.StoredMessage {
				c := domain.NewLedgerCheck()
				for _, m := range []domain.StoredMessage{
					w.store(domain.KeysStream, []byte("junk"), nil),
					keyEvent(good(), mallory)(w),
					keyEvent(domain.NewKeyCreated(pubOf(mallory), macKey), nil)(w),
				} {
					if v := c.Check(m); v.Accepted() || c.Genesis() != 0 || c.Head(domain.KeysStream) != "" {
						t.Fatalf("junk seq %d accepted or recorded", m.Seq)
					}
				}
				return w.genesis(keyA) // chained to "": the junk moved no head
			},
			then: then{keyID: idOf(keyA), event: domain.TypeKeyCreated}},
	})
}

func encodeStd(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestCheckRejects(t *testing.T) {
	runCheck(t, []checkCase{
		{name: "unsigned", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.forge("crm", evDeleted, nil) },
			then: then{rejected: domain.ReasonUnsigned}},
		{name: "a key id without signature", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				m := w.forge("crm", evDeleted, keyA)
				m.Signature = ""
				return m
			},
			then: then{rejected: domain.ReasonUnsigned}},
		{name: "a foreign key", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.forge("crm", evDeleted, mallory) },
			then: then{rejected: domain.ReasonUnknownKey}},
		{name: "the ledger's key id over a foreign signature", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				m := w.forge("crm", evDeleted, mallory)
				m.KeyID = idOf(keyA)
				return m
			},
			then: then{rejected: domain.ReasonBadSignature}},
		{name: "the signature of another body", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				m := w.forge("crm", evDeleted, nil)
				m.KeyID, m.Signature = domain.SignBody(keyA, w.body("crm", evRequested))
				return m
			},
			then: then{rejected: domain.ReasonBadSignature}},
		{name: "a signature that is not base64", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				m := w.forge("crm", evDeleted, keyA)
				m.Signature = "%" + m.Signature[1:]
				return m
			},
			then: then{rejected: domain.ReasonBadSignature}},
		{name: "a signature with a line break", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				m := w.forge("crm", evDeleted, keyA)
				m.Signature = m.Signature[:40] + "\n" + m.Signature[40:]
				return m
			},
			then: then{rejected: domain.ReasonBadSignature}},
		{name: "a signed body that is no envelope", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.store("crm", []byte(`["x"]`), keyA) },
			then: then{rejected: domain.ReasonUndecodable}},
		{name: "another app's event", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.forge("crm", evDeleted, keyA, func(e *domain.Envelope) { e.App = "erp" })
			},
			then: then{rejected: domain.ReasonWrongApp}},
		{name: "mis-chained", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.forge("crm", evDeleted, keyA, func(e *domain.Envelope) { e.PrevHash = "" })
			},
			then: then{rejected: domain.ReasonPrevHash}},
		{name: "a replayed genuine event", given: func(w *ledgerWriter) []domain.StoredMessage {
			return append(signed(w), w.append("crm", evDeleted))
		},
			when: func(w *ledgerWriter) domain.StoredMessage { return w.replay(1) }, // the backup.requested
			then: then{rejected: domain.ReasonPrevHash}},
		{name: "the last event replayed", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.replay(1) },
			then: then{rejected: domain.ReasonPrevHash}},
		{name: "the genesis replayed", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.replay(0) },
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "a key event on an app's subject", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.forge("crm", domain.NewKeyRotated(pubOf(keyB), idOf(keyA)), keyA)
			},
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "a key event on the identity subject", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.forge(domain.IdentityStream, domain.NewKeyCreated(pubOf(keyA), macKey), keyA)
			},
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "a second key.created", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.forge(domain.KeysStream, domain.NewKeyCreated(pubOf(keyB), macKey), keyA)
			},
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "a second self-signed key.created", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.forge(domain.KeysStream, domain.NewKeyCreated(pubOf(mallory), macKey), mallory,
					func(e *domain.Envelope) { e.PrevHash = "" })
			},
			then: then{rejected: domain.ReasonUnknownKey}},
		{name: "another event on the keys subject", given: signed,
			when: func(w *ledgerWriter) domain.StoredMessage { return w.forge(domain.KeysStream, evOrg, keyA) },
			then: then{rejected: domain.ReasonBadKeyEvent}},
	})
}

func TestCheckBadSubject(t *testing.T) {
	for _, tok := range []string{"", "CRM", "-crm", "crm.x", "_secrets", "_identity2", strings.Repeat("a", 64)} {
		runCheck(t, []checkCase{
			{name: fmt.Sprintf("%q before the genesis", tok),
				when: func(w *ledgerWriter) domain.StoredMessage { return w.forge(tok, evDeleted, nil) },
				then: then{rejected: domain.ReasonBadSubject}},
			{name: fmt.Sprintf("%q signed", tok), given: signed,
				when: func(w *ledgerWriter) domain.StoredMessage { return w.forge(tok, evDeleted, keyA) },
				then: then{rejected: domain.ReasonBadSubject}},
		})
	}
}

func TestCheckRotation(t *testing.T) {
	// afterRotation is a ledger whose keyA was replaced by keyB, with the
	// next message stored d after the rotation.
	afterRotation := func(d time.Duration) func(w *ledgerWriter) []domain.StoredMessage {
		return func(w *ledgerWriter) []domain.StoredMessage {
			ms := append(signed(w), w.rotate(keyB))
			w.now = ms[len(ms)-1].Stored.Add(d)
			return ms
		}
	}
	rotation := func(ev *domain.KeyRotated, key ed25519.PrivateKey) func(w *ledgerWriter) domain.StoredMessage {
		return func(w *ledgerWriter) domain.StoredMessage { return w.forge(domain.KeysStream, ev, key) }
	}
	runCheck(t, []checkCase{
		{name: "the old key just after the rotation", given: afterRotation(time.Second),
			when: func(w *ledgerWriter) domain.StoredMessage { return w.appendSigned("crm", evDeleted, keyA) },
			then: then{keyID: idOf(keyA), event: domain.TypeBackupDeleted}},
		{name: "the old key at the end of the grace", given: afterRotation(domain.RotationGrace),
			when: func(w *ledgerWriter) domain.StoredMessage { return w.appendSigned("crm", evDeleted, keyA) },
			then: then{keyID: idOf(keyA), event: domain.TypeBackupDeleted}},
		{name: "the old key after the grace", given: afterRotation(domain.RotationGrace + time.Millisecond),
			when: func(w *ledgerWriter) domain.StoredMessage { return w.appendSigned("crm", evDeleted, keyA) },
			then: then{rejected: domain.ReasonRetiredKey}},
		{name: "the old key without a store time", given: afterRotation(time.Second),
			when: func(w *ledgerWriter) domain.StoredMessage {
				m := w.forge("crm", evDeleted, keyA)
				m.Stored = time.Time{}
				return m
			},
			then: then{rejected: domain.ReasonRetiredKey}},
		{name: "the new key at once", given: afterRotation(0),
			when: func(w *ledgerWriter) domain.StoredMessage { return w.append("crm", evDeleted) },
			then: then{keyID: idOf(keyB), event: domain.TypeBackupDeleted}},
		{name: "a rotation signed by the retired key within the grace", given: afterRotation(time.Second),
			when: rotation(domain.NewKeyRotated(pubOf(keyC), idOf(keyA)), keyA),
			then: then{rejected: domain.ReasonRetiredKey}},
		{name: "a rotation back to a key the ledger had", given: afterRotation(time.Second),
			when: rotation(domain.NewKeyRotated(pubOf(keyA), idOf(keyB)), keyB),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "a rotation to the current key", given: afterRotation(time.Second),
			when: rotation(domain.NewKeyRotated(pubOf(keyB), idOf(keyB)), keyB),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "a rotation naming another previous key", given: afterRotation(time.Second),
			when: rotation(domain.NewKeyRotated(pubOf(keyC), idOf(keyA)), keyB),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "a rotation whose key id is not its key's", given: afterRotation(time.Second),
			when: rotation(&domain.KeyRotated{KeyID: idOf(mallory), Algorithm: "ed25519", PublicKey: encodeStd(pubOf(keyC)),
				PreviousKeyID: idOf(keyB)}, keyB),
			then: then{rejected: domain.ReasonBadKeyEvent}},
		{name: "a rotation mis-chained", given: afterRotation(time.Second),
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.forge(domain.KeysStream, domain.NewKeyRotated(pubOf(keyC), idOf(keyB)), keyB,
					func(e *domain.Envelope) { e.PrevHash = "" })
			},
			then: then{rejected: domain.ReasonPrevHash}},
		{name: "a replayed rotation", given: afterRotation(time.Second),
			when: func(w *ledgerWriter) domain.StoredMessage { return w.replay(2) },
			then: then{rejected: domain.ReasonRetiredKey}},
		{name: "a second key.created after a rotation", given: afterRotation(time.Second),
			when: func(w *ledgerWriter) domain.StoredMessage {
				return w.forge(domain.KeysStream, domain.NewKeyCreated(pubOf(keyC), macKey), keyB)
			},
			then: then{rejected: domain.ReasonBadKeyEvent}},
	})
}

// A forged event chained like a genuine one is refused and moves no head:
// the next genuine event, chained to the head before the forgery, is the
// one accepted.
func TestCheckForgeryDoesNotMoveTheHead(t *testing.T) {
	w := newLedgerWriter(t)
	c := domain.NewLedgerCheck()
	for _, m := range signed(w) {
		if v := c.Check(m); !v.Accepted() {
			t.Fatalf("seq %d: %s", m.Seq, v.Detail)
		}
	}
	head := c.Head("crm")
	foreign := w.forge("crm", evDeleted, mallory)
	foreign.KeyID = idOf(keyA)
	for _, f := range []struct {
		m    domain.StoredMessage
		want string
	}{
		{w.forge("crm", evDeleted, nil), domain.ReasonUnsigned},
		{w.forge("crm", evDeleted, mallory), domain.ReasonUnknownKey},
		{foreign, domain.ReasonBadSignature},
	} {
		var env domain.Envelope
		if err := json.Unmarshal(f.m.Body, &env); err != nil || env.PrevHash != head || env.Type != domain.TypeBackupDeleted {
			t.Fatalf("the forgery is not a backup.deleted chained to the head: %v", err)
		}
		v := c.Check(f.m)
		if v.Rejected != f.want || v.Event != nil || v.Env == nil || v.Env.Type != domain.TypeBackupDeleted {
			t.Errorf("forgery seq %d: rejected %q (want %q), event %v, env %v", f.m.Seq, v.Rejected, f.want, v.Event, v.Env)
		}
		if c.Head("crm") != head {
			t.Fatalf("forgery seq %d moved the head", f.m.Seq)
		}
	}
	genuine := w.append("crm", evDeleted)
	if v := c.Check(genuine); !v.Accepted() || v.KeyID != idOf(keyA) {
		t.Fatalf("the genuine event after the forgeries: rejected %q: %s", v.Rejected, v.Detail)
	}
	if c.Head("crm") != domain.HashEvent(genuine.Body) {
		t.Fatal("the genuine event is not the head")
	}
}

// The keys the check learnt: the genesis after an unsigned prefix, then
// two rotations.
func TestCheckKeys(t *testing.T) {
	w := newLedgerWriter(t)
	c := domain.NewLedgerCheck()
	if _, ok := c.CurrentKey(); ok || c.Genesis() != 0 || len(c.Keys()) != 0 {
		t.Fatal("an empty ledger has keys")
	}
	check := func(m domain.StoredMessage) {
		t.Helper()
		if v := c.Check(m); !v.Accepted() {
			t.Fatalf("seq %d: %s", m.Seq, v.Detail)
		}
	}
	check(w.append("crm", evRequested))
	if _, ok := c.CurrentKey(); ok || c.Genesis() != 0 {
		t.Fatal("an unsigned ledger has a key")
	}
	gen := w.genesis(keyA)
	check(gen)
	check(w.append("crm", evDeleted))
	r1 := w.rotate(keyB)
	check(r1)
	r2 := w.rotate(keyC)
	check(r2)
	if c.Genesis() != gen.Seq || gen.Seq != 2 {
		t.Errorf("Genesis() = %d, want %d", c.Genesis(), gen.Seq)
	}
	want := []domain.KeyInfo{
		{ID: idOf(keyA), PublicKey: pubOf(keyA), CreatedSeq: gen.Seq, CreatedAt: gen.Stored, RetiredSeq: r1.Seq, RetiredAt: r1.Stored,
			MACKeySHA256: domain.MACKeyDigest(macKey)},
		{ID: idOf(keyB), PublicKey: pubOf(keyB), CreatedSeq: r1.Seq, CreatedAt: r1.Stored, RetiredSeq: r2.Seq, RetiredAt: r2.Stored},
		{ID: idOf(keyC), PublicKey: pubOf(keyC), CreatedSeq: r2.Seq, CreatedAt: r2.Stored},
	}
	keys := c.Keys()
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("Keys() = %+v\nwant %+v", keys, want)
	}
	cur, ok := c.CurrentKey()
	if !ok || !reflect.DeepEqual(cur, want[2]) || cur.Retired() || !keys[0].Retired() {
		t.Fatalf("CurrentKey() = %+v, %v", cur, ok)
	}
	if c.Head(domain.KeysStream) != domain.HashEvent(r2.Body) {
		t.Error("the last rotation is not the head of _keys")
	}
	// What the caller gets is a copy.
	keys[0].PublicKey[0] ^= 0xff
	cur.PublicKey[0] ^= 0xff
	if !reflect.DeepEqual(c.Keys(), want) {
		t.Fatal("changing what Keys() or CurrentKey() returned changed the check's keys")
	}
	check(w.append("crm", evRequested))
}

// macOf is the TrustMAC of a process that holds keyA and keyB.
func macOf(id string) []byte {
	for _, k := range []ed25519.PrivateKey{keyA, keyB} {
		if idOf(k) == id {
			return domain.EventMACKey(k)
		}
	}
	return nil
}

// sealed adds to m the event MAC of its body under key.
func sealed(m domain.StoredMessage, key []byte) domain.StoredMessage {
	m.MAC = domain.EventMAC(key, m.Body)
	return m
}

// A check that trusts the event MAC (backupd's projections) takes a valid
// MAC of the key a message names for its signature; everything else is
// checked as without it, key events are verified in full, and a check
// without the keys (an auditor) verifies the signature whatever the MAC
// says.
func TestCheckTrustMAC(t *testing.T) {
	macA := domain.EventMACKey(keyA)
	badSig := func(m domain.StoredMessage) domain.StoredMessage {
		_, m.Signature = domain.SignBody(mallory, m.Body)
		return m
	}
	tests := []struct {
		name  string
		when  func(w *ledgerWriter) domain.StoredMessage
		trust bool
		want  string // reason, "" accepted
	}{
		{"a valid MAC stands in for the signature", func(w *ledgerWriter) domain.StoredMessage {
			return badSig(sealed(w.append("crm", evDeleted), macA))
		}, true, ""},
		{"without the keys the signature counts", func(w *ledgerWriter) domain.StoredMessage {
			return badSig(sealed(w.append("crm", evDeleted), macA))
		}, false, domain.ReasonBadSignature},
		{"a MAC under another key falls back to the signature", func(w *ledgerWriter) domain.StoredMessage {
			return sealed(w.append("crm", evDeleted), []byte("another key"))
		}, true, ""},
		{"the MAC of another of the ledger's keys does not count", func(w *ledgerWriter) domain.StoredMessage {
			return badSig(sealed(w.append("crm", evDeleted), domain.EventMACKey(keyB)))
		}, true, domain.ReasonBadSignature},
		{"a wrong MAC and a bad signature", func(w *ledgerWriter) domain.StoredMessage {
			return badSig(sealed(w.append("crm", evDeleted), []byte("another key")))
		}, true, domain.ReasonBadSignature},
		{"a MAC that is not base64", func(w *ledgerWriter) domain.StoredMessage {
			m := badSig(w.append("crm", evDeleted))
			m.MAC = "not base64!"
			return m
		}, true, domain.ReasonBadSignature},
		{"a valid MAC does not excuse an unknown key", func(w *ledgerWriter) domain.StoredMessage {
			return sealed(w.forge("crm", evDeleted, mallory), macA)
		}, true, domain.ReasonUnknownKey},
		{"nor a broken chain (a replay)", func(w *ledgerWriter) domain.StoredMessage {
			return sealed(w.replay(1), macA)
		}, true, domain.ReasonPrevHash},
		{"nor a missing signature", func(w *ledgerWriter) domain.StoredMessage {
			m := sealed(w.append("crm", evDeleted), macA)
			m.KeyID, m.Signature = "", ""
			return m
		}, true, domain.ReasonUnsigned},
		{"key events are always verified", func(w *ledgerWriter) domain.StoredMessage {
			return badSig(sealed(w.rotate(keyB), macA))
		}, true, domain.ReasonBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newLedgerWriter(t)
			c := domain.NewLedgerCheck()
			if tc.trust {
				c.TrustMAC(macOf)
			}
			for _, m := range signed(w) {
				if v := c.Check(sealed(m, macA)); !v.Accepted() {
					t.Fatalf("given seq %d: %s", m.Seq, v.Detail)
				}
			}
			if v := c.Check(tc.when(w)); v.Rejected != tc.want {
				t.Errorf("rejected %q (%s), want %q", v.Rejected, v.Detail, tc.want)
			}
		})
	}
}

// On a ledger written unsigned, someone who could write it may have
// planted a self-signed key.created of their own key. backupd pins the
// genesis key its vault recorded, so it refuses the planted one and its own
// genesis follows (what came before that genesis is the unsigned prefix,
// planted events included: trusted as it was); an auditor who pins the
// genesis key agrees; an auditor who does not takes the planted key for
// the ledger's and sees every event of backupd's refused, which says
// loudly that something is wrong.
func TestCheckPlantedGenesis(t *testing.T) {
	w := newLedgerWriter(t)
	var msgs []domain.StoredMessage
	msgs = append(msgs, w.appendSigned("crm", evRequested, nil)) // the unsigned prefix
	w.key = mallory
	planted := w.append(domain.KeysStream, domain.NewKeyCreated(pubOf(mallory), macKey))
	grant := w.append(domain.IdentityStream, &domain.AdminGranted{App: "crm", User: "mallory"})
	msgs = append(msgs, planted, grant)
	delete(w.heads, domain.KeysStream) // backupd's genesis is the first of _keys it accepts
	delete(w.heads, domain.IdentityStream)
	msgs = append(msgs, sealed(w.genesis(keyA), domain.EventMACKey(keyA)), sealed(w.append("crm", evDeleted), domain.EventMACKey(keyA)))
	backupd := domain.NewLedgerCheck() // pins the genesis key its vault recorded
	backupd.TrustMAC(macOf)
	backupd.PinGenesis(idOf(keyA))
	pinned := domain.NewLedgerCheck()
	pinned.PinGenesis(idOf(keyA))
	unpinned := domain.NewLedgerCheck()
	want := map[string][]string{ // verdicts of planted, grant, genesis, deleted
		"backupd":  {domain.ReasonNotGenesis, "", "", ""},
		"pinned":   {domain.ReasonNotGenesis, "", "", ""},
		"unpinned": {"", "", domain.ReasonUnknownKey, domain.ReasonUnknownKey},
	}
	for name, c := range map[string]*domain.LedgerCheck{"backupd": backupd, "pinned": pinned, "unpinned": unpinned} {
		var got []string
		for i, m := range msgs {
			v := c.Check(m)
			if i == 0 {
				continue
			}
			got = append(got, v.Rejected)
		}
		// Before the genesis the grant is part of the unsigned prefix.
		if !slices.Equal(got, want[name]) {
			t.Errorf("%s: verdicts %q, want %q", name, got, want[name])
		}
		if name != "unpinned" {
			if cur, _ := c.CurrentKey(); cur.ID != idOf(keyA) || c.Genesis() != msgs[3].Seq {
				t.Errorf("%s: genesis %d, key %s; want backupd's", name, c.Genesis(), cur.ID)
			}
		}
	}
}
