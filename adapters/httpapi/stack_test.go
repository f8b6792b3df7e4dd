package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// This file builds the real domain.Ledger and projections.Store over an
// in-test event store that appends synchronously to the projection. It
// stands in for adapters/jetstream only in these transport tests; the
// end-to-end tests in test/ run the real store on NATS.

// memStore is a domain.EventStore in memory: one global sequence, the
// expected last sequence checked per app, MsgIDs deduplicated.
type memStore struct {
	proj *projections.Store

	mu      sync.Mutex
	seq     uint64
	last    map[string]uint64
	msgIDs  map[string]uint64
	appends int
}

var _ domain.EventStore = (*memStore)(nil)

func (s *memStore) Append(_ context.Context, ev domain.PendingEvent) (domain.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq, ok := s.msgIDs[ev.MsgID]; ok {
		return domain.AppendResult{Seq: seq, Duplicate: true}, nil
	}
	if s.last[ev.App] != ev.ExpectedSeq {
		return domain.AppendResult{}, fmt.Errorf("append to %s: %w", ev.App, domain.ErrConflict)
	}
	s.seq++
	s.last[ev.App] = s.seq
	s.msgIDs[ev.MsgID] = s.seq
	s.appends++
	s.proj.Apply(s.seq, ev.App, ev.Body)
	return domain.AppendResult{Seq: s.seq}, nil
}

func (s *memStore) LastSeq(_ context.Context, app string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[app], nil
}

// Appends returns how many events were stored.
func (s *memStore) Appends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends
}

// fakeClock is a domain.Clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// seqIDs makes unique, time-ordered 26-character ids.
type seqIDs struct {
	mu sync.Mutex
	n  int
}

func (g *seqIDs) NewID(t time.Time) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	return fmt.Sprintf("%013d%013d", t.UnixMilli(), g.n)
}

// memConfig is a domain.ConfigStore in memory.
type memConfig struct {
	clock *fakeClock

	mu   sync.Mutex
	rev  uint64
	docs map[string]map[string]domain.ConfigDoc
}

var _ domain.ConfigStore = (*memConfig)(nil)

func (c *memConfig) PutDoc(_ context.Context, app, key string, value []byte) (domain.ConfigDoc, error) {
	if key == "" || len(key) > 200 {
		return domain.ConfigDoc{}, domain.Errorf(domain.CodeInvalidArgument, "bad key %q", key)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rev++
	d := domain.ConfigDoc{Key: key, Value: slices.Clone(value), Size: int64(len(value)), Revision: c.rev, Updated: c.clock.Now()}
	if c.docs[app] == nil {
		c.docs[app] = map[string]domain.ConfigDoc{}
	}
	c.docs[app][key] = d
	return d, nil
}

func (c *memConfig) GetDoc(_ context.Context, app, key string) (domain.ConfigDoc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.docs[app][key]
	if !ok {
		return domain.ConfigDoc{}, domain.Errorf(domain.CodeNotFound, "config key %s not found in app %s", key, app)
	}
	return d, nil
}

func (c *memConfig) DeleteDoc(_ context.Context, app, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.docs[app][key]; !ok {
		return domain.Errorf(domain.CodeNotFound, "config key %s not found in app %s", key, app)
	}
	delete(c.docs[app], key)
	return nil
}

func (c *memConfig) ListDocs(_ context.Context, app string) ([]domain.ConfigDoc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []domain.ConfigDoc
	for _, d := range c.docs[app] {
		d.Value = nil
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b domain.ConfigDoc) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out, nil
}

// tokens authenticates a fixed set of tokens.
type tokens map[string]domain.Principal

func (t tokens) Authenticate(_ context.Context, token string) (domain.Principal, error) {
	p, ok := t[token]
	if !ok {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	return p, nil
}

// stack is the real ledger and projection over the in-test store, and the
// real domain.Transfers over an in-memory archive store.
type stack struct {
	store     *memStore
	proj      *projections.Store
	ledger    *domain.Ledger
	clock     *fakeClock
	config    *memConfig
	auth      tokens
	archives  *memArchives
	transfers *domain.Transfers
}

// start is the fake clock's first reading: a Monday.
var start = time.Date(2026, 8, 31, 12, 2, 0, 0, time.UTC)

func newStack(t *testing.T) *stack {
	t.Helper()
	rules := domain.DefaultRules()
	proj := projections.New(rules, nil)
	store := &memStore{proj: proj, last: map[string]uint64{}, msgIDs: map[string]uint64{}}
	clock := &fakeClock{now: start}
	ids := &seqIDs{}
	ledger, err := domain.NewLedger(domain.LedgerConfig{Rules: rules}, store, proj, clock, ids, nil, nil)
	if err != nil {
		t.Fatalf("new ledger: %v", err)
	}
	archives := newMemArchives(clock)
	return &stack{
		store: store, proj: proj, ledger: ledger, clock: clock,
		archives: archives, transfers: domain.NewTransfers(ledger, proj, archives, ids, clock, nil),
		config: &memConfig{clock: clock, docs: map[string]map[string]domain.ConfigDoc{}},
		auth: tokens{
			"alice-token": {ID: "alice", Admin: true},
			"bob-token":   {ID: "bob", Admin: true},
			"eve-token":   {ID: "eve"},
		},
	}
}
