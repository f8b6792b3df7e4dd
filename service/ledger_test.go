package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// proc is one backupd process as the application layer sees it: its own
// fold (projection) and ledger over a shared stream.
type proc struct {
	fold   *fakeFold
	ledger *service.Ledger
}

// rig is a stream, a clock, ids and archives shared by one or more procs.
type rig struct {
	t        *testing.T
	stream   *fakeStream
	clock    *fakeClock
	ids      *fakeIDs
	archives *fakeArchives
	cfg      service.LedgerConfig
	*proc    // the first process
}

func newRig(t *testing.T, cfg service.LedgerConfig) *rig {
	t.Helper()
	if cfg.Rules == (domain.Rules{}) {
		cfg.Rules = domain.DefaultRules()
	}
	r := &rig{t: t, stream: newFakeStream(), clock: newClock(t0), ids: &fakeIDs{}, archives: newFakeArchives(), cfg: cfg}
	r.proc = r.newProc()
	return r
}

// newProc starts another process on the same stream.
func (r *rig) newProc() *proc {
	r.t.Helper()
	f := newFakeFold(r.stream, r.cfg.Rules.CommandMemory)
	l, err := service.NewLedger(r.cfg, r.stream, f, r.clock, r.ids, r.archives, nil)
	if err != nil {
		r.t.Fatalf("NewLedger: %v", err)
	}
	return &proc{fold: f, ledger: l}
}

func (p *proc) exec(cmd domain.Command, m domain.Meta) (domain.Result, error) {
	return p.ledger.Execute(context.Background(), cmd, m)
}

// catchUp applies everything on the stream to p's fold.
func (p *proc) catchUp(t *testing.T) {
	t.Helper()
	if err := p.fold.WaitApplied(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}

// must executes cmd and fails the test on an error.
func (p *proc) must(t *testing.T, cmd domain.Command, m domain.Meta) domain.Result {
	t.Helper()
	res, err := p.exec(cmd, m)
	if err != nil {
		t.Fatalf("%s: %v", cmd.CommandName(), err)
	}
	return res
}

func alice(key string) domain.Meta { return domain.Meta{Actor: "alice", CommandID: key} }
func bob(key string) domain.Meta   { return domain.Meta{Actor: "bob", CommandID: key} }

func nightly(app string) domain.RequestBackup {
	return domain.RequestBackup{App: app, Origin: domain.OriginNightly}
}

// rawEnvelope decodes a stored body into a map, to see the JSON as audit
// consumers do.
func rawEnvelope(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("stored body is not JSON: %v", err)
	}
	return m
}

func TestNewLedger(t *testing.T) {
	bad := domain.DefaultRules()
	bad.MaxBackups = 0
	_, err := service.NewLedger(service.LedgerConfig{Rules: bad}, newFakeStream(), nil, newClock(t0), &fakeIDs{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "rules") || !strings.Contains(err.Error(), "max backups") {
		t.Fatalf("NewLedger with bad rules = %v", err)
	}
	custom := domain.DefaultRules()
	custom.MaxBackups = 3
	l, err := service.NewLedger(service.LedgerConfig{Rules: custom}, newFakeStream(), nil, newClock(t0), &fakeIDs{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Rules(); got != custom {
		t.Fatalf("Rules() = %+v, want %+v", got, custom)
	}
}

func TestExecuteWritesTheEnvelope(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	// The clock is in another zone and has nanoseconds: the envelope holds
	// UTC truncated to milliseconds.
	r.clock.Set(time.Date(2026, 11, 21, 11, 15, 0, 123_456_789, time.FixedZone("CET", 3600)))

	res := r.must(t, domain.RequestBackup{App: "crm", Description: "first"}, alice("key-1"))
	if res.Seq != 1 || res.EventType != domain.TypeBackupRequested || res.BackupID == "" || res.Duplicate {
		t.Fatalf("result = %+v", res)
	}
	msgs := r.stream.snapshot()
	if len(msgs) != 1 {
		t.Fatalf("stream holds %d messages, want 1", len(msgs))
	}
	env := rawEnvelope(t, msgs[0].body)
	keys := slices.Sorted(maps.Keys(env))
	wantKeys := []string{"actor", "app", "command_id", "correlation_id", "data", "id", "prev_hash", "time", "type", "version"}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("envelope fields = %v, want %v (no causation_id when none is given)", keys, wantKeys)
	}
	want := map[string]any{
		"type": "backup.requested", "version": 1.0, "app": "crm", "time": "2026-11-21T10:15:00.123Z",
		"actor": "alice", "command_id": "key-1", "correlation_id": "key-1", "prev_hash": "",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("envelope %s = %v, want %v", k, env[k], v)
		}
	}
	id, _ := env["id"].(string)
	if id == "" || id == res.BackupID || id == "key-1" {
		t.Errorf("envelope id = %q: want a fresh id of its own (backup %s)", id, res.BackupID)
	}
	data, _ := env["data"].(map[string]any)
	wantData := map[string]any{"backup_id": res.BackupID, "name": "November 21 Saturday 10:15", "description": "first",
		"origin": "manual", "expires_at": "2027-01-20T10:15:00.123Z"}
	if !reflect.DeepEqual(data, wantData) {
		t.Errorf("data = %v, want %v", data, wantData)
	}

	calls := r.stream.appendCalls()
	if len(calls) != 1 {
		t.Fatalf("%d appends, want 1", len(calls))
	}
	pe := calls[0]
	if pe.App != "crm" || pe.Type != domain.TypeBackupRequested || pe.ExpectedSeq != 0 || string(pe.Body) != string(msgs[0].body) {
		t.Errorf("pending event = %+v", pe)
	}
	for _, part := range []string{"crm", "key-1", "alice"} {
		if !strings.Contains(pe.MsgID, part) {
			t.Errorf("MsgID %q does not scope by %s", pe.MsgID, part)
		}
	}
	// Answered only once the projection applied it.
	b, ok := r.fold.backup(t, "crm", res.BackupID)
	if !ok || b.Status != domain.StatusQueued || b.CreatedBy != "alice" || !b.CreatedAt.Equal(time.Date(2026, 11, 21, 10, 15, 0, 123_000_000, time.UTC)) {
		t.Fatalf("backup in the fold = %+v, %v", b, ok)
	}
	if !slices.Contains(r.fold.waits, res.Seq) {
		t.Fatalf("WaitApplied calls %v, want one for seq %d", r.fold.waits, res.Seq)
	}
}

func TestExecuteChainsHashesPerApp(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	first := r.must(t, nightly("crm"), alice("k1"))
	r.must(t, nightly("hr"), alice("k1")) // another app in between: global seq 2
	m := domain.Meta{Actor: "bob", CommandID: "k2", CorrelationID: "corr-1", CausationID: "cause-1"}
	res := r.must(t, domain.RenameBackup{App: "crm", BackupID: first.BackupID, Name: "renamed"}, m)
	if res.Seq != 3 || res.EventType != domain.TypeBackupRenamed || res.BackupID != first.BackupID {
		t.Fatalf("result = %+v", res)
	}
	msgs := r.stream.snapshot()
	calls := r.stream.appendCalls()
	if got := calls[2].ExpectedSeq; got != 1 {
		t.Fatalf("expected seq of crm's second event = %d, want 1 (crm's last, not the stream's)", got)
	}
	if got := calls[1].ExpectedSeq; got != 0 {
		t.Fatalf("expected seq of hr's first event = %d, want 0", got)
	}
	env := rawEnvelope(t, msgs[2].body)
	if got, want := env["prev_hash"], domain.HashEvent(msgs[0].body); got != want {
		t.Fatalf("prev_hash = %v, want the hash of crm's previous event %s", got, want)
	}
	if rawEnvelope(t, msgs[1].body)["prev_hash"] != "" {
		t.Fatal("hr's first event has a prev_hash")
	}
	if env["correlation_id"] != "corr-1" || env["causation_id"] != "cause-1" || env["actor"] != "bob" {
		t.Fatalf("envelope = %v", env)
	}
	var lastHash string
	r.fold.ReadApp("crm", func(a *domain.App) { lastHash = a.LastHash() })
	if lastHash != domain.HashEvent(msgs[2].body) {
		t.Fatal("the fold's last hash is not the hash of the stored body")
	}
}

func TestExecuteGeneratesCommandID(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	a := r.must(t, nightly("crm"), domain.Meta{Actor: "alice"})
	b := r.must(t, nightly("crm"), domain.Meta{Actor: "alice"})
	if a.BackupID == b.BackupID || b.Duplicate {
		t.Fatalf("two commands without ids: %+v, %+v; want two backups", a, b)
	}
	for _, env := range r.stream.envelopes(t, "crm") {
		if env.CommandID == "" || env.CorrelationID != env.CommandID {
			t.Fatalf("command id %q, correlation id %q; want a generated id, correlated with itself", env.CommandID, env.CorrelationID)
		}
		if err := domain.ValidateCommandKey(env.CommandID); err != nil {
			t.Fatalf("generated command id: %v", err)
		}
	}
}

func TestExecuteRetryAnswersTheFirstResult(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	first := r.must(t, manual(), alice("key-1"))
	r.clock.Advance(time.Hour) // the retry is not refused for being too soon
	appends := len(r.stream.appendCalls())

	again := r.must(t, manual(), alice("key-1"))
	want := first
	want.Duplicate = true
	if again != want {
		t.Fatalf("retry = %+v, want %+v", again, want)
	}
	// Even with a different body: the first request wins.
	other := r.must(t, domain.RequestBackup{App: "crm", Name: ptr("other"), Origin: domain.OriginNightly}, alice("key-1"))
	if other != want {
		t.Fatalf("retry with another body = %+v, want %+v", other, want)
	}
	if got := len(r.stream.appendCalls()); got != appends {
		t.Fatalf("retries appended: %d append calls, want %d", got, appends)
	}
	if n := r.stream.len(); n != 1 {
		t.Fatalf("stream holds %d events, want 1", n)
	}
}

func TestExecuteSameKeyOtherActorIsAnotherCommand(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	a := r.must(t, nightly("crm"), alice("key-1"))
	b := r.must(t, nightly("crm"), bob("key-1"))
	if b.Duplicate || b.BackupID == a.BackupID || b.Seq != 2 {
		t.Fatalf("bob's key-1 = %+v, alice's %+v; want a second backup", b, a)
	}
	calls := r.stream.appendCalls()
	if calls[0].MsgID == calls[1].MsgID {
		t.Fatalf("both commands have MsgID %q", calls[0].MsgID)
	}
	// The same key in another app is another command too.
	c := r.must(t, nightly("hr"), alice("key-1"))
	if c.Duplicate || calls[0].MsgID == r.stream.appendCalls()[2].MsgID {
		t.Fatalf("alice's key-1 in hr = %+v; want a new command", c)
	}
}

func TestExecuteRetryOnAnotherProcessWithStaleState(t *testing.T) {
	for _, seqFirst := range []bool{false, true} {
		name := map[bool]string{false: "dedup before sequence check (R3)", true: "sequence check before dedup (R1)"}[seqFirst]
		t.Run(name, func(t *testing.T) {
			r := newRig(t, service.LedgerConfig{})
			r.stream.SetDedupFirst(!seqFirst)
			p2 := r.newProc() // has not applied anything yet
			first := r.must(t, manual(), alice("key-1"))

			again, err := p2.exec(manual(), alice("key-1"))
			if err != nil {
				t.Fatalf("retry on the other process: %v", err)
			}
			want := first
			want.Duplicate = true
			if again != want {
				t.Fatalf("retry = %+v, want %+v", again, want)
			}
			if n := r.stream.len(); n != 1 {
				t.Fatalf("stream holds %d events, want 1", n)
			}
		})
	}
}

func TestExecuteDuplicateBeyondMemoryIsAnError(t *testing.T) {
	rules := domain.DefaultRules()
	rules.CommandMemory = 1
	r := newRig(t, service.LedgerConfig{Rules: rules})
	p2 := r.newProc()
	r.must(t, nightly("crm"), alice("k1"))
	r.must(t, nightly("crm"), alice("k2")) // k1 is forgotten
	_, err := p2.exec(nightly("crm"), alice("k1"))
	if err == nil || !strings.Contains(err.Error(), "duplicate of command k1") {
		t.Fatalf("err = %v, want the duplicate that the app no longer remembers", err)
	}
	wantCode(t, err, domain.CodeInternal)
	if n := r.stream.len(); n != 2 {
		t.Fatalf("stream holds %d events, want 2", n)
	}
}

func TestExecuteConflictIsRetriedAndDecidedAgain(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	p2 := r.newProc()
	b := r.must(t, nightly("crm"), alice("k0"))

	var once sync.Once
	r.stream.beforeAppend = func(ev domain.PendingEvent) {
		if strings.Contains(ev.MsgID, "alice") {
			once.Do(func() {
				// Meanwhile another process renames the backup.
				p2.catchUp(t)
				p2.must(t, domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: "by bob"}, bob("k1"))
			})
		}
	}
	res, err := r.exec(domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: "by alice"}, alice("k1"))
	if err != nil {
		t.Fatalf("rename after a conflict: %v", err)
	}
	if res.Seq != 3 || res.Duplicate {
		t.Fatalf("result = %+v, want seq 3", res)
	}
	var aliceAppends []domain.PendingEvent
	for _, pe := range r.stream.appendCalls() {
		if strings.Contains(pe.MsgID, "|k1|alice") {
			aliceAppends = append(aliceAppends, pe)
		}
	}
	if len(aliceAppends) != 2 || aliceAppends[0].ExpectedSeq != 1 || aliceAppends[1].ExpectedSeq != 2 {
		t.Fatalf("alice's appends = %+v; want two, expecting seq 1 then 2", aliceAppends)
	}
	envs := r.stream.envelopes(t, "crm")
	if len(envs) != 3 {
		t.Fatalf("%d events, want 3", len(envs))
	}
	ev, err := domain.DecodeEvent(&envs[2])
	if err != nil {
		t.Fatal(err)
	}
	// Decided again against the new state: the previous name is bob's.
	if want := (&domain.BackupRenamed{BackupID: b.BackupID, Name: "by alice", PreviousName: "by bob"}); !reflect.DeepEqual(ev, want) {
		t.Fatalf("alice's event = %#v, want %#v", ev, want)
	}
	if envs[2].PrevHash != domain.HashEvent(r.stream.snapshot()[1].body) {
		t.Fatal("after the retry, prev_hash is not the hash of the concurrent event")
	}
	if r.stream.lastSeqCall != 1 {
		t.Fatalf("LastSeq called %d times, want 1 (catch up once after the conflict)", r.stream.lastSeqCall)
	}
}

func TestExecuteConflictThenRuleRefuses(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	p2 := r.newProc()
	for i := range 9 {
		r.must(t, nightly("crm"), alice(fmt.Sprintf("fill-%d", i)))
	}
	var once sync.Once
	r.stream.beforeAppend = func(ev domain.PendingEvent) {
		if strings.Contains(ev.MsgID, "|mine|alice") {
			once.Do(func() {
				// Another process takes the 10th place meanwhile.
				p2.catchUp(t)
				p2.must(t, nightly("crm"), bob("theirs"))
			})
		}
	}
	before := r.stream.len()
	_, err := r.exec(nightly("crm"), alice("mine"))
	wantCode(t, err, domain.CodeQuotaExceeded)
	msgs := r.stream.snapshot()
	if len(msgs) != before+1 {
		t.Fatalf("stream grew by %d, want 1 (bob's backup only)", len(msgs)-before)
	}
	for _, m := range msgs {
		if strings.Contains(m.msgID, "mine") {
			t.Fatalf("the refused command was stored at seq %d", m.seq)
		}
	}
}

func TestExecuteGivesUpAfterMaxAttempts(t *testing.T) {
	for _, tc := range []struct {
		max, want int
	}{{3, 3}, {0, 20}} {
		t.Run(fmt.Sprintf("MaxAttempts %d", tc.max), func(t *testing.T) {
			r := newRig(t, service.LedgerConfig{MaxAttempts: tc.max})
			b := r.must(t, nightly("crm"), alice("k0"))
			n := 0
			r.stream.beforeAppend = func(domain.PendingEvent) {
				// Someone else writes to the app before every append of ours.
				n++
				r.stream.publishRaw(t, "crm", "other", fmt.Sprintf("x%d", n), nil)
			}
			_, err := r.exec(domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: "mine"}, alice("k1"))
			if !errors.Is(err, domain.ErrConflict) {
				t.Fatalf("err = %v, want ErrConflict", err)
			}
			wantCode(t, err, domain.CodeConflict)
			if got := domain.Public(err); got != "the app changed concurrently too often; try again" {
				t.Fatalf("Public = %q", got)
			}
			if n != tc.want {
				t.Fatalf("%d appends, want %d", n, tc.want)
			}
			for _, m := range r.stream.snapshot() {
				if strings.Contains(m.msgID, "|k1|alice") {
					t.Fatal("the conflicting command was stored")
				}
			}
		})
	}
}

func TestExecuteRefusesBadInputWithoutAppending(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	b := r.must(t, nightly("crm"), alice("k0"))
	r.must(t, manual(), alice("m0")) // the next manual backup is too soon
	cases := []struct {
		name string
		cmd  domain.Command
		meta domain.Meta
		code string
	}{
		{"invalid app id", nightly("CRM"), alice("k1"), domain.CodeInvalidArgument},
		{"empty app id", nightly(""), alice("k1"), domain.CodeInvalidArgument},
		{"key with a space", nightly("crm"), alice("a b"), domain.CodeInvalidArgument},
		{"key of 65 characters", nightly("crm"), alice(runes("k", 65)), domain.CodeInvalidArgument},
		{"key with a pipe", nightly("crm"), alice("a|b"), domain.CodeInvalidArgument},
		{"empty actor", nightly("crm"), domain.Meta{CommandID: "k1"}, domain.CodeUnauthenticated},
		{"rule: unknown backup", domain.DeleteBackup{App: "crm", BackupID: "nope"}, alice("k1"), domain.CodeNotFound},
		{"rule: bad name", domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: " "}, alice("k1"), domain.CodeInvalidArgument},
		{"rule: too soon", manual(), alice("k2"), domain.CodeTooSoon},
	}
	for _, tc := range cases {
		before := len(r.stream.appendCalls())
		_, err := r.exec(tc.cmd, tc.meta)
		if domain.Code(err) != tc.code {
			t.Fatalf("%s: err = %v, want code %s", tc.name, err, tc.code)
		}
		if got := len(r.stream.appendCalls()); got != before {
			t.Fatalf("%s: appended although refused", tc.name)
		}
	}
	if _, err := r.exec(nightly("crm"), domain.Meta{CommandID: "k1"}); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("empty actor: err = %v, want ErrUnauthenticated", err)
	}
	if d := r.archives.deleted(); len(d) != 0 {
		t.Fatalf("refused commands deleted archives %v", d)
	}
}

func TestExecuteDeleteRemovesTheArchive(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	b := r.must(t, nightly("crm"), alice("k0"))
	keep := r.must(t, nightly("crm"), alice("k1"))
	res := r.must(t, domain.DeleteBackup{App: "crm", BackupID: b.BackupID}, alice("del"))
	if res.EventType != domain.TypeBackupDeleted || res.BackupID != b.BackupID {
		t.Fatalf("result = %+v", res)
	}
	if got := r.archives.deleted(); !slices.Equal(got, []string{b.BackupID}) {
		t.Fatalf("archives deleted = %v, want [%s]", got, b.BackupID)
	}
	if _, ok := r.fold.backup(t, "crm", b.BackupID); ok {
		t.Fatal("deleted backup still in the fold")
	}
	if _, ok := r.fold.backup(t, "crm", keep.BackupID); !ok {
		t.Fatal("the other backup is gone")
	}

	// A failing archive store does not fail the command: the event is on
	// record and followers of the stream delete the archive again.
	r.archives.deleteErr = errors.New("object store down")
	res, err := r.exec(domain.DeleteBackup{App: "crm", BackupID: keep.BackupID}, alice("del2"))
	if err != nil || res.BackupID != keep.BackupID {
		t.Fatalf("delete with a failing archive store = %+v, %v", res, err)
	}
}

func TestExecuteDeleteWithoutArchiveDeleter(t *testing.T) {
	s := newFakeStream()
	f := newFakeFold(s, 10)
	l, err := service.NewLedger(service.LedgerConfig{Rules: domain.DefaultRules()}, s, f, newClock(t0), &fakeIDs{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := l.Execute(ctx, nightly("crm"), alice("k0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Execute(ctx, domain.DeleteBackup{App: "crm", BackupID: b.BackupID}, alice("k1")); err != nil {
		t.Fatal(err)
	}
	if got := s.types("crm"); !slices.Equal(got, []string{domain.TypeBackupRequested, domain.TypeBackupDeleted}) {
		t.Fatalf("events = %v", got)
	}
}

func TestExecuteStoreFailures(t *testing.T) {
	t.Run("append fails", func(t *testing.T) {
		r := newRig(t, service.LedgerConfig{})
		r.stream.failAppend = func(domain.PendingEvent) error { return errStore }
		_, err := r.exec(nightly("crm"), alice("k1"))
		if !errors.Is(err, errStore) {
			t.Fatalf("err = %v, want the store's error", err)
		}
		wantCode(t, err, domain.CodeInternal)
		if domain.Public(err) != "internal error" {
			t.Fatalf("Public = %q leaks the store's error", domain.Public(err))
		}
	})
	t.Run("last seq fails after a conflict", func(t *testing.T) {
		r := newRig(t, service.LedgerConfig{})
		r.stream.lastSeqErr = errStore
		r.stream.beforeAppend = func(domain.PendingEvent) { r.stream.publishRaw(t, "crm", "other", "x", nil) }
		_, err := r.exec(nightly("crm"), alice("k1"))
		if !errors.Is(err, errStore) {
			t.Fatalf("err = %v, want the store's error", err)
		}
	})
	t.Run("catching up fails after a conflict", func(t *testing.T) {
		r := newRig(t, service.LedgerConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		r.stream.beforeAppend = func(domain.PendingEvent) {
			r.stream.publishRaw(t, "crm", "other", "x", nil)
			cancel()
		}
		_, err := r.ledger.Execute(ctx, nightly("crm"), alice("k1"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("cancelled while backing off after a conflict", func(t *testing.T) {
		r := newRig(t, service.LedgerConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		var once sync.Once
		r.stream.beforeAppend = func(domain.PendingEvent) {
			once.Do(func() {
				r.stream.publishRaw(t, "crm", "other", "x", nil)
				// The catch-up after the conflict succeeds; then the
				// process stops.
				r.fold.afterWait = cancel
			})
		}
		_, err := r.ledger.Execute(ctx, nightly("crm"), alice("k1"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("projection does not apply the event", func(t *testing.T) {
		r := newRig(t, service.LedgerConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		r.stream.beforeAppend = func(domain.PendingEvent) { cancel() }
		_, err := r.ledger.Execute(ctx, nightly("crm"), alice("k1"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		// The event is stored; a retry with the same key answers it.
		r.stream.beforeAppend = nil
		res := r.must(t, nightly("crm"), alice("k1"))
		if !res.Duplicate || res.Seq != 1 || r.stream.len() != 1 {
			t.Fatalf("retry = %+v with %d events; want the stored command", res, r.stream.len())
		}
	})
}

func TestExecuteNotFoundSaysDeleted(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	b := r.must(t, nightly("crm"), alice("k0"))
	r.must(t, domain.DeleteBackup{App: "crm", BackupID: b.BackupID}, alice("k1"))
	_, err := r.exec(domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: "x"}, alice("k2"))
	wantCode(t, err, domain.CodeNotFound)
	if !strings.Contains(domain.Public(err), "was deleted") {
		t.Fatalf("message %q does not say the backup was deleted", domain.Public(err))
	}
	_, err = r.exec(domain.RenameBackup{App: "crm", BackupID: "never", Name: "x"}, alice("k3"))
	wantCode(t, err, domain.CodeNotFound)
	if strings.Contains(domain.Public(err), "deleted") {
		t.Fatalf("message %q for a backup that never existed", domain.Public(err))
	}
}

// TestExecuteKeyReusedForDeleteKeepsTheArchive is a regression test for a
// bug reported to the lead: a DeleteBackup whose idempotency key was used
// before for another command is answered with the first result (as decided
// in docs/decisions.md), but Execute still deletes the named backup's
// archive, although the backup stays ready in the ledger.
func TestExecuteKeyReusedForDeleteKeepsTheArchive(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	b := r.must(t, nightly("crm"), alice("k0"))
	res, err := r.exec(domain.DeleteBackup{App: "crm", BackupID: b.BackupID}, alice("k0"))
	if err != nil || !res.Duplicate || res.EventType != domain.TypeBackupRequested {
		t.Fatalf("delete with a reused key = %+v, %v; want the first result", res, err)
	}
	if _, ok := r.fold.backup(t, "crm", b.BackupID); !ok {
		t.Fatal("the backup was deleted")
	}
	if got := r.archives.deleted(); len(got) != 0 {
		t.Fatalf("archive of live backup deleted: %v", got)
	}
}

// refusingFold is a fold that checks what it folds and refuses the
// messages at the sequences given (as the projection refuses an event
// signed with a key retired too long ago).
type refusingFold struct {
	*fakeFold
	refuse map[uint64]bool
}

func (f *refusingFold) Refused(seq uint64) (string, bool) {
	if f.refuse[seq] {
		return domain.ReasonRetiredKey, true
	}
	return "", false
}

// An event of this process that the ledger's check refused is not a
// command that happened: Execute says so (unavailable, retry), and a
// delete whose event was refused leaves the archive.
func TestExecuteRefusedOwnEvent(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	b := r.must(t, domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"})
	f := &refusingFold{fakeFold: newFakeFold(r.stream, 10), refuse: map[uint64]bool{uint64(r.stream.len() + 1): true}}
	f.follow = true
	l, err := service.NewLedger(r.cfg, r.stream, f, r.clock, r.ids, r.archives, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Execute(context.Background(), domain.DeleteBackup{App: "crm", BackupID: b.BackupID}, domain.Meta{Actor: "alice"})
	if !errors.Is(err, domain.ErrRefused) || domain.Code(err) != domain.CodeUnavailable {
		t.Fatalf("delete whose event was refused: %v (code %s), want unavailable wrapping ErrRefused", err, domain.Code(err))
	}
	if got := r.archives.deleted(); len(got) != 0 {
		t.Errorf("archives deleted %v for a refused delete", got)
	}
}

// TestRecordUploadOfAnUnencodableTime is a regression test for an oddity
// reported to the lead: RecordUpload accepts an original creation time
// that JSON cannot encode (year outside 0–9999), so Execute fails with an
// internal error from encode instead of refusing the command.
func TestRecordUploadOfAnUnencodableTime(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	cmd := withArchive("up1", func(a *domain.ImportedArchive) { a.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })
	_, err := r.exec(cmd, alice("k1"))
	if err == nil {
		t.Fatal("an event that cannot be encoded was appended")
	}
	if r.stream.len() != 0 {
		t.Fatal("appended")
	}
	if domain.Code(err) == domain.CodeInternal {
		t.Fatal("fixed bug is back: domain/commands.go:268 (RecordUpload.decide): an original created_at outside years 0–9999 is accepted and fails encode as internal; refuse it (CodeArchiveInvalid or CodeInvalidArgument)")
	}
	if c := domain.Code(err); c != domain.CodeArchiveInvalid && c != domain.CodeInvalidArgument {
		t.Fatalf("code = %q, want archive_invalid or invalid_argument", c)
	}
}

// A retry of a command older than the latest the app keeps whole is
// answered from its event, read back from the stream: its first result,
// and key reuse is still told from a retry. Another process, whose fold
// came from the stream, answers the same.
func TestExecuteRetryOfAnOlderCommandIsRecalledFromTheStream(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	client := func(key string) domain.Meta { return domain.Meta{Actor: "alice", CommandID: key, ClientKey: true} }
	b := r.must(t, nightly("crm"), alice("k0"))
	rename := func(i int) domain.RenameBackup {
		return domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: fmt.Sprintf("name %d", i)}
	}
	first := r.must(t, rename(1), client("r1"))
	for i := 2; i <= 100; i++ {
		r.must(t, rename(i), client(fmt.Sprintf("r%d", i)))
	}
	var rec domain.CommandRecord
	r.fold.ReadApp("crm", func(a *domain.App) { rec, _ = a.Command(domain.CommandKey("alice", "r1")) })
	if !rec.Recall {
		t.Fatalf("the record of r1 is %+v; want one to recall (this test needs more commands)", rec)
	}
	p2 := r.newProc()
	p2.catchUp(t)
	n := r.stream.len()
	want := first
	want.Duplicate = true
	for name, p := range map[string]*proc{"first process": r.proc, "another process": p2} {
		again, err := p.exec(rename(1), client("r1"))
		if err != nil || again != want {
			t.Fatalf("%s: retry of r1 = %+v, %v; want %+v", name, again, err, want)
		}
		_, err = p.exec(rename(7), client("r1"))
		wantCode(t, err, domain.CodeIdempotencyKeyReused)
	}
	if got := r.stream.len(); got != n {
		t.Fatalf("retries appended: %d events, want %d", got, n)
	}
	// A store that cannot give the event back (a replica behind answers
	// not found) makes the retry unavailable and recorded, never not found.
	r.stream.mu.Lock()
	r.stream.messageErr = domain.Errorf(domain.CodeNotFound, "no message at that sequence")
	r.stream.mu.Unlock()
	_, err := r.proc.exec(rename(1), client("r1"))
	wantCode(t, err, domain.CodeUnavailable)
	if rec := domain.RecordedOf(err); rec != domain.RecordedYes {
		t.Errorf("recorded = %q, want %q", rec, domain.RecordedYes)
	}
}
