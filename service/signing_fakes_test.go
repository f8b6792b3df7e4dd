package service_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/memstore"
)

// This file holds the fakes of the signing tests: the stream with their
// knobs, the key vault, and the calls of Setup's authenticate.

// signedStream is the module's one in-memory event store
// (memstore.Store, a single JetStream server's stream LEDGER: one
// global sequence, the expected last sequence checked per subject token,
// MsgIDs deduplicated with the first sequence, each message stored with
// the seal of its PendingEvent and the store time of the clock, the
// server's, which a publisher cannot choose), with the knobs of the
// signing tests: a hook before every append, and a count of conflicts.
type signedStream struct {
	*memstore.Store

	mu        sync.Mutex
	conflicts int
	// beforeAppend, if set, runs at the start of every Append, while the
	// append is in flight: a test appends concurrent messages from it.
	beforeAppend func(ev domain.PendingEvent)
}

var (
	_ service.EventStore    = (*signedStream)(nil)
	_ service.SubjectReader = (*signedStream)(nil)
)

func newSignedStream(clock *fakeClock) *signedStream {
	return &signedStream{Store: memstore.New(memstore.Config{Clock: clock})}
}

func (s *signedStream) Append(ctx context.Context, ev domain.PendingEvent) (domain.AppendResult, error) {
	s.mu.Lock()
	hook := s.beforeAppend
	s.mu.Unlock()
	if hook != nil {
		if ctx.Err() == nil {
			ctx = context.WithoutCancel(ctx) // sent already
		}
		hook(ev)
	}
	res, err := s.Store.Append(ctx, ev)
	if errors.Is(err, domain.ErrConflict) {
		s.mu.Lock()
		s.conflicts++
		s.mu.Unlock()
	}
	return res, err
}

// publish stores a message without any check, as someone who may publish
// on the ledger's subjects but holds no key of it would.
func (s *signedStream) publish(token string, body []byte, keyID, sig string) uint64 {
	return s.Publish(memstore.Message{StoredMessage: domain.StoredMessage{Token: token, Body: body, KeyID: keyID, Signature: sig}})
}

func (s *signedStream) all() []domain.StoredMessage {
	var out []domain.StoredMessage
	for _, m := range s.Messages() {
		out = append(out, m.StoredMessage)
	}
	return out
}

// forgetMsgIDs forgets the MsgIDs stored: the deduplication window
// passed.
func (s *signedStream) forgetMsgIDs() { s.ForgetMsgIDs() }

func (s *signedStream) conflictCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conflicts
}

// ofToken returns the stored messages of token.
func (s *signedStream) ofToken(token string) []domain.StoredMessage {
	msgs, _ := s.ReadSubject(context.Background(), token)
	return msgs
}

// audit checks every stored message with a fresh LedgerCheck, as the
// projections and audit verify do, and returns the check and the verdicts
// by sequence.
func (s *signedStream) audit() (*domain.LedgerCheck, map[uint64]domain.Verdict) {
	c := domain.NewLedgerCheck()
	out := map[uint64]domain.Verdict{}
	for _, m := range s.all() {
		out[m.Seq] = c.Check(m)
	}
	return c, out
}

// wantAllAccepted fails the test unless a fresh LedgerCheck accepts every
// stored message; it returns the check.
func (s *signedStream) wantAllAccepted(t *testing.T) *domain.LedgerCheck {
	t.Helper()
	c, vs := s.audit()
	for _, m := range s.all() {
		if v := vs[m.Seq]; !v.Accepted() {
			t.Errorf("seq %d on %s refused: %s: %s", m.Seq, m.Token, v.Rejected, v.Detail)
		}
	}
	return c
}

// fakeVault is a KeyVault in memory: the ledger_keys bucket shared by the
// replicas. Its keys are fixed (seeds next, next+1, ...), so that tests
// are repeatable.
type fakeVault struct {
	mu      sync.Mutex
	seeds   map[string][]byte // key id → seed
	next    byte
	mac     []byte
	genesis string
	made    int // NewSigningKey calls
	// wrong, if set for an id, is the key SigningKey answers for it: a
	// vault whose key under id is another key.
	wrong map[string]ed25519.PrivateKey
}

var _ service.KeyVault = (*fakeVault)(nil)

func newFakeVault(mac []byte, firstSeed byte) *fakeVault {
	return &fakeVault{seeds: map[string][]byte{}, next: firstSeed, mac: slices.Clone(mac), wrong: map[string]ed25519.PrivateKey{}}
}

func (v *fakeVault) NewSigningKey(context.Context) (ed25519.PrivateKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	priv := keyOf(v.next)
	v.next++
	v.made++
	id := idOf(priv)
	if _, ok := v.seeds[id]; ok {
		return nil, fmt.Errorf("fake vault: key %s exists", id)
	}
	v.seeds[id] = priv.Seed()
	return priv, nil
}

func (v *fakeVault) SigningKey(_ context.Context, id string) (ed25519.PrivateKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if k, ok := v.wrong[id]; ok {
		return k, nil
	}
	seed, ok := v.seeds[id]
	if !ok {
		return nil, fmt.Errorf("fake vault: signing key %s: %w", id, service.ErrNoKey)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func (v *fakeVault) MACKey(context.Context) ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mac == nil {
		return nil, fmt.Errorf("fake vault: mac key: %w", service.ErrNoKey)
	}
	return slices.Clone(v.mac), nil
}

func (v *fakeVault) NewMACKey(context.Context) ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mac == nil {
		v.mac = bytes.Repeat([]byte{0x4d}, 32)
	}
	return slices.Clone(v.mac), nil
}

func (v *fakeVault) ClaimGenesis(_ context.Context, id string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.genesis == "" {
		v.genesis = id
	}
	return v.genesis, nil
}

func (v *fakeVault) Genesis(context.Context) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.genesis == "" {
		return "", fmt.Errorf("fake vault: genesis: %w", service.ErrNoKey)
	}
	return v.genesis, nil
}

func (v *fakeVault) madeKeys() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.made
}

// copyOf returns a vault with v's keys, genesis claim and MAC key (another
// bucket restored from v's).
func (v *fakeVault) copyOf() *fakeVault {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := newFakeVault(v.mac, v.next)
	c.genesis = v.genesis
	for id, s := range v.seeds {
		c.seeds[id] = slices.Clone(s)
	}
	return c
}

// authCalls records the calls of Setup's authenticate.
type authCalls struct {
	mu   sync.Mutex
	macs [][]byte
	// keysBefore is how many messages KeysStream had at each call.
	keysBefore []int
	stream     *signedStream
	err        error
}

func (a *authCalls) authenticate(_ context.Context, mac []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.macs = append(a.macs, slices.Clone(mac))
	if a.stream != nil {
		a.keysBefore = append(a.keysBefore, len(a.stream.ofToken(domain.KeysStream)))
	}
	return a.err
}

func (a *authCalls) calls() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.macs)
}
