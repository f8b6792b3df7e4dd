package projections_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

// t0 is the reference time of the tests.
var t0 = time.Date(2026, 11, 21, 10, 15, 0, 0, time.UTC)

// released bounds how long a test waits for something that must happen; it
// is a failure bound, never a synchronisation.
const released = 10 * time.Second

// ledger feeds a Store as the stream would: consecutive sequences across
// apps, and per app a prev_hash chain over the raw bodies.
type ledger struct {
	t    *testing.T
	s    *projections.Store
	seq  uint64
	last map[string][]byte // app → body of its last event
}

// The Store is the fold the services decide against.
var (
	_ service.States          = (*projections.Store)(nil)
	_ service.Expecter        = (*projections.Store)(nil)
	_ service.RefusalReporter = (*projections.Store)(nil)
	_ service.DirectoryView   = (*projections.Store)(nil)
)

func newLedger(t *testing.T, rules domain.Rules) *ledger {
	t.Helper()
	return &ledger{t: t, s: projections.New(rules, projections.Options{}), last: map[string][]byte{}}
}

// body encodes ev (or, when ev is nil, typ with data) as the next event of
// app, chained to the app's previous event.
func (l *ledger) body(app, actor string, at time.Time, typ string, ev domain.Event, data string) []byte {
	l.t.Helper()
	raw := json.RawMessage(data)
	if ev != nil {
		typ = ev.EventType()
		b, err := json.Marshal(ev)
		if err != nil {
			l.t.Fatalf("marshal %s: %v", typ, err)
		}
		raw = b
	}
	prev := ""
	if b := l.last[app]; b != nil {
		prev = domain.HashEvent(b)
	}
	env := domain.Envelope{
		ID: fmt.Sprintf("ev%05d", l.seq+1), Type: typ, Version: 1, App: app, Time: at, Actor: actor,
		CommandID: fmt.Sprintf("cmd%05d", l.seq+1), PrevHash: prev, Data: raw,
	}
	b, err := json.Marshal(env)
	if err != nil {
		l.t.Fatalf("marshal envelope: %v", err)
	}
	return b
}

// apply appends body at the next sequence and returns that sequence.
func (l *ledger) apply(app string, body []byte) uint64 {
	l.seq++
	l.s.Apply(domain.StoredMessage{Seq: l.seq, Token: app, Body: body})
	l.last[app] = body
	return l.seq
}

// emit applies ev as the next event of app by actor at the given time.
func (l *ledger) emit(app, actor string, at time.Time, ev domain.Event) uint64 {
	l.t.Helper()
	return l.apply(app, l.body(app, actor, at, "", ev, ""))
}

// emitType applies an event of a type given by name with raw data.
func (l *ledger) emitType(app string, at time.Time, typ, data string) uint64 {
	l.t.Helper()
	return l.apply(app, l.body(app, "alice", at, typ, nil, data))
}

func requested(id string) *domain.BackupRequested {
	return &domain.BackupRequested{BackupID: id, Name: "name of " + id, Origin: domain.OriginManual, ExpiresAt: t0.Add(60 * 24 * time.Hour)}
}

func started(id string) *domain.BackupStarted {
	return &domain.BackupStarted{BackupID: id, Attempt: 1, Worker: "w1"}
}

func completed(id string) *domain.BackupCompleted {
	return &domain.BackupCompleted{BackupID: id, SizeBytes: 2048, SHA256: strings.Repeat("ab", 32), ItemCount: 7, SchemaVersion: 3}
}

func ids(vs []projections.BackupView) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.App + "/" + v.ID
	}
	return out
}

func events(es []projections.LogEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Event
	}
	return out
}

func TestBackupsSortedByCreatedAtThenSeq(t *testing.T) {
	l := newLedger(t, domain.DefaultRules())
	l.emit("crm", "alice", t0.Add(2*time.Minute), requested("b-late"))
	l.emit("crm", "alice", t0, requested("b-z-first")) // same time as the next: seq decides
	l.emit("hr", "bob", t0.Add(-time.Hour), requested("other-app"))
	l.emit("crm", "bob", t0, requested("b-a-second"))
	l.emit("crm", "alice", t0.Add(time.Minute), requested("b-middle"))

	got := ids(l.s.Backups("crm"))
	want := []string{"crm/b-z-first", "crm/b-a-second", "crm/b-middle", "crm/b-late"}
	if !slices.Equal(got, want) {
		t.Errorf("Backups(crm) = %v, want %v", got, want)
	}

	b := l.s.Backups("crm")[1]
	if b.Status != "queued" || b.Origin != "manual" || b.CreatedBy != "bob" || b.Name != "name of b-a-second" {
		t.Errorf("second backup = %+v, want queued manual by bob named %q", b, "name of b-a-second")
	}

	none := l.s.Backups("nobody")
	if none == nil || len(none) != 0 {
		t.Errorf("Backups(nobody) = %#v, want an empty non-nil list", none)
	}
	j, err := json.Marshal(projections.BackupList{Backups: none})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(j), `{"backups":[]}`; got != want {
		t.Errorf("empty list JSON = %s, want %s", got, want)
	}
}

func TestDeletedBackupLeavesListButKeepsLog(t *testing.T) {
	l := newLedger(t, domain.DefaultRules())
	l.emit("crm", "alice", t0, requested("b1"))
	l.emit("crm", "alice", t0.Add(time.Second), requested("b2"))
	l.emit("crm", "worker", t0.Add(2*time.Second), started("b1"))
	l.emit("crm", "worker", t0.Add(3*time.Second), completed("b1"))
	delSeq := l.emit("crm", "carol", t0.Add(time.Hour), &domain.BackupDeleted{BackupID: "b1"})

	if got, want := ids(l.s.Backups("crm")), []string{"crm/b2"}; !slices.Equal(got, want) {
		t.Errorf("Backups after delete = %v, want %v", got, want)
	}
	if _, err := l.s.Backup("crm", "b1"); domain.Code(err) != domain.CodeNotFound {
		t.Errorf("Backup(deleted) error = %v (code %q), want code %q", err, domain.Code(err), domain.CodeNotFound)
	}
	if _, err := l.s.Backup("crm", "b2"); err != nil {
		t.Errorf("Backup(live) = %v, want no error", err)
	}

	log, err := l.s.BackupLog(context.Background(), "crm", "b1")
	if err != nil {
		t.Fatalf("BackupLog(deleted) = %v, want its log", err)
	}
	want := []string{domain.TypeBackupRequested, domain.TypeBackupStarted, domain.TypeBackupCompleted, domain.TypeBackupDeleted}
	if got := events(log); !slices.Equal(got, want) {
		t.Errorf("BackupLog(deleted) events = %v, want %v", got, want)
	}
	last := log[len(log)-1]
	if last.Seq != delSeq || last.Actor != "carol" || last.BackupID != "b1" || last.Result != "ok" {
		t.Errorf("delete entry = %+v, want seq %d by carol for b1 with result ok", last, delSeq)
	}
	for _, e := range log {
		if e.BackupID != "b1" {
			t.Errorf("BackupLog(b1) has an entry of backup %q: %+v", e.BackupID, e)
		}
	}

	for _, tc := range []struct{ app, id string }{{"crm", "never"}, {"nobody", "b1"}, {"hr", "b2"}} {
		_, err := l.s.BackupLog(context.Background(), tc.app, tc.id)
		if got := domain.Code(err); got != domain.CodeNotFound {
			t.Errorf("BackupLog(%s, %s) error = %v (code %q), want code %q", tc.app, tc.id, err, got, domain.CodeNotFound)
		}
	}

	if got := len(appLogOf(t, l.s, "crm")); got != 5 {
		t.Errorf("AppLog has %d entries after the delete, want all 5", got)
	}
}

func TestAppViewCountsAndTimes(t *testing.T) {
	rules := domain.DefaultRules()
	rules.MaxBackups = 7
	l := newLedger(t, rules)
	berlin := time.FixedZone("CET", 3600)

	l.emit("crm", "alice", t0, requested("queued"))
	l.emit("crm", "alice", t0, requested("running"))
	l.emit("crm", "alice", t0, requested("ready"))
	l.emit("crm", "alice", t0, requested("failed"))
	l.emit("crm", "alice", t0, requested("deleted"))
	l.emit("crm", "w", t0, started("running"))
	l.emit("crm", "w", t0, started("ready"))
	readyAt := time.Date(2026, 11, 21, 12, 30, 0, 0, berlin)
	l.emit("crm", "w", readyAt, completed("ready"))
	l.emit("crm", "w", t0, &domain.BackupFailed{BackupID: "failed", Reason: "disk full"})
	l.emit("crm", "bob", t0, &domain.BackupDeleted{BackupID: "deleted"})
	crmLast := l.emit("crm", "bob", t0, &domain.BackupRenamed{BackupID: "queued", Name: "n", PreviousName: "name of queued"})
	l.emit("hr", "bob", t0, requested("x")) // another app's later event

	v := l.s.App("crm")
	want := map[string]int{"queued": 1, "running": 1, "ready": 1, "failed": 1}
	if !mapsEqual(v.ByStatus, want) {
		t.Errorf("ByStatus = %v, want %v", v.ByStatus, want)
	}
	if v.App != "crm" || v.BackupCount != 4 || v.QuotaUsed != 3 || v.QuotaLimit != 7 {
		t.Errorf("App(crm) = app %q count %d quota %d/%d, want crm 4 3/7", v.App, v.BackupCount, v.QuotaUsed, v.QuotaLimit)
	}
	if v.LastSeq != crmLast || v.Events != 11 {
		t.Errorf("App(crm) last_seq %d events %d, want %d and 11", v.LastSeq, v.Events, crmLast)
	}
	if v.LastBackupAt == nil || !v.LastBackupAt.Equal(readyAt) || v.LastBackupAt.Location() != time.UTC {
		t.Errorf("LastBackupAt = %v, want %v in UTC", v.LastBackupAt, readyAt.UTC())
	}

	empty := l.s.App("nobody")
	wantEmpty := map[string]int{"queued": 0, "running": 0, "ready": 0, "failed": 0}
	if empty.App != "nobody" || empty.BackupCount != 0 || empty.QuotaUsed != 0 || empty.QuotaLimit != 7 ||
		empty.LastBackupAt != nil || empty.LastSeq != 0 || empty.Events != 0 || !mapsEqual(empty.ByStatus, wantEmpty) {
		t.Errorf("App(nobody) = %+v, want an empty state with limit 7", empty)
	}
	if l.s.App("hr").LastBackupAt != nil {
		t.Errorf("App(hr).LastBackupAt is set, but no backup of hr became ready")
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if got, ok := a[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func TestAllBackupsVisibleAndSorted(t *testing.T) {
	l := newLedger(t, domain.DefaultRules())
	l.emit("crm", "alice", t0.Add(3*time.Minute), requested("c3"))
	l.emit("hr", "alice", t0.Add(time.Minute), requested("h1"))
	l.emit("secret", "alice", t0, requested("s0"))
	l.emit("crm", "alice", t0.Add(2*time.Minute), requested("c2"))
	l.emit("hr", "alice", t0.Add(4*time.Minute), requested("h4"))
	// Same creation time in two apps; the ids sort like their sequences.
	l.emit("hr", "alice", t0.Add(5*time.Minute), requested("t1"))
	l.emit("crm", "alice", t0.Add(5*time.Minute), requested("t2"))
	l.emit("crm", "alice", t0, &domain.BackupDeleted{BackupID: "c3"})

	visible := func(app string) bool { return app != "secret" }
	got := ids(l.s.AllBackups(visible))
	want := []string{"hr/h1", "crm/c2", "hr/h4", "hr/t1", "crm/t2"}
	if !slices.Equal(got, want) {
		t.Errorf("AllBackups(not secret) = %v, want %v", got, want)
	}

	got = ids(l.s.AllBackups(nil))
	want = append([]string{"secret/s0"}, want...)
	if !slices.Equal(got, want) {
		t.Errorf("AllBackups(nil) = %v, want %v", got, want)
	}

	none := l.s.AllBackups(func(string) bool { return false })
	if none == nil || len(none) != 0 {
		t.Errorf("AllBackups(none visible) = %#v, want an empty non-nil list", none)
	}
	if got, want := l.s.Apps(), []string{"crm", "hr", "secret"}; !slices.Equal(got, want) {
		t.Errorf("Apps() = %v, want %v", got, want)
	}
}

func TestAppLogEntries(t *testing.T) {
	l := newLedger(t, domain.DefaultRules())
	at := time.Date(2026, 11, 21, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	s1 := l.emit("crm", "alice", at, &domain.BackupRequested{BackupID: "b1", Name: "before upgrade", Origin: domain.OriginManual})
	l.emit("hr", "bob", at, requested("other"))
	s2 := l.emit("crm", "worker-7", at.Add(time.Second), &domain.BackupStarted{BackupID: "b1", Attempt: 2, Worker: "worker-7"})
	s3 := l.emit("crm", "worker-7", at.Add(2*time.Second), &domain.BackupFailed{BackupID: "b1", Reason: "source unreachable"})
	s4 := l.emit("crm", "alice", at.Add(3*time.Second), &domain.BackupRenamed{BackupID: "b1", Name: "new", PreviousName: "before upgrade"})

	got := appLogOf(t, l.s, "crm")
	type want struct {
		seq     uint64
		actor   string
		event   string
		result  string
		message []string // substrings
	}
	wants := []want{
		{s1, "alice", domain.TypeBackupRequested, "ok", []string{"before upgrade", "manual"}},
		{s2, "worker-7", domain.TypeBackupStarted, "ok", []string{"worker-7", "2"}},
		{s3, "worker-7", domain.TypeBackupFailed, "failed", []string{"source unreachable"}},
		{s4, "alice", domain.TypeBackupRenamed, "ok", []string{"before upgrade", "new"}},
	}
	if len(got) != len(wants) {
		t.Fatalf("AppLog(crm) has %d entries, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		e := got[i]
		if e.Seq != w.seq || e.Actor != w.actor || e.Event != w.event || e.Result != w.result || e.BackupID != "b1" {
			t.Errorf("entry %d = %+v, want seq %d actor %s event %s result %s backup b1", i, e, w.seq, w.actor, w.event, w.result)
		}
		for _, sub := range w.message {
			if !strings.Contains(e.Message, sub) {
				t.Errorf("entry %d message %q does not contain %q", i, e.Message, sub)
			}
		}
		if wantT := at.Add(time.Duration(i) * time.Second); !e.Time.Equal(wantT) || e.Time.Location() != time.UTC {
			t.Errorf("entry %d time = %v, want %v in UTC", i, e.Time, wantT.UTC())
		}
	}

	j, err := json.Marshal(projections.LogList{Entries: got[2:3]})
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Entries []map[string]any `json:"entries"`
	}
	if err := json.Unmarshal(j, &decoded); err != nil {
		t.Fatal(err)
	}
	e := decoded.Entries[0]
	for _, k := range []string{"seq", "time", "actor", "event", "backup_id", "message", "result"} {
		if _, ok := e[k]; !ok {
			t.Errorf("log entry JSON %s lacks %q", j, k)
		}
	}
	if ts, _ := e["time"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("log entry time %q does not end in Z", ts)
	}

	// The returned log is a copy.
	got[0].Actor = "mallory"
	if a := appLogOf(t, l.s, "crm")[0].Actor; a != "alice" {
		t.Errorf("changing a returned entry changed the store: actor %q", a)
	}

	if empty := appLogOf(t, l.s, "nobody"); empty == nil || len(empty) != 0 {
		t.Errorf("AppLog(nobody) = %#v, want an empty non-nil list", empty)
	}
}

func TestUndecodableMessageIsFoldedAsOpaque(t *testing.T) {
	var buf bytes.Buffer
	s := projections.New(domain.DefaultRules(), projections.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})

	otherApp, err := json.Marshal(domain.Envelope{Type: domain.TypeBackupRequested, Version: 1, App: "billing", Time: t0, Data: json.RawMessage(`{"backup_id":"b1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	bodies := [][]byte{
		[]byte("\x00\xffnot json"),
		[]byte(`[1,2,3]`),
		otherApp, // on crm's subject, but names billing
		[]byte(`{"type":"backup.requested","data":{"backup_id":"b1"}}`), // no app
	}
	for i, b := range bodies {
		seq := uint64(i + 1)
		s.Apply(domain.StoredMessage{Seq: seq, Token: "crm", Body: b})
		if got := s.Applied(); got != seq {
			t.Errorf("after message %d: Applied() = %d, want %d", seq, got, seq)
		}
	}
	// The subject is authoritative: crm's sequence and chain advance (the
	// next append to crm expects seq 4), yet no backup appears anywhere.
	v := s.App("crm")
	if v.LastSeq != 4 || v.Events != 4 || v.BackupCount != 0 {
		t.Errorf("App(crm) = %+v, want last_seq 4, 4 events, no backups", v)
	}
	var hash string
	s.ReadApp("crm", func(a *domain.App) { hash = a.LastHash() })
	if want := domain.HashEvent(bodies[3]); hash != want {
		t.Errorf("LastHash = %s, want the hash of the last body %s", hash, want)
	}
	if apps := s.Apps(); !slices.Equal(apps, []string{"crm"}) {
		t.Errorf("Apps() = %v, want [crm] (billing is only named in a body)", apps)
	}
	for _, e := range appLogOf(t, s, "crm") {
		if e.Event != projections.TypeUndecodable || e.Result != "failed" {
			t.Errorf("log entry %+v, want event %s with result failed", e, projections.TypeUndecodable)
		}
	}
	if !strings.Contains(buf.String(), "seq=1") || !strings.Contains(buf.String(), "seq=3") {
		t.Errorf("opaque messages are not logged with their seq:\n%s", buf.String())
	}

	// A message on a subject that names no valid app is skipped, but the
	// applied sequence still advances.
	s.Apply(domain.StoredMessage{Seq: 5, Token: "Not.An.App", Body: []byte(`{}`)})
	if got := s.Applied(); got != 5 {
		t.Errorf("Applied() = %d after a message without an app, want 5", got)
	}
	if apps := s.Apps(); len(apps) != 1 {
		t.Errorf("Apps() = %v, want only crm", apps)
	}

	// A valid event after them is applied normally.
	l := &ledger{t: t, s: s, seq: 5, last: map[string][]byte{"crm": bodies[3]}}
	seq := l.emit("crm", "alice", t0, requested("b1"))
	if got := ids(s.Backups("crm")); !slices.Equal(got, []string{"crm/b1"}) {
		t.Errorf("Backups(crm) = %v, want [crm/b1]", got)
	}
	if got := s.App("crm").LastSeq; got != seq {
		t.Errorf("App(crm).LastSeq = %d, want %d", got, seq)
	}
}

func TestUnknownEventTypeIsFolded(t *testing.T) {
	l := newLedger(t, domain.DefaultRules())
	l.emit("crm", "alice", t0, requested("b1"))
	// (A type of a later version of the service.)
	unknown := l.emitType("crm", t0.Add(time.Minute), "test.from_the_future", `{"restore_id":"r1","backup_id":"b1"}`)
	// A known type whose data does not decode is folded the same way.
	broken := l.emitType("crm", t0.Add(2*time.Minute), domain.TypeBackupStarted, `"not an object"`)

	v := l.s.App("crm")
	if v.LastSeq != broken || v.Events != 3 {
		t.Errorf("App(crm) last_seq %d events %d, want %d and 3", v.LastSeq, v.Events, broken)
	}
	log := appLogOf(t, l.s, "crm")
	if got, want := events(log), []string{domain.TypeBackupRequested, "test.from_the_future", domain.TypeBackupStarted}; !slices.Equal(got, want) {
		t.Fatalf("AppLog events = %v, want %v", got, want)
	}
	e := log[1]
	if e.Seq != unknown || e.Actor != "alice" || e.BackupID != "" || !strings.Contains(e.Message, "test.from_the_future") {
		t.Errorf("unknown event entry = %+v, want seq %d by alice, no backup id, message naming the type", e, unknown)
	}
	if b, err := l.s.Backup("crm", "b1"); err != nil || b.Status != "queued" {
		t.Errorf("Backup(b1) = %+v, %v; want it still queued", b, err)
	}
	var hash string
	l.s.ReadApp("crm", func(a *domain.App) { hash = a.LastHash() })
	if want := domain.HashEvent(l.last["crm"]); hash != want {
		t.Errorf("LastHash after an opaque event = %s, want %s", hash, want)
	}
}

func TestReadAppOfUnknownAppIsEmpty(t *testing.T) {
	l := newLedger(t, domain.DefaultRules())
	l.emit("crm", "alice", t0, requested("b1"))

	calls := 0
	l.s.ReadApp("new-app", func(a *domain.App) {
		calls++
		if a.ID() != "new-app" || a.Seq() != 0 || a.LastHash() != "" || a.Events() != 0 || len(a.Backups()) != 0 || a.Quota() != 0 {
			t.Errorf("ReadApp(new-app) state: id %q seq %d hash %q events %d backups %d quota %d; want empty",
				a.ID(), a.Seq(), a.LastHash(), a.Events(), len(a.Backups()), a.Quota())
		}
	})
	if calls != 1 {
		t.Errorf("ReadApp called fn %d times, want 1", calls)
	}
	if got := l.s.Apps(); !slices.Equal(got, []string{"crm"}) {
		t.Errorf("Apps() after reading an unknown app = %v, want [crm]", got)
	}

	l.s.ReadApp("crm", func(a *domain.App) {
		if _, ok := a.Backup("b1"); !ok || a.Seq() != 1 {
			t.Errorf("ReadApp(crm): seq %d, has b1 %v; want 1, true", a.Seq(), ok)
		}
	})
}

func TestReadAppHashChain(t *testing.T) {
	l := newLedger(t, domain.DefaultRules())
	hash := func(app string) string {
		var h string
		l.s.ReadApp(app, func(a *domain.App) { h = a.LastHash() })
		return h
	}
	steps := []struct {
		app string
		ev  domain.Event
	}{
		{"crm", requested("b1")},
		{"hr", requested("h1")},
		{"crm", started("b1")},
		{"crm", nil}, // an unknown type
		{"hr", &domain.BackupDeleted{BackupID: "h1"}},
		{"crm", completed("b1")},
	}
	for i, st := range steps {
		// The next event's prev_hash is what the state says, as a
		// deciding command would use it.
		prev := hash(st.app)
		var body []byte
		if st.ev == nil {
			body = l.body(st.app, "alice", t0, "test.unknown", nil, `{}`)
		} else {
			body = l.body(st.app, "alice", t0, "", st.ev, "")
		}
		var env domain.Envelope
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatal(err)
		}
		if env.PrevHash != prev {
			t.Fatalf("step %d: the state's LastHash %q is not the chain's prev_hash %q", i, prev, env.PrevHash)
		}
		l.apply(st.app, body)
		if got, want := hash(st.app), domain.HashEvent(body); got != want {
			t.Errorf("step %d: LastHash(%s) = %s, want HashEvent of its last body %s", i, st.app, got, want)
		}
	}
	if hash("crm") == hash("hr") {
		t.Error("two apps share one hash chain")
	}
}

func TestConcurrentReadsDuringApply(t *testing.T) {
	l := newLedger(t, domain.DefaultRules())
	const n = 300
	bodies := make([][]byte, n)
	for i := range n {
		id := fmt.Sprintf("b%03d", i)
		app := []string{"crm", "hr"}[i%2]
		bodies[i] = l.body(app, "alice", t0.Add(time.Duration(i)*time.Second), "", requested(id), "")
		l.last[app] = bodies[i]
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = l.s.Backups("crm")
				_ = l.s.AllBackups(nil)
				_ = l.s.App("hr")
				_ = appLogOf(t, l.s, "crm")
				_, _ = l.s.BackupLog(context.Background(), "hr", "b001")
				l.s.ReadApp("crm", func(a *domain.App) { _ = a.Backups() })
			}
		})
	}
	for i, b := range bodies {
		l.s.Apply(domain.StoredMessage{Seq: uint64(i + 1), Token: []string{"crm", "hr"}[i%2], Body: b})
	}
	close(stop)
	wg.Wait()

	if got := len(l.s.AllBackups(nil)); got != n {
		t.Errorf("AllBackups has %d backups, want %d", got, n)
	}
	if got := l.s.Applied(); got != n {
		t.Errorf("Applied() = %d, want %d", got, n)
	}
}

// TestExpectedEventsFoldLikeDecodedOnes feeds the same events to a store
// that is told about them beforehand (as the ledger of this process does)
// and to one that decodes them, and compares what both show.
func TestExpectedEventsFoldLikeDecodedOnes(t *testing.T) {
	l := newLedger(t, domain.DefaultRules())
	told := projections.New(domain.DefaultRules(), projections.Options{})
	var _ service.Expecter = told

	cet := time.FixedZone("CET", 3600)
	steps := []struct {
		app    string
		at     time.Time
		ev     domain.Event
		expect bool // announce it
		revoke bool // announce it, then withdraw the announcement
	}{
		{"crm", t0, requested("b1"), true, false},
		{"crm", t0.Add(time.Second), requested("b2"), false, false},
		{"hr", t0.In(cet), requested("h1"), true, false},
		{"crm", t0.Add(2 * time.Second), started("b1"), true, false},
		{"crm", t0.Add(3 * time.Second).In(cet), completed("b1"), false, true},
		{"crm", t0.Add(4 * time.Second), &domain.BackupFailed{BackupID: "b2", Reason: "boom"}, true, false},
		{"hr", t0.Add(5 * time.Second), &domain.BackupDeleted{BackupID: "h1"}, true, false},
	}
	for _, st := range steps {
		body := l.body(st.app, "alice", st.at, "", st.ev, "")
		if st.expect || st.revoke {
			var env domain.Envelope
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatal(err)
			}
			ev, err := domain.DecodeEvent(&env)
			if err != nil {
				t.Fatal(err)
			}
			told.Expect(domain.HashEvent(body), &env, ev)
			if st.revoke {
				told.Unexpect(domain.HashEvent(body))
			}
		}
		seq := l.apply(st.app, body)
		told.Apply(domain.StoredMessage{Seq: seq, Token: st.app, Body: body})
	}

	for _, app := range []string{"crm", "hr"} {
		if got, want := told.Backups(app), l.s.Backups(app); !reflect.DeepEqual(got, want) {
			t.Errorf("Backups(%s): told %+v, decoded %+v", app, got, want)
		}
		if got, want := told.App(app), l.s.App(app); !reflect.DeepEqual(got, want) {
			t.Errorf("App(%s): told %+v, decoded %+v", app, got, want)
		}
		if got, want := appLogOf(t, told, app), appLogOf(t, l.s, app); !reflect.DeepEqual(got, want) {
			t.Errorf("AppLog(%s): told %+v, decoded %+v", app, got, want)
		}
		var h1, h2 string
		told.ReadApp(app, func(a *domain.App) { h1 = a.LastHash() })
		l.s.ReadApp(app, func(a *domain.App) { h2 = a.LastHash() })
		if h1 != h2 || h1 != domain.HashEvent(l.last[app]) {
			t.Errorf("LastHash(%s): told %s, decoded %s, want %s", app, h1, h2, domain.HashEvent(l.last[app]))
		}
	}
	if b, err := told.Backup("crm", "b1"); err != nil || b.Status != "ready" {
		t.Errorf("Backup(b1) = %+v, %v; want ready (its announcement was withdrawn, so it was decoded)", b, err)
	}
	if got, want := told.Applied(), l.s.Applied(); got != want {
		t.Errorf("Applied: told %d, decoded %d", got, want)
	}
}

func TestBackupViewJSON(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	created := time.Date(2026, 11, 21, 11, 15, 0, 0, cet)
	queued := domain.Backup{
		ID: "01JDQ0000000000000000000AA", App: "crm", Name: "nightly", Status: domain.StatusQueued,
		Origin: domain.OriginNightly, CreatedBy: "alice", CreatedAt: created, ExpiresAt: created.Add(60 * 24 * time.Hour),
	}
	m := marshalView(t, queued)

	keys := []string{"id", "app", "name", "description", "status", "origin", "created_by", "created_at",
		"completed_at", "expires_at", "schema_version", "size_bytes", "sha256", "item_count", "error",
		"corrupt_at", "corrupt_reason", "verified_at"} // DESIGN §7's fields, then integrity (issues 3 and 6)
	if len(m) != len(keys) {
		t.Errorf("backup JSON has %d fields, want %d: %v", len(m), len(keys), m)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("backup JSON lacks %q", k)
		}
	}
	for _, k := range []string{"completed_at", "sha256", "error", "corrupt_at", "corrupt_reason"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("queued backup %s = %#v, want null", k, v)
		}
	}
	for k, want := range map[string]time.Time{"created_at": created, "expires_at": queued.ExpiresAt} {
		s, _ := m[k].(string)
		if !strings.HasSuffix(s, "Z") {
			t.Errorf("%s = %q, want RFC 3339 UTC ending in Z", k, s)
		}
		got, err := time.Parse(time.RFC3339, s)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s = %q (%v), want %s", k, s, err, want.UTC().Format(time.RFC3339))
		}
	}
	if m["status"] != "queued" || m["origin"] != "nightly" || m["created_by"] != "alice" {
		t.Errorf("backup JSON = %v, want status queued, origin nightly, created_by alice", m)
	}

	ready := queued
	ready.Status = domain.StatusReady
	ready.CompletedAt = created.Add(time.Minute)
	ready.SHA256 = strings.Repeat("0f", 32)
	ready.SizeBytes = 42
	m = marshalView(t, ready)
	if s, _ := m["completed_at"].(string); s != "2026-11-21T10:16:00Z" {
		t.Errorf("ready completed_at = %#v, want 2026-11-21T10:16:00Z", m["completed_at"])
	}
	if m["sha256"] != ready.SHA256 || m["error"] != nil || m["size_bytes"] != float64(42) {
		t.Errorf("ready backup sha256 %#v error %#v size %#v, want the digest, null, 42", m["sha256"], m["error"], m["size_bytes"])
	}

	failed := queued
	failed.Status = domain.StatusFailed
	failed.CompletedAt = created
	failed.Error = "disk full"
	if m = marshalView(t, failed); m["error"] != "disk full" || m["sha256"] != nil {
		t.Errorf("failed backup error %#v sha256 %#v, want \"disk full\" and null", m["error"], m["sha256"])
	}
}

func marshalView(t *testing.T, b domain.Backup) map[string]any {
	t.Helper()
	j, err := json.Marshal(projections.NewBackupView(b))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// appLogOf returns the log of app in s, which must not fail.
func appLogOf(t *testing.T, s *projections.Store, app string) []projections.LogEntry {
	t.Helper()
	entries, err := s.AppLog(context.Background(), app)
	if err != nil {
		t.Fatalf("AppLog(%s): %v", app, err)
	}
	return entries
}
