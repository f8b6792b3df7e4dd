package jetstream_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// recorder is an apply function that keeps what it was given.
type recorder struct {
	mu    sync.Mutex
	seqs  []uint64
	apps  []string
	bodys [][]byte
}

func (r *recorder) apply(m domain.StoredMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs = append(r.seqs, m.Seq)
	r.apps = append(r.apps, m.Token)
	r.bodys = append(r.bodys, bytes.Clone(m.Body))
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seqs)
}

// check verifies that apply saw exactly messages 1..n, in order, with the
// bodies that body(seq) gives.
func (r *recorder) check(t *testing.T, n int, body func(seq uint64) string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seqs) != n {
		t.Fatalf("applied %d messages, want %d", len(r.seqs), n)
	}
	for i, seq := range r.seqs {
		if seq != uint64(i+1) {
			t.Fatalf("message %d applied with seq %d", i, seq)
		}
		if got, want := string(r.bodys[i]), body(seq); got != want {
			t.Fatalf("seq %d applied with %q, want %q", seq, got, want)
		}
		if got, want := r.apps[i], testApp(seq); got != want {
			t.Fatalf("seq %d applied for app %q, want %q (its subject's)", seq, got, want)
		}
	}
}

func testBody(seq uint64) string { return fmt.Sprintf(`{"n":%d}`, seq) }

// testApp is the app whose subject appendN puts message seq on.
func testApp(seq uint64) string { return []string{"a", "b", "c"}[seq%3] }

// appendN appends messages until the stream's last sequence is last, over
// three apps; message seq carries testBody(seq).
func appendN(t *testing.T, store *jetstream.EventStore, from, last uint64) {
	t.Helper()
	for seq := from; seq <= last; seq++ {
		app := testApp(seq)
		prev, err := store.LastSeq(t.Context(), app)
		if err != nil {
			t.Fatal(err)
		}
		res, err := store.Append(t.Context(), domain.PendingEvent{App: app, Type: "test", MsgID: fmt.Sprint(seq), ExpectedSeq: prev, Body: []byte(testBody(seq))})
		if err != nil || res.Seq != seq {
			t.Fatalf("append %d: %+v, %v", seq, res, err)
		}
	}
}

// The follower replays what the stream holds, reports when it has caught
// up, then follows new events live.
func TestFollowerReplayThenLive(t *testing.T) {
	t.Parallel()
	s := newServer(t, jetstream.Config{})
	_, js := natstest.Connect(t, s)
	store := newStore(t, js)
	appendN(t, store, 1, 2500) // more than one pull batch
	var rec recorder
	f := jetstream.NewFollower(js, rec.apply, nil)
	if f.CaughtUp() {
		t.Fatal("caught up before running")
	}
	stop := runInBackground(t, "follower", f.Run)
	if err := f.WaitCaughtUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !f.CaughtUp() || f.Applied() < 2500 {
		t.Fatalf("caught up %v at %d", f.CaughtUp(), f.Applied())
	}
	rec.check(t, 2500, testBody)
	appendN(t, store, 2501, 2600)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := rec.len(); n < 2600 {
			return natstest.Errorf("applied %d of 2600", n)
		}
		return nil
	})
	rec.check(t, 2600, testBody)
	if f.Applied() != 2600 {
		t.Fatalf("applied %d", f.Applied())
	}

	// A stopped follower leaves no consumer behind.
	stop()
	st, err := js.Stream(t.Context(), jetstream.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range st.ConsumerNames(t.Context()).Name() {
		names = append(names, n)
	}
	if len(names) != 1 || names[0] != jetstream.ConsumerName {
		t.Fatalf("consumers after the follower stopped: %v", names)
	}
}

// On an empty stream the follower is caught up at once; without a stream
// it stops, and WaitCaughtUp says so.
func TestFollowerEmptyAndMissingStream(t *testing.T) {
	t.Parallel()
	s := newServer(t, jetstream.Config{})
	_, js := natstest.Connect(t, s)
	var rec recorder
	f := jetstream.NewFollower(js, rec.apply, nil)
	runFollower(t, f)
	if err := f.WaitCaughtUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	appendN(t, newStore(t, js), 1, 3)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := rec.len(); n < 3 {
			return natstest.Errorf("applied %d of 3", n)
		}
		return nil
	})
	rec.check(t, 3, testBody)

	bare := natstest.Server(t, "")
	_, bjs := natstest.Connect(t, bare)
	g := jetstream.NewFollower(bjs, rec.apply, nil)
	if err := g.Run(t.Context()); err == nil {
		t.Fatal("run without the stream succeeded")
	}
	if err := g.WaitCaughtUp(t.Context()); err == nil || g.CaughtUp() {
		t.Fatalf("wait after a failed run: %v", err)
	}
}

// The follower survives a restart of the server: it resumes after the last
// message it applied, without gaps or repeats.
func TestFollowerSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	r := newRestartable(t)
	store := newStore(t, r.js)
	appendN(t, store, 1, 20)
	var rec recorder
	f := jetstream.NewFollower(r.js, rec.apply, nil)
	runFollower(t, f)
	if err := f.WaitCaughtUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.restart(t)
	appendN(t, store, 21, 40)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := rec.len(); n < 40 {
			return natstest.Errorf("applied %d of 40", n)
		}
		return nil
	})
	rec.check(t, 40, testBody)
}
