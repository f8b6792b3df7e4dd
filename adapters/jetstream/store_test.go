package jetstream_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

func name(s string) *string { return &s }

// Many goroutines in two processes send commands to one app at once. Every
// accepted command is in the stream exactly once, at the sequence its answer
// names; the app's messages are exactly the answered ones; nothing else is
// stored, and both projections end in the same state.
func TestContractConcurrentCommandsOnOneApp(t *testing.T) {
	t.Parallel()
	s := newServer(t, jetstream.Config{})
	ids := &counterIDs{prefix: "A"}
	ids2 := &counterIDs{prefix: "B"}
	procs := []*stack{newStack(t, s, ids), newStack(t, s, ids2)}
	for _, p := range procs {
		runFollower(t, p.follower)
	}
	const (
		app        = "crm"
		goroutines = 40
		requests   = 3
	)
	type sent struct {
		actor, cmdID string
		res          domain.Result
	}
	var (
		mu       sync.Mutex
		accepted []sent
		refused  []sent
		wg       sync.WaitGroup
	)
	ctx := t.Context()
	for g := range goroutines {
		wg.Go(func() {
			l := procs[g%2].ledger
			actor := fmt.Sprintf("user%d", g%3)
			exec := func(cmd domain.Command, cmdID string) domain.Result {
				res, err := l.Execute(ctx, cmd, domain.Meta{Actor: actor, CommandID: cmdID})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, domain.ErrConflict):
					refused = append(refused, sent{actor, cmdID, res})
				case err != nil:
					t.Errorf("goroutine %d: %s: %v", g, cmdID, err)
				default:
					accepted = append(accepted, sent{actor, cmdID, res})
				}
				return res
			}
			var first domain.Result
			for k := range requests {
				res := exec(domain.RequestBackup{App: app, Name: name(fmt.Sprintf("g%d-%d", g, k))}, fmt.Sprintf("req-%d-%d", g, k))
				if k == 0 {
					first = res
				}
			}
			if first.BackupID != "" {
				exec(domain.RenameBackup{App: app, BackupID: first.BackupID, Name: fmt.Sprintf("renamed-%d", g)}, fmt.Sprintf("ren-%d", g))
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	conflicts := procs[0].store.conflicts.Load() + procs[1].store.conflicts.Load()
	t.Logf("accepted %d, refused after retries %d, conflicts on append %d", len(accepted), len(refused), conflicts)
	if conflicts == 0 {
		t.Fatal("two processes writing one app never conflicted: the test does not exercise the expected sequence")
	}
	if len(accepted) < goroutines*requests {
		t.Fatalf("only %d of %d commands were accepted", len(accepted), goroutines*(requests+1))
	}

	msgs := readAll(t, procs[0].js)
	appMsgs := ofSubject(msgs, jetstream.Subject(app))
	if len(appMsgs) != len(msgs) {
		t.Fatalf("stream holds %d messages, %d of them on the app's subject", len(msgs), len(appMsgs))
	}
	if len(appMsgs) != len(accepted) {
		t.Fatalf("stream holds %d events, %d commands were accepted", len(appMsgs), len(accepted))
	}
	bySeq := map[uint64]stored{}
	stored := map[string]int{}
	for i, m := range appMsgs {
		if m.seq != uint64(i+1) {
			t.Fatalf("message %d has stream sequence %d: a gap", i, m.seq)
		}
		bySeq[m.seq] = m
		stored[domain.CommandKey(m.env.Actor, m.env.CommandID)]++
	}
	for key, n := range stored {
		if n != 1 {
			t.Errorf("command %q stored %d times", key, n)
		}
	}
	answered := map[uint64]bool{}
	for _, a := range accepted {
		if a.res.Duplicate {
			t.Errorf("command %s answered as a duplicate", a.cmdID)
		}
		if answered[a.res.Seq] {
			t.Errorf("seq %d answered twice", a.res.Seq)
		}
		answered[a.res.Seq] = true
		m, ok := bySeq[a.res.Seq]
		if !ok {
			t.Errorf("command %s answered with seq %d, which is not in the stream", a.cmdID, a.res.Seq)
			continue
		}
		if m.env.CommandID != a.cmdID || m.env.Actor != a.actor {
			t.Errorf("seq %d holds command %s of %s, answered to %s of %s", a.res.Seq, m.env.CommandID, m.env.Actor, a.cmdID, a.actor)
		}
		if m.env.Type != a.res.EventType {
			t.Errorf("seq %d is a %s, answered as %s", a.res.Seq, m.env.Type, a.res.EventType)
		}
	}
	for _, r := range refused {
		if stored[domain.CommandKey(r.actor, r.cmdID)] != 0 {
			t.Errorf("command %s was refused with a conflict but is stored", r.cmdID)
		}
	}
	checkChain(t, appMsgs)

	last := appMsgs[len(appMsgs)-1].seq
	for i, p := range procs {
		if err := p.proj.WaitApplied(ctx, last); err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
		v := p.proj.App(app)
		if v.LastSeq != last || v.Events != len(appMsgs) {
			t.Errorf("process %d: app at seq %d with %d events, want %d and %d", i, v.LastSeq, v.Events, last, len(appMsgs))
		}
		if got, want := len(p.proj.Backups(app)), len(appMsgs)-countType(appMsgs, domain.TypeBackupRenamed); got != want {
			t.Errorf("process %d: %d backups, want %d", i, got, want)
		}
	}
}

func countType(msgs []stored, typ string) int {
	n := 0
	for _, m := range msgs {
		if m.env.Type == typ {
			n++
		}
	}
	return n
}

// A retried command (same id, same caller) is stored once and answered with
// the first result: by the same process, through the store with a stale or
// a current expected sequence, and by a second process whose state does not
// know the command yet.
func TestContractRetriedCommandStoredOnce(t *testing.T) {
	t.Parallel()
	s := newServer(t, jetstream.Config{})
	p1 := newStack(t, s, &counterIDs{prefix: "A"})
	runFollower(t, p1.follower)
	ctx := t.Context()
	const app = "billing"
	cmd := domain.RequestBackup{App: app, Name: name("nightly copy")}
	meta := domain.Meta{Actor: "alice", CommandID: "retry-1"}

	first, err := p1.ledger.Execute(ctx, cmd, meta)
	if err != nil {
		t.Fatalf("first: %v", err)
	}
	if first.Duplicate || first.BackupID == "" {
		t.Fatalf("first result %+v", first)
	}
	again, err := p1.ledger.Execute(ctx, cmd, meta)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !again.Duplicate || again.BackupID != first.BackupID || again.Seq != first.Seq {
		t.Fatalf("retry answered %+v, want the first result %+v as a duplicate", again, first)
	}

	// The same event through the store, as a retry after a lost answer.
	p1.store.mu.Lock()
	ev := p1.store.appended[0]
	p1.store.mu.Unlock()
	if ev.MsgID == "" || ev.ExpectedSeq != 0 {
		t.Fatalf("first append %+v: want a message id and expected seq 0", ev)
	}
	before := lastSeq(t, p1.js)
	res, err := p1.raw.Append(ctx, ev) // stale: expects an empty subject
	switch {
	case errors.Is(err, domain.ErrConflict):
		t.Logf("stale retry answered with a conflict (R1 checks the sequence before dedup): %v", err)
	case err == nil && res.Duplicate && res.Seq == first.Seq:
		t.Log("stale retry answered as a duplicate")
	default:
		t.Fatalf("stale retry: %+v, %v; want a conflict or a duplicate of seq %d", res, err, first.Seq)
	}
	ev.ExpectedSeq = first.Seq
	res, err = p1.raw.Append(ctx, ev)
	if err != nil || !res.Duplicate || res.Seq != first.Seq {
		t.Fatalf("current retry: %+v, %v; want a duplicate of seq %d", res, err, first.Seq)
	}
	if got := lastSeq(t, p1.js); got != before {
		t.Fatalf("retries through the store moved the stream from %d to %d", before, got)
	}

	// A second process that has not applied the command yet.
	p2 := newStack(t, s, &counterIDs{prefix: "B"})
	p2.store.answers = make(chan appendAnswer, 10)
	type outcome struct {
		res domain.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := p2.ledger.Execute(ctx, cmd, meta)
		done <- outcome{res, err}
	}()
	ans := receive(t, p2.store.answers, "the second process's append")
	if !errors.Is(ans.err, domain.ErrConflict) && !(ans.err == nil && ans.res.Duplicate && ans.res.Seq == first.Seq) {
		t.Fatalf("second process's append: %+v, %v; want a conflict or a duplicate", ans.res, ans.err)
	}
	runFollower(t, p2.follower)
	out := receive(t, done, "the second process's answer")
	if out.err != nil {
		t.Fatalf("second process: %v", out.err)
	}
	if !out.res.Duplicate || out.res.BackupID != first.BackupID || out.res.Seq != first.Seq {
		t.Fatalf("second process answered %+v, want the first result %+v as a duplicate", out.res, first)
	}

	// The same key from another caller is another command.
	other, err := p1.ledger.Execute(ctx, cmd, domain.Meta{Actor: "bob", CommandID: meta.CommandID})
	if err != nil {
		t.Fatalf("other caller: %v", err)
	}
	if other.Duplicate || other.BackupID == first.BackupID {
		t.Fatalf("bob's command with alice's key answered %+v", other)
	}
	msgs := ofSubject(readAll(t, p1.js), jetstream.Subject(app))
	if len(msgs) != 2 {
		t.Fatalf("app has %d events, want 2 (alice's and bob's)", len(msgs))
	}
	if msgs[0].seq != first.Seq || msgs[0].env.CommandID != "retry-1" || msgs[0].env.Actor != "alice" {
		t.Fatalf("first event %+v", msgs[0].env)
	}
}

// Every app's events form their own hash chain, also when the events of
// several apps interleave in the stream.
func TestContractHashChainPerApp(t *testing.T) {
	t.Parallel()
	s := newServer(t, jetstream.Config{})
	p := newStack(t, s, &counterIDs{prefix: "A"})
	runFollower(t, p.follower)
	ctx := t.Context()
	apps := []string{"crm", "erp", "wiki"}
	m := domain.Meta{Actor: "alice"}
	for round := range 3 {
		for _, app := range apps {
			req, err := p.ledger.Execute(ctx, domain.RequestBackup{App: app}, m)
			if err != nil {
				t.Fatal(err)
			}
			steps := []domain.Command{
				domain.StartBackup{App: app, BackupID: req.BackupID, Attempt: 1, Worker: "w"},
				domain.FailBackup{App: app, BackupID: req.BackupID, Reason: fmt.Sprintf("round %d", round)},
				domain.RenameBackup{App: app, BackupID: req.BackupID, Name: "failed one"},
			}
			for _, c := range steps {
				if _, err := p.ledger.Execute(ctx, c, m); err != nil {
					t.Fatalf("%s: %v", c.CommandName(), err)
				}
			}
		}
	}
	msgs := readAll(t, p.js)
	if len(msgs) != 3*len(apps)*4 {
		t.Fatalf("stream holds %d events, want %d", len(msgs), 3*len(apps)*4)
	}
	for _, app := range apps {
		appMsgs := ofSubject(msgs, jetstream.Subject(app))
		if len(appMsgs) != 12 {
			t.Fatalf("%s has %d events, want 12", app, len(appMsgs))
		}
		checkChain(t, appMsgs)
	}
	// A broken link is detected: the chain check is not vacuous.
	broken := ofSubject(msgs, jetstream.Subject("crm"))
	broken[1], broken[2] = broken[2], broken[1]
	if chainError(broken) == nil {
		t.Fatal("a swapped pair of events passed the chain check")
	}
}

// What the contract (TestEventStoreContract) does not say: a conflict
// carries the server's error 10071, and the event type travels as a
// header, so that consumers filter without decoding.
func TestConflictCarriesServerErrorAndTypeHeader(t *testing.T) {
	t.Parallel()
	s := newServer(t, jetstream.Config{})
	_, js := natstest.Connect(t, s)
	store := newStore(t, js)
	ctx := t.Context()
	const app = "shop"
	r1, err := store.Append(ctx, domain.PendingEvent{App: app, Type: "test.event", MsgID: "e1", Body: []byte(`{"id":"e1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Append(ctx, domain.PendingEvent{App: app, Type: "test.event", MsgID: "e2", ExpectedSeq: r1.Seq + 1, Body: []byte(`{"id":"e2"}`)})
	var apiErr *njs.APIError
	if !errors.Is(err, domain.ErrConflict) || !errors.As(err, &apiErr) || apiErr.ErrorCode != njs.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("conflict %v does not carry the server's error 10071", err)
	}
	st, err := js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, r1.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(jetstream.HeaderEventType); got != "test.event" {
		t.Errorf("%s header %q", jetstream.HeaderEventType, got)
	}
}

// Setup runs at every start: twice in a row it succeeds, it applies changed
// settings, and the stream refuses to delete or purge the ledger.
func TestSetupIdempotentAndStreamProtected(t *testing.T) {
	t.Parallel()
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	ctx := t.Context()
	if _, err := jetstream.NewEventStore(ctx, js, testSigner{}); err == nil {
		t.Fatal("event store without a stream")
	}
	for i := range 2 {
		if err := jetstream.Setup(ctx, js, jetstream.Config{}); err != nil {
			t.Fatalf("setup %d: %v", i+1, err)
		}
	}
	st, err := js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	c := st.CachedInfo().Config
	if !c.DenyDelete || !c.DenyPurge || !c.AllowDirect || c.Duplicates < 2*time.Minute ||
		c.Storage != njs.FileStorage || c.Replicas != 1 || c.MaxAge != 0 || c.Discard != njs.DiscardOld ||
		!slices.Equal(c.Subjects, []string{"ledger.events.>"}) {
		t.Fatalf("stream config %+v", c)
	}
	cons, err := js.Consumer(ctx, jetstream.StreamName, jetstream.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	cc := cons.CachedInfo().Config
	if cc.Durable != "backup-worker" || cc.AckPolicy != njs.AckExplicitPolicy || cc.AckWait != 30*time.Second ||
		cc.MaxDeliver != 5 || cc.DeliverPolicy != njs.DeliverAllPolicy || cc.FilterSubject != "ledger.events.>" || cc.MaxAckPending < 100 {
		t.Fatalf("consumer config %+v", cc)
	}
	// Changed settings are applied to the existing consumer and stream.
	if err := jetstream.Setup(ctx, js, jetstream.Config{AckWait: 7 * time.Second, MaxDeliver: 3, DuplicateWindow: 5 * time.Minute}); err != nil {
		t.Fatalf("setup with new settings: %v", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.AckWait != 7*time.Second || info.Config.MaxDeliver != 3 {
		t.Fatalf("consumer not updated: %+v", info.Config)
	}
	sinfo, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sinfo.Config.Duplicates != 5*time.Minute {
		t.Fatalf("stream not updated: duplicates %s", sinfo.Config.Duplicates)
	}

	store := newStore(t, js)
	if _, err := store.Append(ctx, domain.PendingEvent{App: "crm", MsgID: "m1", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("deleting a ledger message was allowed")
	}
	if err := st.SecureDeleteMsg(ctx, 1); err == nil {
		t.Fatal("erasing a ledger message was allowed")
	}
	if err := st.Purge(ctx); err == nil {
		t.Fatal("purging the ledger was allowed")
	}
	if got := lastSeq(t, js); got != 1 {
		t.Fatalf("last seq %d after refused deletes", got)
	}
	if _, err := st.GetMsg(ctx, 1); err != nil {
		t.Fatalf("message 1 is gone: %v", err)
	}

	err = jetstream.Setup(ctx, js, jetstream.Config{DuplicateWindow: time.Minute, Workers: -1})
	if err == nil {
		t.Fatal("setup with a 1m duplicate window and -1 workers succeeded")
	}
	for _, want := range []string{"duplicate window", "workers"} {
		if !containsFold(err.Error(), want) {
			t.Errorf("setup error %q does not mention %q", err, want)
		}
	}
}
