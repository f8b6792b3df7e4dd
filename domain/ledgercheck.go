package domain

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// StoredMessage is one message of the stream LEDGER as stored.
type StoredMessage struct {
	// Seq is its stream sequence (from 1).
	Seq uint64
	// Token is its subject's token after "ledger.events.".
	Token string
	// Body is the message body, bytes exactly as stored.
	Body []byte
	// KeyID, Signature and MAC are the values of HeaderKeyID,
	// HeaderSignature and HeaderMAC, "" when absent.
	KeyID     string
	Signature string
	MAC       string
	// Stored is the time JetStream stored it: set by the server, never
	// by the publisher. The rotation grace is measured in it.
	Stored time.Time
}

// Reason codes of a Verdict: why a message is rejected (Verdict.Rejected),
// or why a link of the unsigned prefix is broken (Verdict.Broken). They are
// stable: metrics and the CLI show them.
const (
	// ReasonUnsigned: a message after the genesis (or a key event) lacks
	// HeaderKeyID or HeaderSignature.
	ReasonUnsigned = "unsigned"
	// ReasonUnknownKey: HeaderKeyID names no key of the ledger.
	ReasonUnknownKey = "unknown_key"
	// ReasonRetiredKey: the key was replaced more than RotationGrace
	// before the message was stored, or a key.rotated is signed by a key
	// other than the current one.
	ReasonRetiredKey = "retired_key"
	// ReasonBadSignature: HeaderSignature is not the key's signature of
	// the body (also when it is not base64 of 64 bytes).
	ReasonBadSignature = "bad_signature"
	// ReasonUndecodable: the body is not a JSON event envelope.
	ReasonUndecodable = "undecodable"
	// ReasonWrongApp: the envelope's app is not the subject's token.
	ReasonWrongApp = "wrong_app"
	// ReasonPrevHash: prev_hash is not the hash of the subject's last
	// accepted message (mis-chained, or a replayed copy).
	ReasonPrevHash = "prev_hash"
	// ReasonNoPrevHash: the envelope has no prev_hash field (a broken
	// link of the unsigned prefix only; after the genesis a message
	// without it must chain to "").
	ReasonNoPrevHash = "no_prev_hash"
	// ReasonBadKeyEvent: a key event that does not announce a valid next
	// key, a key event on another subject, or another event on KeysStream.
	ReasonBadKeyEvent = "bad_key_event"
	// ReasonBadSubject: the subject's token is neither an app id,
	// IdentityStream nor KeysStream.
	ReasonBadSubject = "bad_subject"
	// ReasonNotGenesis: a key.created of another key than the one pinned
	// (PinGenesis): backupd's vault's genesis key, or the auditor's.
	ReasonNotGenesis = "not_genesis"
)

// Verdict is what LedgerCheck.Check decided about one message.
type Verdict struct {
	// Hash is HashEvent of the body: the subject's head once the message
	// is accepted.
	Hash string
	// Env is the decoded envelope, nil if the body is not one. It is also
	// set for a rejected message, to say what the message claimed to be.
	Env *Envelope
	// Event is the decoded data of an accepted message; nil for a rejected
	// one, for a type or version this code does not know, and for a key
	// event in the unsigned prefix outside KeysStream (which announces
	// nothing).
	Event Event
	// Legacy is true when the message was accepted unsigned because it
	// precedes the genesis.
	Legacy bool
	// KeyID is the key that verified the message; "" when Legacy.
	KeyID string
	// Rejected is "" when the message is part of the ledger, else a
	// Reason code.
	Rejected string
	// Broken, for a Legacy message only, is the Reason code of a broken
	// chain link that was accepted all the same: ReasonUndecodable,
	// ReasonNoPrevHash, ReasonWrongApp or ReasonPrevHash. Env and Event
	// are set as far as the body decodes; whether to fold such a message
	// as an event or as opaque is the caller's choice.
	Broken string
	// Detail says in a sentence why the message was rejected or its link
	// is broken, for logs and the CLI.
	Detail string
}

// Accepted reports whether the message is part of the ledger.
func (v Verdict) Accepted() bool { return v.Rejected == "" }

func (v *Verdict) reject(code, format string, args ...any) {
	v.Rejected, v.Detail = code, fmt.Sprintf(format, args...)
}

func (v *Verdict) broken(code, format string, args ...any) {
	v.Broken, v.Detail = code, fmt.Sprintf(format, args...)
}

// LedgerCheck decides, for the messages of LEDGER fed to it in stream
// order, whether each is part of the ledger, and keeps what that takes: the
// signing keys learnt from KeysStream and each subject's chain head (the
// hash of its last accepted message). It is not safe for concurrent use.
//
// The messages before the genesis (the first valid key.created on
// KeysStream) are the unsigned prefix of a ledger written before signing
// existed: they are accepted as the ledger always took them. From the
// genesis on, every message must be signed by a key of the ledger and
// chain to its subject's head (docs/events.md#signatures).
type LedgerCheck struct {
	genesis uint64
	keys    []KeyInfo      // in the order announced; the last is current
	byID    map[string]int // key id → index in keys
	heads   map[string]string
	// announcedBy is the CommandKey of the event that announced each key.
	announcedBy map[string]string
	// macKey, when set (TrustMAC), returns the event MAC key of a signing
	// key the caller holds, nil for another.
	macKey func(keyID string) []byte
	// pin, when set (PinGenesis), is the only key a genesis may announce.
	pin string
}

// TrustMAC makes c the check of the process that holds the ledger's keys:
// macKey returns the event MAC key (EventMACKey) of a signing key it
// holds, nil for a key it does not hold. Then a message after the genesis
// whose HeaderMAC is valid under the MAC key of the key it names is taken
// without verifying its signature: the MAC is fifty times cheaper to check,
// and whoever can make it holds that signing key. Everything else (the key
// named, its retirement, the app, the chain) is checked as without it;
// key events are always verified in full, and a missing or wrong MAC falls
// back to the signature. backupd's projections use it; auditors, who hold
// no key, verify every signature.
func (c *LedgerCheck) TrustMAC(macKey func(keyID string) []byte) { c.macKey = macKey }

// PinGenesis makes keyID the only key a genesis may announce: a
// key.created of another key, before or after it, is refused. backupd pins
// the genesis key its vault recorded, and an auditor the one they recorded
// for the ledger, so that a self-signed key.created someone planted on the
// unsigned ledger before backupd's genesis is not taken for it.
func (c *LedgerCheck) PinGenesis(keyID string) { c.pin = keyID }

// NewLedgerCheck returns the check of an empty ledger.
func NewLedgerCheck() *LedgerCheck {
	return &LedgerCheck{byID: map[string]int{}, heads: map[string]string{}, announcedBy: map[string]string{}}
}

// AnnouncedBy returns the CommandKey of the event that announced the key
// keyID, or "" when the check has seen no such announcement.
func (c *LedgerCheck) AnnouncedBy(keyID string) string { return c.announcedBy[keyID] }

// Genesis returns the stream sequence of the accepted key.created, 0 while
// the ledger is unsigned.
func (c *LedgerCheck) Genesis() uint64 { return c.genesis }

// CurrentKey returns the key that signs the ledger now; false while the
// ledger is unsigned.
func (c *LedgerCheck) CurrentKey() (KeyInfo, bool) {
	if len(c.keys) == 0 {
		return KeyInfo{}, false
	}
	return cloneKey(c.keys[len(c.keys)-1]), true
}

// Keys returns every key announced, in order: the genesis key first, the
// current key last.
func (c *LedgerCheck) Keys() []KeyInfo {
	out := make([]KeyInfo, len(c.keys))
	for i, k := range c.keys {
		out[i] = cloneKey(k)
	}
	return out
}

// Head returns the prev_hash the next event of the subject token must
// carry: the hash of its last accepted message, "" if none.
func (c *LedgerCheck) Head(token string) string { return c.heads[token] }

// Check decides whether m, the message after those already checked, is part
// of the ledger, and records it: an accepted message becomes its subject's
// head, an accepted key event changes the keys. A rejected message changes
// nothing.
func (c *LedgerCheck) Check(m StoredMessage) Verdict {
	return c.check(m, HashEvent(m.Body), nil, nil)
}

// Own is what a process knows of a message it signed and appended itself:
// the body's hash and its decoding.
type Own struct {
	Hash  string
	Env   *Envelope
	Event Event
}

// CheckOwn is Check of a message this process signed and appended itself,
// announced with its hash and decoding: after the genesis, the signature
// is not verified and the body not decoded again (the rest is checked as
// Check does). A message of the unsigned prefix or of KeysStream is
// checked in full.
func (c *LedgerCheck) CheckOwn(m StoredMessage, own Own) Verdict {
	return c.check(m, own.Hash, &own, nil)
}

func (c *LedgerCheck) check(m StoredMessage, hash string, own *Own, p *Prepared) Verdict {
	v := Verdict{Hash: hash}
	switch {
	case m.Token != IdentityStream && m.Token != KeysStream && ValidateAppID(m.Token) != nil:
		v.reject(ReasonBadSubject, "subject token %q is neither an app id, %s nor %s", m.Token, IdentityStream, KeysStream)
	case len(c.keys) == 0 && m.Token == KeysStream:
		c.checkGenesis(m, &v)
	case len(c.keys) == 0:
		c.checkLegacy(m, &v, p)
	default:
		c.checkSigned(m, &v, own, p)
	}
	if !v.Accepted() {
		v.Event = nil
		if v.Env == nil && v.Rejected != ReasonUndecodable {
			v.Env, _ = p.envelope(m.Body)
		}
	}
	return v
}

// checkLegacy accepts a message of the unsigned prefix, reporting a broken
// link as audit verify does. The head moves even past a broken link: the
// backupd of old chained its next event to whatever it folded last.
func (c *LedgerCheck) checkLegacy(m StoredMessage, v *Verdict, p *Prepared) {
	v.Legacy = true
	head := c.heads[m.Token]
	c.heads[m.Token] = v.Hash
	env, err := p.envelope(m.Body)
	if err != nil {
		v.broken(ReasonUndecodable, "the body is not a JSON event envelope: %v", err)
		return
	}
	v.Env = env
	switch {
	case env.PrevHash == "" && !hasPrevHash(m.Body):
		v.broken(ReasonNoPrevHash, "the event has no prev_hash")
	case env.App != m.Token:
		v.broken(ReasonWrongApp, "the event is of app %q, not of its subject's %q", env.App, m.Token)
	case env.PrevHash != head:
		v.broken(ReasonPrevHash, "prev_hash %q is not the hash %q of the subject's previous event", env.PrevHash, head)
	}
	if !isKeyType(env.Type) {
		v.Event = p.event(env)
	}
}

// checkGenesis accepts the message that starts the signed ledger: a
// self-signed key.created, the first event of KeysStream.
func (c *LedgerCheck) checkGenesis(m StoredMessage, v *Verdict) {
	if m.KeyID == "" || m.Signature == "" {
		v.reject(ReasonUnsigned, "a key event must be signed (headers %s and %s)", HeaderKeyID, HeaderSignature)
		return
	}
	env, err := decodeEnvelope(m.Body)
	if err != nil {
		v.reject(ReasonUndecodable, "the body is not a JSON event envelope: %v", err)
		return
	}
	v.Env = env
	if env.App != KeysStream {
		v.reject(ReasonWrongApp, "the event is of app %q, not of its subject's %q", env.App, KeysStream)
		return
	}
	if env.Type != TypeKeyCreated {
		v.reject(ReasonBadKeyEvent, "the first event of %s must be %s, not %q", KeysStream, TypeKeyCreated, env.Type)
		return
	}
	if env.PrevHash != "" {
		v.reject(ReasonPrevHash, "prev_hash %q of the first key event is not empty", env.PrevHash)
		return
	}
	ev, err := DecodeEvent(env)
	if err != nil {
		v.reject(ReasonBadKeyEvent, "%v", err)
		return
	}
	kc := ev.(*KeyCreated)
	pub, err := announcedKey(kc.Algorithm, kc.PublicKey, kc.KeyID)
	if err != nil {
		v.reject(ReasonBadKeyEvent, "%s: %v", TypeKeyCreated, err)
		return
	}
	if m.KeyID != kc.KeyID {
		v.reject(ReasonBadKeyEvent, "%s announces key %s but %s names %q: it must be signed by the key it announces",
			TypeKeyCreated, kc.KeyID, HeaderKeyID, m.KeyID)
		return
	}
	if !IsLowerHex(kc.MACKeySHA256, 64) {
		v.reject(ReasonBadKeyEvent, "%s: mac_key_sha256 %q is not 64 lower-case hex digits", TypeKeyCreated, kc.MACKeySHA256)
		return
	}
	if !verifyBody(pub, m.Body, m.Signature) {
		v.reject(ReasonBadSignature, "the signature does not verify with key %s", kc.KeyID)
		return
	}
	if c.pin != "" && kc.KeyID != c.pin {
		v.reject(ReasonNotGenesis, "%s announces key %s, not the genesis key %s", TypeKeyCreated, kc.KeyID, c.pin)
		return
	}
	c.genesis = m.Seq
	c.announcedBy[kc.KeyID] = CommandKey(env.Actor, env.CommandID)
	c.addKey(KeyInfo{ID: kc.KeyID, PublicKey: pub, CreatedSeq: m.Seq, CreatedAt: m.Stored, MACKeySHA256: kc.MACKeySHA256})
	c.heads[KeysStream] = v.Hash
	v.KeyID, v.Event = kc.KeyID, kc
}

// checkSigned decides a message after the genesis. The cheap checks of
// the headers and the key come before the signature, and the signature
// before the body is decoded. A message of this process's own (own not
// nil, and not on KeysStream) skips the signature and the decoding.
func (c *LedgerCheck) checkSigned(m StoredMessage, v *Verdict, own *Own, p *Prepared) {
	if m.KeyID == "" || m.Signature == "" {
		v.reject(ReasonUnsigned, "the ledger is signed since seq %d and the message lacks %s or %s", c.genesis, HeaderKeyID, HeaderSignature)
		return
	}
	i, ok := c.byID[m.KeyID]
	if !ok {
		v.reject(ReasonUnknownKey, "key %q is not a key of the ledger", m.KeyID)
		return
	}
	k := c.keys[i]
	current := i == len(c.keys)-1
	if !current && !withinGrace(k, m.Stored) {
		v.reject(ReasonRetiredKey, "key %s was retired at seq %d (%s), more than %s before the message was stored (%s)",
			k.ID, k.RetiredSeq, k.RetiredAt.UTC().Format(time.RFC3339Nano), RotationGrace, m.Stored.UTC().Format(time.RFC3339Nano))
		return
	}
	if own != nil && m.Token == KeysStream {
		own = nil
	}
	var env *Envelope
	if own != nil {
		env = own.Env
	} else {
		trusted := false
		if c.macKey != nil && m.Token != KeysStream && m.MAC != "" {
			mk := c.macKey(k.ID)
			trusted = mk != nil && p.validMAC(k.ID, mk, m)
		}
		if !trusted && !verifyBody(k.PublicKey, m.Body, m.Signature) {
			v.reject(ReasonBadSignature, "the signature does not verify with key %s", k.ID)
			return
		}
		var err error
		if env, err = p.envelope(m.Body); err != nil {
			v.reject(ReasonUndecodable, "the body is not a JSON event envelope: %v", err)
			return
		}
	}
	v.Env = env
	if env.App != m.Token {
		v.reject(ReasonWrongApp, "the event is of app %q, not of its subject's %q", env.App, m.Token)
		return
	}
	if m.Token == KeysStream {
		c.checkRotation(m, v, k, current)
		return
	}
	if isKeyType(env.Type) {
		v.reject(ReasonBadKeyEvent, "a %s event on subject %q; key events are on %s only", env.Type, m.Token, KeysStream)
		return
	}
	if head := c.heads[m.Token]; env.PrevHash != head {
		v.reject(ReasonPrevHash, "prev_hash %q is not the hash %q of the subject's last accepted event", env.PrevHash, head)
		return
	}
	c.heads[m.Token] = v.Hash
	v.KeyID = k.ID
	if own != nil {
		v.Event = own.Event
		return
	}
	v.Event = p.event(env) // nil: a newer type or version, kept opaque
}

// checkRotation decides a signed, decoded message of KeysStream after the
// genesis: only a key.rotated of the current key, announcing a new key.
func (c *LedgerCheck) checkRotation(m StoredMessage, v *Verdict, signer KeyInfo, current bool) {
	env := v.Env
	if env.Type != TypeKeyRotated {
		v.reject(ReasonBadKeyEvent, "after the genesis (seq %d) %s takes %s only, not %q", c.genesis, KeysStream, TypeKeyRotated, env.Type)
		return
	}
	if !current {
		v.reject(ReasonRetiredKey, "%s must be signed by the current key, not by key %s retired at seq %d", TypeKeyRotated, signer.ID, signer.RetiredSeq)
		return
	}
	if head := c.heads[KeysStream]; env.PrevHash != head {
		v.reject(ReasonPrevHash, "prev_hash %q is not the hash %q of the last key event", env.PrevHash, head)
		return
	}
	ev, err := DecodeEvent(env)
	if err != nil {
		v.reject(ReasonBadKeyEvent, "%v", err)
		return
	}
	kr := ev.(*KeyRotated)
	pub, err := announcedKey(kr.Algorithm, kr.PublicKey, kr.KeyID)
	if err != nil {
		v.reject(ReasonBadKeyEvent, "%s: %v", TypeKeyRotated, err)
		return
	}
	if _, seen := c.byID[kr.KeyID]; seen {
		v.reject(ReasonBadKeyEvent, "%s announces key %s, which the ledger already had", TypeKeyRotated, kr.KeyID)
		return
	}
	if kr.PreviousKeyID != signer.ID {
		v.reject(ReasonBadKeyEvent, "%s names previous key %q, the current key is %s", TypeKeyRotated, kr.PreviousKeyID, signer.ID)
		return
	}
	last := &c.keys[len(c.keys)-1]
	last.RetiredSeq, last.RetiredAt = m.Seq, m.Stored
	c.announcedBy[kr.KeyID] = CommandKey(env.Actor, env.CommandID)
	c.addKey(KeyInfo{ID: kr.KeyID, PublicKey: pub, CreatedSeq: m.Seq, CreatedAt: m.Stored})
	c.heads[KeysStream] = v.Hash
	v.KeyID, v.Event = signer.ID, kr
}

func (c *LedgerCheck) addKey(k KeyInfo) {
	c.byID[k.ID] = len(c.keys)
	c.keys = append(c.keys, k)
}

// withinGrace reports whether a message stored at stored may still be
// signed by the retired key k. A message without a store time may not.
func withinGrace(k KeyInfo, stored time.Time) bool {
	return !stored.IsZero() && !stored.After(k.RetiredAt.Add(RotationGrace))
}

func cloneKey(k KeyInfo) KeyInfo {
	k.PublicKey = ed25519.PublicKey(slices.Clone([]byte(k.PublicKey)))
	return k
}

func isKeyType(typ string) bool { return typ == TypeKeyCreated || typ == TypeKeyRotated }

func decodeEnvelope(body []byte) (*Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, err
	}
	return &env, nil
}

// hasPrevHash reports whether a decodable body has a prev_hash field.
func hasPrevHash(body []byte) bool {
	var probe struct {
		PrevHash *string `json:"prev_hash"`
	}
	return json.Unmarshal(body, &probe) == nil && probe.PrevHash != nil
}
