package jetstream_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/natstest"
)

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// counterIDs makes time-ordered unique ids from the time and a counter; the
// prefix keeps the ids of two "processes" apart.
type counterIDs struct {
	prefix string
	n      atomic.Uint64
}

func (g *counterIDs) NewID(t time.Time) string {
	return fmt.Sprintf("%013d%s%08d", t.UnixMilli(), g.prefix, g.n.Add(1))
}

// testRules are the default rules without the quota and interval limits,
// so that many commands on one app are all accepted.
func testRules() domain.Rules {
	r := domain.DefaultRules()
	r.MaxBackups = 1 << 20
	r.MinInterval = 0
	return r
}

// newServer starts a server with the ledger's stream and job consumer set
// up with cfg.
func newServer(t *testing.T, cfg jetstream.Config) *server.Server {
	t.Helper()
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	if err := jetstream.Setup(t.Context(), js, cfg); err != nil {
		t.Fatalf("setup: %v", err)
	}
	return s
}

// countingStore wraps an EventStore, counts conflicts and reports every
// answer of Append on answers (if set).
type countingStore struct {
	service.EventStore
	conflicts atomic.Int64
	answers   chan appendAnswer
	mu        sync.Mutex
	appended  []domain.PendingEvent
}

type appendAnswer struct {
	res domain.AppendResult
	err error
}

func (c *countingStore) Append(ctx context.Context, ev domain.PendingEvent) (domain.AppendResult, error) {
	res, err := c.EventStore.Append(ctx, ev)
	if errors.Is(err, domain.ErrConflict) {
		c.conflicts.Add(1)
	}
	c.mu.Lock()
	c.appended = append(c.appended, ev)
	c.mu.Unlock()
	if c.answers != nil {
		select {
		case c.answers <- appendAnswer{res, err}:
		default:
		}
	}
	return res, err
}

// stack is one "process": its own connection, event store, projection,
// follower and ledger.
type stack struct {
	js       njs.JetStream
	raw      *jetstream.EventStore
	store    *countingStore
	proj     *projections.Store
	follower *jetstream.Follower
	ledger   *service.Ledger
}

func newStack(t *testing.T, s *server.Server, ids domain.IDs) *stack {
	t.Helper()
	_, js := natstest.Connect(t, s)
	st := &stack{js: js, raw: newStore(t, js), proj: projections.New(testRules(), projections.Options{})}
	st.store = &countingStore{EventStore: st.raw}
	st.follower = jetstream.NewFollower(js, st.proj.Apply, nil)
	l, err := service.NewLedger(service.LedgerConfig{Rules: testRules()}, st.store, st.proj, realClock{}, ids, nil, nil)
	if err != nil {
		t.Fatalf("ledger: %v", err)
	}
	st.ledger = l
	return st
}

// runFollower runs f until the test ends, and checks that Run ends well.
func runFollower(t *testing.T, f *jetstream.Follower) {
	t.Helper()
	runInBackground(t, "follower", f.Run)
}

// runInBackground runs run until the test ends; it returns a stop function
// that cancels run's context and waits for it, failing the test if run
// returned an error.
func runInBackground(t *testing.T, what string, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s run: %v", what, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s did not stop", what)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// stored is one message of the stream.
type stored struct {
	seq     uint64
	subject string
	body    []byte
	env     domain.Envelope
}

// readAll reads every message of the stream, in order.
func readAll(t *testing.T, js njs.JetStream) []stored {
	t.Helper()
	ctx := t.Context()
	st, err := js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	last := st.CachedInfo().State.LastSeq
	out := make([]stored, 0, last)
	for seq := uint64(1); seq <= last; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		s := stored{seq: m.Sequence, subject: m.Subject, body: m.Data}
		_ = json.Unmarshal(m.Data, &s.env) // raw test messages are not envelopes
		out = append(out, s)
	}
	return out
}

// ofSubject returns the messages on subject.
func ofSubject(msgs []stored, subject string) []stored {
	var out []stored
	for _, m := range msgs {
		if m.subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// checkChain checks the hash chain of one app's messages.
func checkChain(t *testing.T, msgs []stored) {
	t.Helper()
	if err := chainError(msgs); err != nil {
		t.Fatal(err)
	}
}

// chainError checks the hash chain of one app's messages: the first has no
// prev_hash, every other one the SHA-256 of the previous message's body.
func chainError(msgs []stored) error {
	prev := ""
	for i, m := range msgs {
		if m.env.PrevHash != prev {
			return fmt.Errorf("message %d (seq %d): prev_hash %q, want %q", i, m.seq, m.env.PrevHash, prev)
		}
		prev = domain.HashEvent(m.body)
	}
	return nil
}

// testSigner signs with a fixed key (these ledgers have no genesis: the
// projection folds them as the unsigned prefix).
type testSigner struct{}

var (
	testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	testMAC = bytes.Repeat([]byte{9}, 32)
)

func (testSigner) Sign(_ context.Context, body []byte) (domain.Seal, error) {
	id, sig := domain.SignBody(testKey, body)
	return domain.Seal{KeyID: id, Signature: sig}, nil
}

// newStore returns an EventStore on js.
func newStore(t *testing.T, js njs.JetStream) *jetstream.EventStore {
	t.Helper()
	s, err := jetstream.NewEventStore(t.Context(), js, testSigner{})
	if err != nil {
		t.Fatalf("event store: %v", err)
	}
	return s
}

// lastSeq returns the stream's last sequence.
func lastSeq(t *testing.T, js njs.JetStream) uint64 {
	t.Helper()
	st, err := js.Stream(t.Context(), jetstream.StreamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	return st.CachedInfo().State.LastSeq
}

// receive returns the next value of ch, failing the test after a while.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// restartable is a server on a fixed port and store directory that a test
// can restart, with a TCP connection that reconnects to it.
type restartable struct {
	dir   string
	port  int
	s     *server.Server
	nc    *nats.Conn
	js    njs.JetStream
	probe *jetstream.EventStore
}

// newRestartable starts the server, connects and sets the ledger up. The
// connection and the server end after everything the test registers later.
func newRestartable(t *testing.T) *restartable {
	t.Helper()
	r := &restartable{dir: t.TempDir(), port: -1}
	r.start(t)
	t.Cleanup(func() {
		r.s.Shutdown()
		r.s.WaitForShutdown()
	})
	r.port = r.s.Addr().(*net.TCPAddr).Port
	nc, err := nats.Connect(r.s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r.nc = nc
	if r.js, err = njs.New(nc); err != nil {
		t.Fatal(err)
	}
	if err := jetstream.Setup(t.Context(), r.js, jetstream.Config{}); err != nil {
		t.Fatal(err)
	}
	r.probe = newStore(t, r.js)
	return r
}

func (r *restartable) start(t *testing.T) {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: r.port, JetStream: true, StoreDir: r.dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	r.s = s
}

// restart stops the server, starts it again on the same port and store,
// and waits for the connection to come back.
func (r *restartable) restart(t *testing.T) {
	t.Helper()
	r.s.Shutdown()
	r.s.WaitForShutdown()
	r.start(t)
	// A request sent just as the connection comes back may be lost; wait
	// until the server answers one.
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !r.nc.IsConnected() {
			return natstest.Errorf("not reconnected")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := r.probe.LastSeq(ctx, "probe")
		return err
	})
}
