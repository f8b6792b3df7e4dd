// Package apitest builds, for the transport adapters' unit tests, the real
// service.Ledger, projections.Store and service.Transfers over in-memory stand-ins
// of the event store, configuration store and archive store. The end-to-end
// tests in test/ run the real stores on NATS; these only spare the transport
// tests a server, and keep the HTTP and NATS tests on one shared stack.
package apitest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/memstore"
	"github.com/backupledger/backupledger/usecase"
)

// This file builds the real service.Ledger and projections.Store over an
// in-memory event store that appends synchronously to the projection. It
// stands in for adapters/jetstream only in these transport tests; the
// end-to-end tests in test/ run the real store on NATS.

// FakeClock is a domain.Clock that moves only when told.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// SeqIDs makes unique, time-ordered 26-character ids.
type SeqIDs struct {
	mu sync.Mutex
	n  int
}

func (g *SeqIDs) NewID(t time.Time) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	return fmt.Sprintf("%013d%013d", t.UnixMilli(), g.n)
}

// MemConfig is a usecase.ConfigStore in memory.
type MemConfig struct {
	clock *FakeClock

	mu   sync.Mutex
	rev  uint64
	docs map[string]map[string]domain.ConfigDoc
}

var _ usecase.ConfigStore = (*MemConfig)(nil)

func (c *MemConfig) PutDoc(_ context.Context, app, key string, value []byte) (domain.ConfigDoc, error) {
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

func (c *MemConfig) GetDoc(_ context.Context, app, key string) (domain.ConfigDoc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.docs[app][key]
	if !ok {
		return domain.ConfigDoc{}, domain.Errorf(domain.CodeNotFound, "config key %s not found in app %s", key, app)
	}
	return d, nil
}

func (c *MemConfig) DeleteDoc(_ context.Context, app, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.docs[app][key]; !ok {
		return domain.Errorf(domain.CodeNotFound, "config key %s not found in app %s", key, app)
	}
	delete(c.docs[app], key)
	return nil
}

func (c *MemConfig) ListDocs(_ context.Context, app string) ([]domain.ConfigDoc, error) {
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

// Tokens authenticates a fixed set of tokens.
type Tokens map[string]domain.Principal

func (t Tokens) Authenticate(_ context.Context, token string) (domain.Principal, error) {
	p, ok := t[token]
	if !ok {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	return p, nil
}

// Stack is the real ledger and projection over the in-test store, and the
// real service.Transfers over an in-memory archive store.
type Stack struct {
	Store     *memstore.Store
	Proj      *projections.Store
	Ledger    *service.Ledger
	Clock     *FakeClock
	Config    *MemConfig
	Auth      Tokens
	Archives  *MemArchives
	Transfers *service.Transfers
	// Identity is the real identity service over the same store, with
	// secrets in memory and Argon2id with the cheap parameters of tests.
	Identity *service.Identity
	Secrets  *MemSecrets
	// Restores is the real restore service over the same ledger, the
	// Identity and a MemSource; its runner is not run: only requests,
	// maintenance and their refusals are tested with it.
	Restores *service.Restores
}

// AuthChain is what a server built on the stack authenticates with: the
// fixed tokens of Auth, then the Identity's tokens.
func (s *Stack) AuthChain() usecase.Authenticator { return usecase.ChainAuth{s.Auth, s.Identity} }

// MemSecrets is a service.SecretStore in memory.
type MemSecrets struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *MemSecrets) PutSecret(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = append([]byte(nil), value...)
	return nil
}

func (s *MemSecrets) Secret(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, fmt.Errorf("secret %s: %w", key, service.ErrNoSecret)
	}
	return v, nil
}

// Values returns every stored secret.
func (s *MemSecrets) Values() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, v := range s.m {
		out = append(out, v)
	}
	return out
}

// Start is the fake clock's first reading: a Monday.
var Start = time.Date(2026, 8, 31, 12, 2, 0, 0, time.UTC)

// Apps are the apps NewStack registers, in the organisation "test".
var Apps = []string{"crm", "erp", "shop", "fast", "slow", "empty"}

// NewStack returns a stack on which Apps exist.
func NewStack(t testing.TB) *Stack { return NewStackWith(t, Apps...) }

// NewStackWith returns a stack on which apps exist (registered in the
// organisation "test" by the server administrator), and no other: with
// none, there is no organisation either.
func NewStackWith(t testing.TB, apps ...string) *Stack {
	t.Helper()
	rules := domain.DefaultRules()
	proj := projections.New(rules, projections.Options{})
	store := memstore.New(memstore.Config{Apply: proj})
	clock := &FakeClock{now: Start}
	ids := &SeqIDs{}
	ledger, err := service.NewLedger(service.LedgerConfig{Rules: rules}, store, proj, clock, ids, nil, nil)
	if err != nil {
		t.Fatalf("new ledger: %v", err)
	}
	archives := NewMemArchives(clock)
	secrets := &MemSecrets{m: map[string][]byte{}}
	hasher, err := password.NewArgon2id(password.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	config := &MemConfig{clock: clock, docs: map[string]map[string]domain.ConfigDoc{}}
	sources := service.SourceSet{Default: &MemSource{config: config}}
	identity, err := service.NewIdentity(store, proj, secrets, hasher, clock, ids,
		service.IdentityConfig{Apps: service.LedgerAppUsage{States: proj, Sources: sources}}, nil)
	if err != nil {
		t.Fatalf("new identity: %v", err)
	}
	restores := service.NewRestores(service.RestoreConfig{}, ledger, proj, identity, sources, NoArchives{}, nil, clock, nil)
	// The apps the tests use exist: registered in the organisation
	// "test" by the server administrator.
	admin := domain.Principal{ID: "admin", Admin: true}
	if len(apps) > 0 {
		if _, err := identity.Execute(t.Context(), admin, domain.CreateOrg{ID: "test"}, domain.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range apps {
		if _, err := identity.RegisterApp(t.Context(), admin, domain.RegisterApp{App: app, Org: "test"}, domain.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	store.ResetAppends()
	return &Stack{
		Identity: identity, Secrets: secrets, Restores: restores,
		Store: store, Proj: proj, Ledger: ledger, Clock: clock,
		Archives: archives, Transfers: service.NewTransfers(ledger, proj, archives, ids, clock, nil),
		Config: config,
		Auth: Tokens{
			"alice-token": {ID: "alice", Admin: true},
			"bob-token":   {ID: "bob", Admin: true},
			"eve-token":   {ID: "eve"},
		},
	}
}
