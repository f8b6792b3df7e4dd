package domain

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// KeyVault keeps the ledger's private keys where only backupd reads them
// (the key-value bucket ledger_keys at the edge). Keys are made at the
// edge, from crypto/rand.
type KeyVault interface {
	// NewSigningKey makes a new Ed25519 key and stores it under its
	// KeyIDOf; it never replaces a stored key.
	NewSigningKey(ctx context.Context) (ed25519.PrivateKey, error)
	// SigningKey returns the stored key of id, or an error wrapping
	// ErrNoKey. A stored key whose public key is not id's is an error.
	SigningKey(ctx context.Context, id string) (ed25519.PrivateKey, error)
	// MACKey returns the 32-byte key that authenticates the secrets
	// bucket's values, making and storing it the first time; every
	// replica gets the same.
	MACKey(ctx context.Context) ([]byte, error)
	// ClaimGenesis records id as the ledger's first key unless another id
	// was recorded first, and returns the id recorded: replicas that start
	// together agree on one.
	ClaimGenesis(ctx context.Context, id string) (string, error)
}

// ErrNoKey is returned (wrapped) by a KeyVault for a key it does not hold.
var ErrNoKey = errors.New("no such key")

// ErrNotSigning is returned (wrapped) by Signing.Sign before Setup.
var ErrNotSigning = errors.New("the ledger's signing key is not loaded yet")

// SubjectReader reads every message of one ledger subject, in stream
// order, with its signature headers and store time (the event store at
// the edge).
type SubjectReader interface {
	ReadSubject(ctx context.Context, token string) ([]StoredMessage, error)
}

// KeysActor is the actor of the genesis key.created.
const KeysActor = "system:keys"

// maxKeyAttempts bounds the rounds of a key event that meets concurrent
// appends to KeysStream.
const maxKeyAttempts = 10

// Signing keeps the ledger's signing key: it starts the signed ledger (the
// genesis) on a ledger that has none, signs what this process appends
// with the current key, follows rotations made by other processes, and
// rotates the key. Safe for concurrent use.
type Signing struct {
	vault  KeyVault
	store  EventStore
	reader SubjectReader
	clock  Clock
	ids    IDs
	log    *slog.Logger

	mu      sync.Mutex
	current KeyInfo            // the key this process signs with
	priv    ed25519.PrivateKey // current's
	want    KeyInfo            // the current key as the projection last told (Learn)
	cache   map[string]ed25519.PrivateKey
	mac     []byte // the vault's MAC key
	evMAC   []byte // EventMACKey(mac)
}

// NewSigning returns a Signing that is not set up yet.
func NewSigning(vault KeyVault, store EventStore, reader SubjectReader, clock Clock, ids IDs, log *slog.Logger) *Signing {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Signing{vault: vault, store: store, reader: reader, clock: clock, ids: ids, log: log, cache: map[string]ed25519.PrivateKey{}}
}

// Setup loads the ledger's current signing key and the secrets' MAC key,
// and returns the MAC key. On a ledger without a genesis it starts the
// signed ledger first: it makes (or, with other replicas, agrees on) the
// first key, calls authenticate with the MAC key (the secrets written
// before get their MAC, once, before the genesis says the ledger is
// signed), and appends key.created signed by that key. It returns an
// error when a key the ledger announced is not in the vault, or when the
// vault's MAC key is not the one the genesis announced: a vault that was
// replaced, or belongs to another ledger.
func (s *Signing) Setup(ctx context.Context, authenticate func(ctx context.Context, mac []byte) error) ([]byte, error) {
	mac, err := s.vault.MACKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("mac key: %w", err)
	}
	for attempt := 1; ; attempt++ {
		check, last, err := s.readKeys(ctx)
		if err != nil {
			return nil, err
		}
		if check.Genesis() == 0 {
			if attempt > maxKeyAttempts {
				return nil, fmt.Errorf("start the signed ledger: %s kept changing", KeysStream)
			}
			if err := s.genesis(ctx, mac, last, authenticate); err != nil {
				return nil, err
			}
			continue // read what was recorded, by this process or another
		}
		keys := check.Keys()
		if keys[0].MACKeySHA256 != MACKeyDigest(mac) {
			return nil, fmt.Errorf("the MAC key in the key vault is not the one the ledger's genesis (seq %d) announced: the vault was replaced, or is another ledger's", check.Genesis())
		}
		cur, _ := check.CurrentKey()
		priv, err := s.key(ctx, cur.ID)
		if err != nil {
			return nil, fmt.Errorf("the ledger's current signing key %s (seq %d): %w", cur.ID, cur.CreatedSeq, err)
		}
		s.mu.Lock()
		if cur.CreatedSeq >= s.want.CreatedSeq {
			s.want = cur
		}
		s.current, s.priv, s.mac, s.evMAC = cur, priv, mac, EventMACKey(mac)
		s.mu.Unlock()
		s.log.Info("ledger signing key loaded", "key_id", cur.ID, "since_seq", cur.CreatedSeq, "genesis_seq", check.Genesis())
		return mac, nil
	}
}

// readKeys checks the messages of KeysStream as the projections do, and
// returns the check and the subject's last sequence.
func (s *Signing) readKeys(ctx context.Context) (*LedgerCheck, uint64, error) {
	msgs, err := s.reader.ReadSubject(ctx, KeysStream)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", KeysStream, err)
	}
	check := NewLedgerCheck()
	var last uint64
	for _, m := range msgs {
		if v := check.Check(m); !v.Accepted() {
			s.log.Error("ledger message refused", "seq", m.Seq, "app", KeysStream, "reason", v.Rejected, "detail", v.Detail)
		}
		last = m.Seq
	}
	return check, last, nil
}

// genesis starts the signed ledger after KeysStream's message last.
func (s *Signing) genesis(ctx context.Context, mac []byte, last uint64, authenticate func(context.Context, []byte) error) error {
	candidate, err := s.vault.NewSigningKey(ctx)
	if err != nil {
		return fmt.Errorf("new signing key: %w", err)
	}
	id, err := s.vault.ClaimGenesis(ctx, KeyIDOf(candidate.Public().(ed25519.PublicKey)))
	if err != nil {
		return fmt.Errorf("claim the genesis key: %w", err)
	}
	priv, err := s.key(ctx, id)
	if err != nil {
		return fmt.Errorf("the genesis key %s: %w", id, err)
	}
	if authenticate != nil {
		if err := authenticate(ctx, mac); err != nil {
			return fmt.Errorf("authenticate the secrets before the genesis: %w", err)
		}
	}
	m := Meta{Actor: KeysActor, CommandID: "key.created." + id}
	m.CorrelationID = m.CommandID
	res, err := s.appendKeyEvent(ctx, NewKeyCreated(priv.Public().(ed25519.PublicKey), mac), m, "", last, priv, EventMACKey(mac))
	if errors.Is(err, ErrConflict) {
		return nil // another process recorded it; read again
	}
	if err != nil {
		return err
	}
	s.log.Info("the ledger is signed from now on", "key_id", id, "genesis_seq", res.Seq)
	return nil
}

// appendKeyEvent appends ev to KeysStream after its message last, chained
// to prev, signed by priv and sealed with the event MAC key evMAC.
func (s *Signing) appendKeyEvent(ctx context.Context, ev Event, m Meta, prev string, last uint64, priv ed25519.PrivateKey, evMAC []byte) (AppendResult, error) {
	now := s.clock.Now().UTC().Truncate(time.Millisecond)
	_, body, err := encode(KeysStream, now, ev, m, prev, s.ids.NewID(now))
	if err != nil {
		return AppendResult{}, err
	}
	keyID, sig := SignBody(priv, body)
	return s.store.Append(ctx, PendingEvent{App: KeysStream, Type: ev.EventType(),
		MsgID: KeysStream + "|" + m.CommandID + "|" + m.Actor, ExpectedSeq: last, Body: body,
		Seal: Seal{KeyID: keyID, Signature: sig, MAC: EventMAC(evMAC, body)}})
}

// key returns the private key of id, from the cache or the vault.
func (s *Signing) key(ctx context.Context, id string) (ed25519.PrivateKey, error) {
	s.mu.Lock()
	priv, ok := s.cache[id]
	s.mu.Unlock()
	if ok {
		return priv, nil
	}
	priv, err := s.vault.SigningKey(ctx, id)
	if err != nil {
		return nil, err
	}
	if KeyIDOf(priv.Public().(ed25519.PublicKey)) != id {
		return nil, fmt.Errorf("the vault's key %s has another public key", id)
	}
	s.mu.Lock()
	s.cache[id] = priv
	s.mu.Unlock()
	return priv, nil
}

// Learn tells Signing the ledger's current key, as the projection folded
// it from an accepted key event: a rotation by another process. It only
// ever moves forward; the key is loaded at the next Sign.
func (s *Signing) Learn(k KeyInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.CreatedSeq > s.want.CreatedSeq {
		s.want = k
	}
}

// Sign seals body, an event this process appends: it signs it with the
// ledger's current key and adds its event MAC. It returns an error
// wrapping ErrNotSigning before Setup, and the vault's error when a key
// another process rotated to cannot be loaded.
func (s *Signing) Sign(ctx context.Context, body []byte) (Seal, error) {
	s.mu.Lock()
	cur, priv, want, evMAC := s.current, s.priv, s.want, s.evMAC
	s.mu.Unlock()
	if priv == nil {
		return Seal{}, ErrNotSigning
	}
	if want.ID != cur.ID && want.CreatedSeq > cur.CreatedSeq {
		next, err := s.key(ctx, want.ID)
		if err != nil {
			return Seal{}, fmt.Errorf("the ledger's signing key %s (seq %d): %w", want.ID, want.CreatedSeq, err)
		}
		s.mu.Lock()
		if want.CreatedSeq > s.current.CreatedSeq {
			s.current, s.priv = want, next
			s.log.Info("ledger signing key rotated", "key_id", want.ID, "since_seq", want.CreatedSeq)
		}
		priv = s.priv
		s.mu.Unlock()
	}
	keyID, signature := SignBody(priv, body)
	return Seal{KeyID: keyID, Signature: signature, MAC: EventMAC(evMAC, body)}, nil
}

// Current returns the key this process signs with; false before Setup.
func (s *Signing) Current() (KeyInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current, s.priv != nil
}

// Rotate makes a new signing key and records key.rotated, signed by the
// current one, with m's actor and command id (a retry with the same id is
// answered with the first key). From its stream sequence on, the new key
// signs; the old one is still accepted for RotationGrace. It returns the
// new key, an error wrapping ErrNotSigning before Setup, and the errors of
// the vault and the store.
func (s *Signing) Rotate(ctx context.Context, m Meta) (KeyInfo, error) {
	if _, ok := s.Current(); !ok {
		return KeyInfo{}, ErrNotSigning
	}
	if m.CommandID == "" {
		m.CommandID = s.ids.NewID(s.clock.Now())
	} else if err := ValidateCommandKey(m.CommandID); err != nil {
		return KeyInfo{}, err
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.CommandID
	}
	var (
		next ed25519.PrivateKey
		pub  ed25519.PublicKey
	)
	for attempt := 1; ; attempt++ {
		check, last, err := s.readKeys(ctx)
		if err != nil {
			return KeyInfo{}, err
		}
		if k, ok := rotatedBy(check, m); ok {
			return k, nil // this command rotated already: its first answer
		}
		if next == nil {
			if next, err = s.vault.NewSigningKey(ctx); err != nil {
				return KeyInfo{}, fmt.Errorf("new signing key: %w", err)
			}
			pub = next.Public().(ed25519.PublicKey)
		}
		cur, ok := check.CurrentKey()
		if !ok {
			return KeyInfo{}, fmt.Errorf("rotate: %w", ErrNotSigning)
		}
		priv, err := s.key(ctx, cur.ID)
		if err != nil {
			return KeyInfo{}, fmt.Errorf("the ledger's current signing key %s: %w", cur.ID, err)
		}
		s.mu.Lock()
		evMAC := s.evMAC
		s.mu.Unlock()
		res, err := s.appendKeyEvent(ctx, NewKeyRotated(pub, cur.ID), m, check.Head(KeysStream), last, priv, evMAC)
		if errors.Is(err, ErrConflict) && attempt < maxKeyAttempts {
			continue
		}
		if err != nil {
			return KeyInfo{}, err
		}
		if res.Duplicate {
			check, _, err := s.readKeys(ctx)
			if err != nil {
				return KeyInfo{}, err
			}
			if k, ok := rotatedBy(check, m); ok {
				return k, nil
			}
			return KeyInfo{}, fmt.Errorf("rotate: command %s was recorded but announced no key", m.CommandID)
		}
		k := KeyInfo{ID: KeyIDOf(pub), PublicKey: pub, CreatedSeq: res.Seq}
		s.mu.Lock()
		s.cache[k.ID] = next
		if k.CreatedSeq > s.want.CreatedSeq {
			s.want = k
		}
		if k.CreatedSeq > s.current.CreatedSeq {
			s.current, s.priv = k, next
		}
		s.mu.Unlock()
		s.log.Info("ledger signing key rotated", "key_id", k.ID, "previous_key_id", cur.ID, "seq", res.Seq, "actor", m.Actor)
		return k, nil
	}
}

// rotatedBy returns the key that command m announced, if a key.rotated of
// the ledger was its event: current or retired since by a later rotation.
func rotatedBy(check *LedgerCheck, m Meta) (KeyInfo, bool) {
	keys := check.Keys()
	for i := len(keys) - 1; i > 0; i-- { // keys[0] is the genesis
		if check.announcedBy[keys[i].ID] == CommandKey(m.Actor, m.CommandID) {
			return keys[i], true
		}
	}
	return KeyInfo{}, false
}
