// Package storetest is the contract of service.EventStore as a test suite:
// every event store of the module runs it, adapters/jetstream.EventStore
// on a real server and the in-memory memstore.Store, so that what the
// domain's and the transports' tests learn from the in-memory store holds
// on JetStream.
//
// The contract is what the ledger relies on: one sequence over the whole
// stream without gaps; an append expects the last sequence of its subject
// and is refused with an error wrapping domain.ErrConflict otherwise,
// storing nothing; a message id already stored is answered as a duplicate
// with the first copy's sequence, over the whole stream, and stores
// nothing; a refused append records no message id; an empty message id is
// never deduplicated; LastSeq is the last sequence of one subject; subject
// tokens are app ids, domain.IdentityStream or domain.KeysStream; a
// context done before the append ends it with the context's error. A
// store that also reads subjects (service.SubjectReader) returns each
// subject's messages in order, with their bodies and seals as appended.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// Options says how the store under test orders its checks where JetStream
// itself differs between deployments.
type Options struct {
	// DedupFirst says that a known message id is answered as a duplicate
	// before the expected sequence is checked, as a replicated (R3)
	// stream may under concurrent writers (DESIGN §11). False: the
	// expected sequence is checked first, as a single server does, so a
	// retry with a stale expected sequence is a conflict.
	DedupFirst bool
}

// Run runs the contract with the checks of a single server (Options{})
// against stores made by open, which must return a new, empty store each
// time it is called (each subtest opens its own, and they run in
// parallel).
func Run(t *testing.T, open func(t *testing.T) service.EventStore) {
	RunWith(t, Options{}, open)
}

// RunWith runs the contract with opts against stores made by open (see
// Run).
func RunWith(t *testing.T, opts Options, open func(t *testing.T) service.EventStore) {
	t.Helper()
	cases := []struct {
		name string
		run  func(t *testing.T, s service.EventStore, opts Options)
	}{
		{"EmptySubject", testEmptySubject},
		{"AppendToEmptySubject", testAppendToEmptySubject},
		{"SequenceIsStreamWide", testSequenceIsStreamWide},
		{"WrongExpectedSequenceConflicts", testWrongExpectedSequence},
		{"DuplicateAnswersFirstCopy", testDuplicate},
		{"StaleDuplicate", testStaleDuplicate},
		{"MessageIDsAreStreamWide", testMessageIDsStreamWide},
		{"ConflictRecordsNoMessageID", testConflictRecordsNoMessageID},
		{"EmptyMessageIDIsNotDeduplicated", testEmptyMessageID},
		{"Ordering", testOrdering},
		{"InvalidSubjectTokens", testInvalidTokens},
		{"ConcurrentWriters", testConcurrentWriters},
		{"CancelledContext", testCancelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t), opts)
		})
	}
}

// event returns a pending event of app with a body that names id.
func event(app, id string, expected uint64) domain.PendingEvent {
	return domain.PendingEvent{App: app, Type: "test.event", MsgID: id, ExpectedSeq: expected,
		Body: []byte(fmt.Sprintf(`{"id":%q,"app":%q}`, id, app))}
}

// mustAppend appends ev and fails the test unless it is stored as a new
// message.
func mustAppend(t *testing.T, s service.EventStore, ev domain.PendingEvent) uint64 {
	t.Helper()
	res, err := s.Append(t.Context(), ev)
	if err != nil {
		t.Fatalf("append %s to %s at expected seq %d: %v", ev.MsgID, ev.App, ev.ExpectedSeq, err)
	}
	if res.Duplicate {
		t.Fatalf("append %s to %s answered as a duplicate of seq %d", ev.MsgID, ev.App, res.Seq)
	}
	return res.Seq
}

// wantLastSeq fails the test unless app's last sequence is want.
func wantLastSeq(t *testing.T, s service.EventStore, app string, want uint64) {
	t.Helper()
	got, err := s.LastSeq(t.Context(), app)
	if err != nil {
		t.Fatalf("last seq of %s: %v", app, err)
	}
	if got != want {
		t.Fatalf("last seq of %s = %d, want %d", app, got, want)
	}
}

// wantConflict fails the test unless err is a conflict.
func wantConflict(t *testing.T, res domain.AppendResult, err error, what string) {
	t.Helper()
	if !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("%s: %+v, %v; want an error wrapping domain.ErrConflict", what, res, err)
	}
	if got := domain.Code(err); got != domain.CodeConflict {
		t.Fatalf("%s: code %q, want %q", what, got, domain.CodeConflict)
	}
}

// wantDuplicate fails the test unless res is a duplicate of seq.
func wantDuplicate(t *testing.T, res domain.AppendResult, err error, seq uint64, what string) {
	t.Helper()
	if err != nil || !res.Duplicate || res.Seq != seq {
		t.Fatalf("%s: %+v, %v; want a duplicate of seq %d", what, res, err, seq)
	}
}

// An app without messages has last sequence 0, and its first append
// expects 0.
func testEmptySubject(t *testing.T, s service.EventStore, _ Options) {
	wantLastSeq(t, s, "crm", 0)
	wantLastSeq(t, s, domain.IdentityStream, 0)
	wantLastSeq(t, s, domain.KeysStream, 0)
}

// The first message of the stream has sequence 1; LastSeq finds it.
func testAppendToEmptySubject(t *testing.T, s service.EventStore, _ Options) {
	if seq := mustAppend(t, s, event("crm", "e1", 0)); seq != 1 {
		t.Fatalf("first message at seq %d, want 1", seq)
	}
	wantLastSeq(t, s, "crm", 1)
	if seq := mustAppend(t, s, event("crm", "e2", 1)); seq != 2 {
		t.Fatalf("second message at seq %d, want 2", seq)
	}
	wantLastSeq(t, s, "crm", 2)
}

// Sequences count over the whole stream; each subject expects its own
// last sequence.
func testSequenceIsStreamWide(t *testing.T, s service.EventStore, _ Options) {
	mustAppend(t, s, event("other", "o1", 0))
	if seq := mustAppend(t, s, event("crm", "c1", 0)); seq != 2 {
		t.Fatalf("first message of crm at seq %d, want 2 (after other's)", seq)
	}
	if seq := mustAppend(t, s, event("other", "o2", 1)); seq != 3 {
		t.Fatalf("second message of other at seq %d, want 3", seq)
	}
	if seq := mustAppend(t, s, event(domain.IdentityStream, "i1", 0)); seq != 4 {
		t.Fatalf("first identity message at seq %d, want 4", seq)
	}
	wantLastSeq(t, s, "crm", 2)
	wantLastSeq(t, s, "other", 3)
	wantLastSeq(t, s, domain.IdentityStream, 4)
}

// An append that expects another last sequence than its subject's is a
// conflict and stores nothing: the next right one follows without a gap.
func testWrongExpectedSequence(t *testing.T, s service.EventStore, _ Options) {
	mustAppend(t, s, event("other", "o1", 0))
	r1 := mustAppend(t, s, event("crm", "c1", 0)) // 2
	for _, expected := range []uint64{0, 1, r1 + 1, 99} {
		res, err := s.Append(t.Context(), event("crm", fmt.Sprintf("wrong-%d", expected), expected))
		wantConflict(t, res, err, fmt.Sprintf("expected seq %d, last %d", expected, r1))
	}
	wantLastSeq(t, s, "crm", r1)
	// The stream's last sequence is not the subject's.
	if seq := mustAppend(t, s, event("other", "o2", 1)); seq != r1+1 {
		t.Fatalf("refused appends moved the stream: next message at seq %d, want %d", seq, r1+1)
	}
	res, err := s.Append(t.Context(), event("crm", "stream-last", r1+1))
	wantConflict(t, res, err, "expecting the stream's last sequence")
	if seq := mustAppend(t, s, event("crm", "c2", r1)); seq != r1+2 {
		t.Fatalf("right append after conflicts at seq %d, want %d", seq, r1+2)
	}
}

// A message id stored before is answered with its first copy's sequence
// and stores nothing, whatever the body.
func testDuplicate(t *testing.T, s service.EventStore, _ Options) {
	first := mustAppend(t, s, event("crm", "cmd-1", 0))
	again := event("crm", "cmd-1", first)
	again.Body = []byte(`{"another":"body"}`)
	res, err := s.Append(t.Context(), again)
	wantDuplicate(t, res, err, first, "retry with the current expected sequence")
	wantLastSeq(t, s, "crm", first)
	if seq := mustAppend(t, s, event("crm", "cmd-2", first)); seq != first+1 {
		t.Fatalf("next message at seq %d, want %d: the duplicate took a sequence", seq, first+1)
	}
	if r, ok := s.(service.SubjectReader); ok {
		msgs, err := r.ReadSubject(t.Context(), "crm")
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 2 {
			t.Fatalf("subject holds %d messages, want 2", len(msgs))
		}
		if string(msgs[0].Body) != string(event("crm", "cmd-1", 0).Body) {
			t.Fatalf("first message %q, want the body first appended", msgs[0].Body)
		}
	}
}

// A retry with a stale expected sequence (its first copy moved the
// subject) is a conflict on a single server, which checks the sequence
// first, and a duplicate where the id is checked first. Either way
// nothing is stored.
func testStaleDuplicate(t *testing.T, s service.EventStore, opts Options) {
	first := mustAppend(t, s, event("crm", "cmd-1", 0))
	res, err := s.Append(t.Context(), event("crm", "cmd-1", 0))
	if opts.DedupFirst {
		wantDuplicate(t, res, err, first, "stale retry, id checked first")
	} else {
		wantConflict(t, res, err, "stale retry, sequence checked first")
	}
	wantLastSeq(t, s, "crm", first)
	// The ledger's way out of the conflict: expect the subject's last
	// sequence and get the duplicate.
	res, err = s.Append(t.Context(), event("crm", "cmd-1", first))
	wantDuplicate(t, res, err, first, "retry after catching up")
}

// Message ids are deduplicated over the whole stream, not per subject: the
// ledger puts the subject into every id it sends.
func testMessageIDsStreamWide(t *testing.T, s service.EventStore, _ Options) {
	first := mustAppend(t, s, event("crm", "same-id", 0))
	res, err := s.Append(t.Context(), event("erp", "same-id", 0))
	wantDuplicate(t, res, err, first, "the id of crm's message on erp")
	wantLastSeq(t, s, "erp", 0)
}

// An append refused for its expected sequence leaves no trace of its
// message id: the same id with the right sequence is stored.
func testConflictRecordsNoMessageID(t *testing.T, s service.EventStore, _ Options) {
	r1 := mustAppend(t, s, event("crm", "c1", 0))
	res, err := s.Append(t.Context(), event("crm", "c2", 0))
	wantConflict(t, res, err, "stale append")
	if seq := mustAppend(t, s, event("crm", "c2", r1)); seq != r1+1 {
		t.Fatalf("c2 at seq %d, want %d", seq, r1+1)
	}
}

// Without a message id, every append is a new message.
func testEmptyMessageID(t *testing.T, s service.EventStore, _ Options) {
	ev := event("crm", "", 0)
	r1 := mustAppend(t, s, ev)
	ev.ExpectedSeq = r1
	if r2 := mustAppend(t, s, ev); r2 != r1+1 {
		t.Fatalf("second message without an id at seq %d, want %d", r2, r1+1)
	}
}

// Messages keep the order of their appends; a subject reader returns each
// subject's messages in that order, with their bodies and seals as
// appended and a store time.
func testOrdering(t *testing.T, s service.EventStore, _ Options) {
	apps := []string{"crm", "erp", domain.IdentityStream}
	last := map[string]uint64{}
	want := map[string][]domain.StoredMessage{}
	var seq uint64
	for round := range 4 {
		for i, app := range apps {
			ev := event(app, fmt.Sprintf("%s-%d", app, round), last[app])
			ev.Seal = domain.Seal{KeyID: fmt.Sprintf("key-%d", i), Signature: fmt.Sprintf("sig-%d-%d", round, i), MAC: fmt.Sprintf("mac-%d-%d", round, i)}
			got := mustAppend(t, s, ev)
			seq++
			if got != seq {
				t.Fatalf("message %d at seq %d: the sequence skipped or went back", seq, got)
			}
			last[app] = got
			want[app] = append(want[app], domain.StoredMessage{Seq: got, Token: app, Body: ev.Body,
				KeyID: ev.Seal.KeyID, Signature: ev.Seal.Signature, MAC: ev.Seal.MAC})
		}
	}
	for _, app := range apps {
		wantLastSeq(t, s, app, last[app])
	}
	// Each message by its sequence, as appended.
	for _, app := range apps {
		for _, w := range want[app] {
			m, err := s.Message(t.Context(), w.Seq)
			if err != nil {
				t.Fatalf("message at seq %d: %v", w.Seq, err)
			}
			if m.Stored.IsZero() {
				t.Errorf("message at seq %d has no store time", w.Seq)
			}
			m.Stored = w.Stored
			if m.Seq != w.Seq || m.Token != w.Token || string(m.Body) != string(w.Body) ||
				m.KeyID != w.KeyID || m.Signature != w.Signature || m.MAC != w.MAC {
				t.Errorf("message at seq %d = %+v, want %+v", w.Seq, m, w)
			}
		}
	}
	for _, none := range []uint64{0, seq + 1, seq + 1000} {
		if m, err := s.Message(t.Context(), none); domain.Code(err) != domain.CodeNotFound {
			t.Errorf("message at seq %d of %d = %+v, %v; want not found", none, seq, m, err)
		}
	}
	r, ok := s.(service.SubjectReader)
	if !ok {
		return
	}
	for _, app := range apps {
		got, err := r.ReadSubject(t.Context(), app)
		if err != nil {
			t.Fatalf("read %s: %v", app, err)
		}
		if len(got) != len(want[app]) {
			t.Fatalf("%s holds %d messages, want %d", app, len(got), len(want[app]))
		}
		for i, m := range got {
			w := want[app][i]
			if m.Stored.IsZero() {
				t.Errorf("%s message %d has no store time", app, i)
			}
			m.Stored = w.Stored
			if m.Seq != w.Seq || m.Token != w.Token || string(m.Body) != string(w.Body) ||
				m.KeyID != w.KeyID || m.Signature != w.Signature || m.MAC != w.MAC {
				t.Errorf("%s message %d = %+v, want %+v", app, i, m, w)
			}
		}
	}
}

// Subject tokens that are not app ids, IdentityStream or KeysStream are
// refused as invalid arguments and store nothing.
func testInvalidTokens(t *testing.T, s service.EventStore, _ Options) {
	for _, bad := range []string{"", "a.b", ">", "*", "Crm", "crm x"} {
		if _, err := s.Append(t.Context(), event(bad, "bad", 0)); domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("append to %q: %v, want %s", bad, err, domain.CodeInvalidArgument)
		}
		if _, err := s.LastSeq(t.Context(), bad); domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("last seq of %q: %v, want %s", bad, err, domain.CodeInvalidArgument)
		}
	}
	mustAppend(t, s, event(domain.KeysStream, "k1", 0))
	if seq := mustAppend(t, s, event("crm", "c1", 0)); seq != 2 {
		t.Fatalf("first app message at seq %d, want 2: an invalid append was stored", seq)
	}
}

// Writers that race on one subject, each reading its last sequence and
// retrying on a conflict, store every message exactly once, without gaps;
// a writer that sends the same id twice gets its first copy back.
func testConcurrentWriters(t *testing.T, s service.EventStore, _ Options) {
	const (
		writers = 8
		each    = 5
	)
	ctx := t.Context()
	var (
		mu   sync.Mutex
		seqs []uint64
		wg   sync.WaitGroup
	)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				seq, err := appendRetrying(ctx, s, "crm", id)
				if err != nil {
					errs <- err
					return
				}
				again, err := appendRetrying(ctx, s, "crm", id)
				if err != nil || again != seq {
					errs <- fmt.Errorf("%s sent again: seq %d, %v; want the first copy's %d", id, again, err, seq)
					return
				}
				mu.Lock()
				seqs = append(seqs, seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("sequences %v: not each of 1..%d once", seqs, writers*each)
		}
	}
	wantLastSeq(t, s, "crm", writers*each)
}

// appendRetrying appends a message with id to app as the ledger does:
// expect the subject's last sequence, and on a conflict read it again. It
// returns the message's sequence, or its first copy's.
func appendRetrying(ctx context.Context, s service.EventStore, app, id string) (uint64, error) {
	for range 1000 {
		last, err := s.LastSeq(ctx, app)
		if err != nil {
			return 0, err
		}
		res, err := s.Append(ctx, event(app, id, last))
		if errors.Is(err, domain.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return res.Seq, nil
	}
	return 0, fmt.Errorf("append %s: conflicts for 1000 attempts", id)
}

// A context done before the append ends it with the context's error, not
// a conflict.
func testCancelled(t *testing.T, s service.EventStore, _ Options) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Append(ctx, event("crm", "c1", 0))
	if !errors.Is(err, context.Canceled) || errors.Is(err, domain.ErrConflict) {
		t.Fatalf("append with a cancelled context: %v; want context.Canceled", err)
	}
}
