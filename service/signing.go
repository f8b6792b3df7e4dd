package service

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// SigningConfig are the settings of Signing.
type SigningConfig struct {
	// NewGenesis lets Setup start the signed ledger with a key of its own
	// vault although the unsigned ledger already holds a self-signed
	// key.created of a key the vault never had: one that someone else
	// wrote before backupd signed the ledger. That key.created is refused
	// from then on. Never set it for a vault that lost its keys: restore
	// the vault instead, or the ledger gets a second key history.
	NewGenesis bool
}

// ErrNoKey is returned (wrapped) by a KeyVault for a key it does not hold.
var ErrNoKey = errors.New("no such key")

// ErrNotSigning is returned (wrapped) by Signing.Sign before Setup.
var ErrNotSigning = errors.New("the ledger's signing key is not loaded yet")

// KeysActor is the actor of the genesis key.created.
const KeysActor = "system:keys"

// maxKeyAttempts bounds the rounds of a key event that meets concurrent
// appends to KeysStream.
const maxKeyAttempts = 10

// vaultTimeout bounds the load of a key that another process rotated to.
const vaultTimeout = 10 * time.Second

// Signing keeps the ledger's signing key: it starts the signed ledger (the
// genesis) on a ledger that has none, seals what this process appends with
// the current key (signature and event MAC), follows rotations made by
// other processes, and rotates the key. It also knows the event MAC key of
// every key it has loaded (MACKeyOf), which backupd's projections trust in
// place of signatures. Safe for concurrent use.
type Signing struct {
	cfg    SigningConfig
	vault  KeyVault
	store  EventStore
	reader SubjectReader
	clock  domain.Clock
	ids    domain.IDs
	log    *slog.Logger

	mu      sync.Mutex
	current domain.KeyInfo     // the key this process signs with
	priv    ed25519.PrivateKey // current's
	want    domain.KeyInfo     // the current key as the projection last told (Learn)
	keys    map[string]ed25519.PrivateKey
	macs    map[string][]byte // EventMACKey of each key loaded
	genesis string            // the genesis key the vault recorded
}

// NewSigning returns a Signing that is not set up yet.
func NewSigning(cfg SigningConfig, vault KeyVault, store EventStore, reader SubjectReader, clock domain.Clock, ids domain.IDs, log *slog.Logger) *Signing {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Signing{cfg: cfg, vault: vault, store: store, reader: reader, clock: clock, ids: ids, log: log,
		keys: map[string]ed25519.PrivateKey{}, macs: map[string][]byte{}}
}

// GenesisKey returns the id of the ledger's genesis key that the vault
// recorded (after Setup): the only key a genesis may announce
// (LedgerCheck.PinGenesis).
func (s *Signing) GenesisKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.genesis
}

// Setup loads the ledger's signing keys and the secrets' MAC key, and
// returns the MAC key. On a ledger without a genesis it starts the signed
// ledger first: it makes (or, with other replicas, agrees on) the first
// key and the MAC key, calls authenticate with the MAC key (the secrets
// written before get their MAC, once, before the genesis says the ledger
// is signed), and appends key.created signed by that key. The vault
// records the genesis key, and from then on only a key.created of that key
// is the genesis (LedgerCheck.PinGenesis).
//
// It returns an error when the ledger's genesis announces a key the vault
// does not hold (a vault that lost its keys, or a key.created that someone
// else wrote before backupd signed the ledger: SigningConfig.NewGenesis),
// when the current key is not in the vault or is another key than the
// ledger announced, and when the vault's MAC key is missing or not the one
// the genesis announced: a vault that was lost or replaced, or belongs to
// another ledger.
func (s *Signing) Setup(ctx context.Context, authenticate func(ctx context.Context, mac []byte) error) ([]byte, error) {
	claim, err := s.vault.Genesis(ctx)
	if err != nil && !errors.Is(err, ErrNoKey) {
		return nil, fmt.Errorf("genesis key: %w", err)
	}
	for attempt := 1; ; attempt++ {
		if attempt > maxKeyAttempts {
			return nil, fmt.Errorf("start the signed ledger: %s kept changing", domain.KeysStream)
		}
		check, last, err := s.readKeys(ctx, claim)
		if err != nil {
			return nil, err
		}
		if check.Genesis() == 0 {
			if claim, err = s.startGenesis(ctx, last, authenticate); err != nil {
				return nil, err
			}
			continue // read what was recorded, by this process or another
		}
		keys := check.Keys()
		if claim == "" {
			// A vault that never started a genesis, on a ledger that has
			// one: this vault's key, or someone else's.
			if _, err := s.vault.SigningKey(ctx, keys[0].ID); errors.Is(err, ErrNoKey) {
				if !s.cfg.NewGenesis {
					return nil, fmt.Errorf("the ledger's genesis (the key.created at seq %d) announces key %s, which is not in the key vault: "+
						"if the vault lost its keys, restore it from a backup; if this vault was never used with this ledger, that key.created "+
						"was written by someone else before backupd signed the ledger, and --new-ledger-genesis starts the signed ledger "+
						"with a key of this vault instead (docs/security.md): %w", check.Genesis(), keys[0].ID, ErrNoKey)
				}
				s.log.Warn("a key.created that backupd did not write is passed over: the signed ledger starts with a key of the vault",
					"seq", check.Genesis(), "key_id", keys[0].ID)
				if claim, err = s.claimNewGenesis(ctx); err != nil {
					return nil, err
				}
				continue
			}
			if claim, err = s.vault.ClaimGenesis(ctx, keys[0].ID); err != nil {
				return nil, fmt.Errorf("record the genesis key: %w", err)
			}
			if claim != keys[0].ID {
				continue // another replica claimed meanwhile: check again
			}
		}
		mac, err := s.vault.MACKey(ctx)
		if errors.Is(err, ErrNoKey) {
			return nil, fmt.Errorf("the key vault has lost the MAC key of this ledger (genesis at seq %d): restore it from a backup of the vault: %w", check.Genesis(), err)
		}
		if err != nil {
			return nil, fmt.Errorf("mac key: %w", err)
		}
		if keys[0].MACKeySHA256 != domain.MACKeyDigest(mac) {
			return nil, fmt.Errorf("the MAC key in the key vault is not the one the ledger's genesis (seq %d) announced: the vault was replaced, or is another ledger's", check.Genesis())
		}
		for _, k := range keys {
			if _, err := s.key(ctx, k); err != nil {
				if k.Retired() {
					// Its events are checked by their signatures instead.
					s.log.Warn("a retired signing key of the ledger is not in the key vault", "key_id", k.ID, "err", err)
					continue
				}
				return nil, fmt.Errorf("the ledger's current signing key %s (seq %d): %w", k.ID, k.CreatedSeq, err)
			}
		}
		cur, _ := check.CurrentKey()
		s.mu.Lock()
		if cur.CreatedSeq >= s.want.CreatedSeq {
			s.want = cur
		}
		s.current, s.priv, s.genesis = cur, s.keys[cur.ID], claim
		s.mu.Unlock()
		s.log.Info("ledger signing key loaded", "key_id", cur.ID, "since_seq", cur.CreatedSeq, "genesis_seq", check.Genesis())
		return mac, nil
	}
}

// readKeys checks the messages of KeysStream as the projections do, with
// the genesis pinned to genesis (if set), and returns the check and the
// subject's last sequence.
func (s *Signing) readKeys(ctx context.Context, genesis string) (*domain.LedgerCheck, uint64, error) {
	msgs, err := s.reader.ReadSubject(ctx, domain.KeysStream)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", domain.KeysStream, err)
	}
	check := domain.NewLedgerCheck()
	if genesis != "" {
		check.PinGenesis(genesis)
	}
	var last uint64
	for _, m := range msgs {
		if v := check.Check(m); !v.Accepted() {
			s.log.Error("ledger message refused", "seq", m.Seq, "app", domain.KeysStream, "reason", v.Rejected, "detail", v.Detail)
		}
		last = m.Seq
	}
	return check, last, nil
}

// claimNewGenesis makes a key and records it as the genesis key in the
// vault (or returns the key another replica recorded first).
func (s *Signing) claimNewGenesis(ctx context.Context) (string, error) {
	candidate, err := s.vault.NewSigningKey(ctx)
	if err != nil {
		return "", fmt.Errorf("new signing key: %w", err)
	}
	id, err := s.vault.ClaimGenesis(ctx, domain.KeyIDOf(candidate.Public().(ed25519.PublicKey)))
	if err != nil {
		return "", fmt.Errorf("claim the genesis key: %w", err)
	}
	return id, nil
}

// startGenesis starts the signed ledger after KeysStream's message last,
// with the genesis key the vault recorded (made now if none), and returns
// that key's id.
func (s *Signing) startGenesis(ctx context.Context, last uint64, authenticate func(context.Context, []byte) error) (string, error) {
	mac, err := s.vault.NewMACKey(ctx)
	if err != nil {
		return "", fmt.Errorf("mac key: %w", err)
	}
	id, err := s.vault.Genesis(ctx)
	if errors.Is(err, ErrNoKey) {
		id, err = s.claimNewGenesis(ctx)
	}
	if err != nil {
		return "", err
	}
	priv, err := s.vault.SigningKey(ctx, id)
	if err != nil {
		return "", fmt.Errorf("the genesis key %s: %w", id, err)
	}
	if authenticate != nil {
		if err := authenticate(ctx, mac); err != nil {
			return "", fmt.Errorf("authenticate the secrets before the genesis: %w", err)
		}
	}
	m := domain.Meta{Actor: KeysActor, CommandID: "key.created." + id}
	m.CorrelationID = m.CommandID
	res, err := s.appendKeyEvent(ctx, domain.NewKeyCreated(priv.Public().(ed25519.PublicKey), mac), m, "", last, priv)
	if errors.Is(err, domain.ErrConflict) {
		return id, nil // another process recorded it; read again
	}
	if err != nil {
		return "", err
	}
	s.log.Info("the ledger is signed from now on", "key_id", id, "genesis_seq", res.Seq)
	return id, nil
}

// appendKeyEvent appends ev to KeysStream after its message last, chained
// to prev, sealed with priv.
func (s *Signing) appendKeyEvent(ctx context.Context, ev domain.Event, m domain.Meta, prev string, last uint64, priv ed25519.PrivateKey) (domain.AppendResult, error) {
	now := s.clock.Now().UTC().Truncate(time.Millisecond)
	_, body, err := domain.EncodeEvent(domain.KeysStream, now, ev, m, prev, s.ids.NewID(now))
	if err != nil {
		return domain.AppendResult{}, err
	}
	return s.store.Append(ctx, domain.PendingEvent{App: domain.KeysStream, Type: ev.EventType(),
		MsgID: domain.KeysStream + "|" + m.CommandID + "|" + m.Actor, ExpectedSeq: last, Body: body, Seal: seal(priv, body)})
}

// seal signs body with priv and adds its event MAC.
func seal(priv ed25519.PrivateKey, body []byte) domain.Seal {
	keyID, sig := domain.SignBody(priv, body)
	return domain.Seal{KeyID: keyID, Signature: sig, MAC: domain.EventMAC(domain.EventMACKey(priv), body)}
}

// key returns the private key of k, from the cache or the vault, and
// keeps its event MAC key. A vault key whose public key is not exactly
// k's (when k says it) is an error.
func (s *Signing) key(ctx context.Context, k domain.KeyInfo) (ed25519.PrivateKey, error) {
	s.mu.Lock()
	priv, ok := s.keys[k.ID]
	s.mu.Unlock()
	if ok {
		return priv, nil
	}
	priv, err := s.vault.SigningKey(ctx, k.ID)
	if err != nil {
		return nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	if domain.KeyIDOf(pub) != k.ID || (k.PublicKey != nil && !bytes.Equal(pub, k.PublicKey)) {
		return nil, fmt.Errorf("the vault's key %s is not the key the ledger announced", k.ID)
	}
	s.mu.Lock()
	s.keys[k.ID], s.macs[k.ID] = priv, domain.EventMACKey(priv)
	s.mu.Unlock()
	return priv, nil
}

// MACKeyOf returns the event MAC key of the signing key id if this process
// has loaded it, else nil (then the projections verify the signatures of
// its events). It never waits for the vault.
func (s *Signing) MACKeyOf(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.macs[id]
}

// Learn tells Signing the ledger's current key, as the projection folded
// it from an accepted key event: a rotation by another process. It only
// ever moves forward. The key is loaded from the vault in the background
// (and at the latest by the next Sign), so that it does not hold up the
// projection.
func (s *Signing) Learn(k domain.KeyInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.CreatedSeq <= s.want.CreatedSeq {
		return
	}
	s.want = k
	if _, ok := s.keys[k.ID]; ok {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), vaultTimeout)
		defer cancel()
		if _, err := s.key(ctx, k); err != nil {
			s.log.Error("load the ledger's new signing key", "key_id", k.ID, "err", err)
		}
	}()
}

// Sign seals body, an event this process appends: it signs it with the
// ledger's current key and adds its event MAC. It returns an error
// wrapping ErrNotSigning before Setup, and the vault's error when a key
// another process rotated to cannot be loaded.
func (s *Signing) Sign(ctx context.Context, body []byte) (domain.Seal, error) {
	s.mu.Lock()
	cur, priv, want := s.current, s.priv, s.want
	s.mu.Unlock()
	if priv == nil {
		return domain.Seal{}, ErrNotSigning
	}
	if want.ID != cur.ID && want.CreatedSeq > cur.CreatedSeq {
		next, err := s.key(ctx, want)
		if err != nil {
			return domain.Seal{}, fmt.Errorf("the ledger's signing key %s (seq %d): %w", want.ID, want.CreatedSeq, err)
		}
		s.mu.Lock()
		if want.CreatedSeq > s.current.CreatedSeq {
			s.current, s.priv = want, next
			s.log.Info("ledger signing key rotated", "key_id", want.ID, "since_seq", want.CreatedSeq)
		}
		priv = s.priv
		s.mu.Unlock()
	}
	return seal(priv, body), nil
}

// Current returns the key this process signs with; false before Setup.
func (s *Signing) Current() (domain.KeyInfo, bool) {
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
func (s *Signing) Rotate(ctx context.Context, m domain.Meta) (domain.KeyInfo, error) {
	if _, ok := s.Current(); !ok {
		return domain.KeyInfo{}, ErrNotSigning
	}
	if m.CommandID == "" {
		m.CommandID = s.ids.NewID(s.clock.Now())
	} else if err := domain.ValidateCommandKey(m.CommandID); err != nil {
		return domain.KeyInfo{}, err
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.CommandID
	}
	var (
		next ed25519.PrivateKey
		pub  ed25519.PublicKey
	)
	genesis := s.GenesisKey()
	for attempt := 1; ; attempt++ {
		check, last, err := s.readKeys(ctx, genesis)
		if err != nil {
			return domain.KeyInfo{}, err
		}
		if k, ok := rotatedBy(check, m); ok {
			return k, nil // this command rotated already: its first answer
		}
		if next == nil {
			if next, err = s.vault.NewSigningKey(ctx); err != nil {
				return domain.KeyInfo{}, fmt.Errorf("new signing key: %w", err)
			}
			pub = next.Public().(ed25519.PublicKey)
		}
		cur, ok := check.CurrentKey()
		if !ok {
			return domain.KeyInfo{}, fmt.Errorf("rotate: %w", ErrNotSigning)
		}
		priv, err := s.key(ctx, cur)
		if err != nil {
			return domain.KeyInfo{}, fmt.Errorf("the ledger's current signing key %s: %w", cur.ID, err)
		}
		res, err := s.appendKeyEvent(ctx, domain.NewKeyRotated(pub, cur.ID), m, check.Head(domain.KeysStream), last, priv)
		if errors.Is(err, domain.ErrConflict) && attempt < maxKeyAttempts {
			continue
		}
		if err != nil {
			return domain.KeyInfo{}, err
		}
		if res.Duplicate {
			check, _, err := s.readKeys(ctx, genesis)
			if err != nil {
				return domain.KeyInfo{}, err
			}
			if k, ok := rotatedBy(check, m); ok {
				return k, nil
			}
			return domain.KeyInfo{}, fmt.Errorf("rotate: command %s was recorded but announced no key", m.CommandID)
		}
		k := domain.KeyInfo{ID: domain.KeyIDOf(pub), PublicKey: pub, CreatedSeq: res.Seq}
		s.mu.Lock()
		s.keys[k.ID], s.macs[k.ID] = next, domain.EventMACKey(next)
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
func rotatedBy(check *domain.LedgerCheck, m domain.Meta) (domain.KeyInfo, bool) {
	keys := check.Keys()
	for i := len(keys) - 1; i > 0; i-- { // keys[0] is the genesis
		if check.AnnouncedBy(keys[i].ID) == domain.CommandKey(m.Actor, m.CommandID) {
			return keys[i], true
		}
	}
	return domain.KeyInfo{}, false
}
