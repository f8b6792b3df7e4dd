package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/memstore"
)

// This file holds in-memory fakes of the ports the domain declares, for pure
// unit tests of the services. The real adapters are
// tested against JetStream in their own packages.

// storedMsg is one message of the fake stream.
type storedMsg struct {
	seq   uint64
	app   string
	typ   string
	msgID string
	body  []byte
}

// fakeStream is the module's one in-memory event store (memstore.Store,
// which keeps the contract of a single JetStream server: see
// test/storetest) with the knobs of these tests: it records every Append
// call, runs hooks before them and can fail them, and can fail LastSeq.
type fakeStream struct {
	*memstore.Store

	mu      sync.Mutex
	appends []domain.PendingEvent // every Append call, accepted or not
	// beforeAppend, if set, runs at the start of every Append, while the
	// append is in flight: a test appends concurrent events from it, and
	// a context it cancels no longer stops the append.
	beforeAppend func(ev domain.PendingEvent)
	// failAppend, if set, may refuse an append with an error.
	failAppend  func(ev domain.PendingEvent) error
	lastSeqErr  error
	lastSeqCall int
	// messageErr, if set, is the answer of every Message.
	messageErr error
}

var _ service.EventStore = (*fakeStream)(nil)

func newFakeStream() *fakeStream {
	return &fakeStream{Store: memstore.New(memstore.Config{})}
}

func (s *fakeStream) Append(ctx context.Context, ev domain.PendingEvent) (domain.AppendResult, error) {
	s.mu.Lock()
	s.appends = append(s.appends, ev)
	hook, fail := s.beforeAppend, s.failAppend
	s.mu.Unlock()
	if hook != nil {
		if ctx.Err() == nil {
			ctx = context.WithoutCancel(ctx) // sent already
		}
		hook(ev)
	}
	if fail != nil {
		if err := fail(ev); err != nil {
			return domain.AppendResult{}, err
		}
	}
	return s.Store.Append(ctx, ev)
}

func (s *fakeStream) Message(ctx context.Context, seq uint64) (domain.StoredMessage, error) {
	s.mu.Lock()
	err := s.messageErr
	s.mu.Unlock()
	if err != nil {
		return domain.StoredMessage{}, err
	}
	return s.Store.Message(ctx, seq)
}

func (s *fakeStream) LastSeq(ctx context.Context, app string) (uint64, error) {
	s.mu.Lock()
	s.lastSeqCall++
	err := s.lastSeqErr
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return s.Store.LastSeq(ctx, app)
}

// publishRaw appends an event of app without any check, as another writer
// would: ev nil writes an event of a type this process does not know.
func (s *fakeStream) publishRaw(t testing.TB, app, actor, commandID string, ev domain.Event) uint64 {
	t.Helper()
	env, _ := envelope(t, app, t0, actor, commandID, ev)
	if msgs := s.Messages(); len(msgs) > 0 {
		env.PrevHash = domain.HashEvent(msgs[len(msgs)-1].Body)
	}
	body, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return s.Publish(memstore.Message{StoredMessage: domain.StoredMessage{Token: app, Body: body},
		MsgID: app + "|" + commandID + "|" + actor, Type: env.Type})
}

// snapshot returns a copy of the stored messages.
func (s *fakeStream) snapshot() []storedMsg {
	var out []storedMsg
	for _, m := range s.Messages() {
		out = append(out, storedMsg{seq: m.Seq, app: m.Token, typ: m.Type, msgID: m.MsgID, body: m.Body})
	}
	return out
}

func (s *fakeStream) len() int { return s.Len() }

func (s *fakeStream) appendCalls() []domain.PendingEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.appends)
}

// envelopes decodes the stored messages of app.
func (s *fakeStream) envelopes(t testing.TB, app string) []domain.Envelope {
	t.Helper()
	var out []domain.Envelope
	for _, m := range s.snapshot() {
		if m.app != app {
			continue
		}
		var env domain.Envelope
		if err := json.Unmarshal(m.body, &env); err != nil {
			t.Fatalf("stored message %d is not an envelope: %v", m.seq, err)
		}
		out = append(out, env)
	}
	return out
}

// types returns the event types stored for app, in order.
func (s *fakeStream) types(app string) []string {
	var out []string
	for _, m := range s.snapshot() {
		if m.app == app {
			out = append(out, m.typ)
		}
	}
	return out
}

// fakeFold is the States of one process: the fold of the fake stream into
// one App per app. Like the real projection it lags behind the stream: it
// applies messages only in WaitApplied (all it can get), unless follow is
// set, in which case every ReadApp catches up first.
type fakeFold struct {
	mu      sync.Mutex
	stream  *fakeStream
	memory  int
	follow  bool
	apps    map[string]*domain.App
	applied uint64
	waits   []uint64
	// readHook, if set, runs at the start of every ReadApp.
	readHook func()
	// afterWait, if set, runs after every successful WaitApplied.
	afterWait func()
}

var _ service.States = (*fakeFold)(nil)

// Expect implements service.States: the fake fold takes no hint, it
// decodes every message (expectingFold records them).
func (f *fakeFold) Expect(string, *domain.Envelope, domain.Event) {}

// Unexpect implements service.States.
func (f *fakeFold) Unexpect(string) {}

func newFakeFold(s *fakeStream, memory int) *fakeFold {
	return &fakeFold{stream: s, memory: memory, apps: map[string]*domain.App{}}
}

func (f *fakeFold) catchUpLocked() {
	for _, m := range f.stream.snapshot()[f.applied:] {
		var env domain.Envelope
		if err := json.Unmarshal(m.body, &env); err != nil {
			panic(fmt.Sprintf("fake fold: message %d: %v", m.seq, err))
		}
		a := f.apps[env.App]
		if a == nil {
			a = domain.NewApp(env.App, f.memory)
			f.apps[env.App] = a
		}
		ev, err := domain.DecodeEvent(&env)
		if err != nil {
			ev = nil // an event type this process does not know
		}
		a.Apply(m.seq, domain.HashEvent(m.body), &env, ev)
		f.applied = m.seq
	}
}

func (f *fakeFold) ReadApp(app string, fn func(a *domain.App)) {
	if f.readHook != nil {
		f.readHook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.follow {
		f.catchUpLocked()
	}
	if a := f.apps[app]; a != nil {
		fn(a)
		return
	}
	fn(domain.NewApp(app, f.memory))
}

func (f *fakeFold) WaitApplied(ctx context.Context, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wait for seq %d: %w", seq, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waits = append(f.waits, seq)
	f.catchUpLocked()
	if f.applied < seq {
		return fmt.Errorf("fake fold: seq %d is beyond the stream (applied %d)", seq, f.applied)
	}
	if f.afterWait != nil {
		f.afterWait()
	}
	return nil
}

// backup returns a live backup of app as the fold knows it after catching up.
func (f *fakeFold) backup(t testing.TB, app, id string) (domain.Backup, bool) {
	t.Helper()
	if err := f.WaitApplied(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	var (
		b  domain.Backup
		ok bool
	)
	f.ReadApp(app, func(a *domain.App) { b, ok = a.Backup(id) })
	return b, ok
}

// fakeArchives is an ArchiveStore in memory. WriteArchive reads every item
// the export emits and stores the bytes as the archive once the export is
// done; its SHA-256 and size are the archive's.
type fakeArchives struct {
	mu      sync.Mutex
	objects map[string][]byte
	headers []domain.ArchiveHeader
	deletes []string
	// duringWrite, if set, runs after the export and before the archive is
	// stored (the archive is being written).
	duringWrite func(ctx context.Context, h domain.ArchiveHeader)
	writeErr    error
	deleteErr   error
}

var _ service.ArchiveStore = (*fakeArchives)(nil)

func newFakeArchives() *fakeArchives { return &fakeArchives{objects: map[string][]byte{}} }

func (s *fakeArchives) WriteArchive(ctx context.Context, h domain.ArchiveHeader, export func(emit func(domain.Item) error) error) (domain.ArchiveInfo, error) {
	s.mu.Lock()
	s.headers = append(s.headers, h)
	hook, werr := s.duringWrite, s.writeErr
	s.mu.Unlock()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "archive of %s/%s\n", h.App, h.BackupID)
	items := 0
	err := export(func(it domain.Item) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		fmt.Fprintf(&buf, "%s %d\n", it.Path, it.Size)
		if _, err := io.Copy(&buf, it.Body); err != nil {
			return err
		}
		items++
		return nil
	})
	if err != nil {
		return domain.ArchiveInfo{}, fmt.Errorf("write archive %s: %w", h.BackupID, err)
	}
	if hook != nil {
		hook(ctx, h)
	}
	if werr != nil {
		return domain.ArchiveInfo{}, werr
	}
	sum := sha256.Sum256(buf.Bytes())
	s.mu.Lock()
	s.objects[h.BackupID] = buf.Bytes()
	s.mu.Unlock()
	return domain.ArchiveInfo{SizeBytes: int64(buf.Len()), SHA256: hex.EncodeToString(sum[:]), ItemCount: items}, nil
}

func (s *fakeArchives) DeleteArchive(_ context.Context, backupID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletes = append(s.deletes, backupID)
	if s.deleteErr != nil {
		return s.deleteErr
	}
	delete(s.objects, backupID)
	return nil
}

func (s *fakeArchives) object(id string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[id]
	return b, ok
}

func (s *fakeArchives) deleted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deletes)
}

func (s *fakeArchives) writes() []domain.ArchiveHeader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.headers)
}

// fakeSource exports fixed documents; err, if set, is returned after the
// first item; onExport, if set, replaces the export. Its kind, schema
// version and components are "fake", 7 and [config] unless set.
type fakeSource struct {
	docs     map[string]string
	err      error
	onExport func(ctx context.Context, emit func(domain.Item) error) error

	kind       string
	schema     int
	components []string
}

var _ service.Source = (*fakeSource)(nil)

func (s *fakeSource) Kind() string {
	if s.kind != "" {
		return s.kind
	}
	return "fake"
}

func (s *fakeSource) SchemaVersion() int {
	if s.schema != 0 {
		return s.schema
	}
	return 7
}

func (s *fakeSource) Components() []string {
	if s.components != nil {
		return s.components
	}
	return []string{domain.ComponentConfig}
}

func (s *fakeSource) Export(ctx context.Context, _ string, emit func(domain.Item) error) error {
	if s.onExport != nil {
		return s.onExport(ctx, emit)
	}
	keys := make([]string, 0, len(s.docs))
	for k := range s.docs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		v := s.docs[k]
		if err := emit(domain.Item{Path: k, Size: int64(len(v)), Body: bytes.NewReader([]byte(v))}); err != nil {
			return err
		}
		if i == 0 && s.err != nil {
			return s.err
		}
	}
	return nil
}

// errStore is a failure of the store that is not a conflict.
var errStore = errors.New("store is down")

// errMismatch is what a stored archive's reader fails with when its bytes
// do not match the ledger.
var errMismatch = fmt.Errorf("sha256 mismatch: %w", domain.ErrArchiveCorrupt)

// importCall is one ImportArchive or ImportStaged call.
type importCall struct {
	backupID string
	body     string // what ImportArchive read
	staged   string // the object ImportStaged was given
}

// openCall is one OpenArchive or StageDownload call.
type openCall struct {
	backupID  string
	size      int64
	sha256    string
	component string
}

// fakeTransfer is an ArchiveTransfer in memory that records its calls.
// Imports answer imported (or importErr); opened streams yield content and,
// if failAt >= 0, fail with readErr (errMismatch unless set) once failAt
// bytes were read, and on every Read after.
type fakeTransfer struct {
	mu      sync.Mutex
	imports []importCall
	opens   []openCall
	stages  []openCall
	deletes []string

	imported  domain.ImportedArchive
	importErr error
	// onImport, if set, runs inside every import, after the body was read
	// (the archive is being validated and stored).
	onImport  func(backupID string)
	content   string
	failAt    int
	readErr   error
	openErr   error
	staged    domain.StagedArchive
	stageErr  error
	deleteErr error
}

var _ service.ArchiveTransfer = (*fakeTransfer)(nil)

func newFakeTransfer() *fakeTransfer {
	return &fakeTransfer{
		imported: imported(),
		content:  "PK zip bytes",
		failAt:   -1,
		staged:   domain.StagedArchive{Bucket: "ledger_staging", Object: "dl/x", Size: 12, SHA256: sha64, ExpiresAt: t0.Add(time.Hour)},
	}
}

func (f *fakeTransfer) importing(c importCall) (domain.ImportedArchive, error) {
	f.mu.Lock()
	f.imports = append(f.imports, c)
	hook, imp, err := f.onImport, f.imported, f.importErr
	f.mu.Unlock()
	if hook != nil {
		hook(c.backupID)
	}
	if err != nil {
		return domain.ImportedArchive{}, err
	}
	return imp, nil
}

func (f *fakeTransfer) ImportArchive(_ context.Context, _, backupID string, r io.Reader) (domain.ImportedArchive, error) {
	var body []byte
	if r != nil {
		b, err := io.ReadAll(r)
		if err != nil {
			return domain.ImportedArchive{}, err
		}
		body = b
	}
	return f.importing(importCall{backupID: backupID, body: string(body)})
}

func (f *fakeTransfer) ImportStaged(_ context.Context, _, backupID, object string) (domain.ImportedArchive, error) {
	return f.importing(importCall{backupID: backupID, staged: object})
}

func (f *fakeTransfer) OpenArchive(_ context.Context, backupID string, size int64, sum, component string) (domain.ArchiveStream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens = append(f.opens, openCall{backupID: backupID, size: size, sha256: sum, component: component})
	if f.openErr != nil {
		return domain.ArchiveStream{}, f.openErr
	}
	rerr := f.readErr
	if rerr == nil {
		rerr = errMismatch
	}
	return domain.ArchiveStream{
		ReadCloser: &failingReader{data: []byte(f.content), failAt: f.failAt, err: rerr},
		Size:       size, SHA256: sum,
	}, nil
}

func (f *fakeTransfer) StageDownload(_ context.Context, backupID string, size int64, sum, component string) (domain.StagedArchive, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stages = append(f.stages, openCall{backupID: backupID, size: size, sha256: sum, component: component})
	if f.stageErr != nil {
		return domain.StagedArchive{}, f.stageErr
	}
	return f.staged, nil
}

func (f *fakeTransfer) DeleteArchive(_ context.Context, backupID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, backupID)
	return f.deleteErr
}

func (f *fakeTransfer) importCalls() []importCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.imports)
}

func (f *fakeTransfer) openCalls() []openCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.opens)
}

func (f *fakeTransfer) stageCalls() []openCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.stages)
}

func (f *fakeTransfer) deleted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deletes)
}

// failingReader yields data; with failAt >= 0 it fails with err once
// failAt bytes were read, and keeps failing.
type failingReader struct {
	mu     sync.Mutex
	data   []byte
	pos    int
	failAt int
	err    error
	closed bool
}

func (r *failingReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := len(r.data)
	if r.failAt >= 0 && r.failAt < end {
		end = r.failAt
	}
	if r.pos >= end {
		if r.failAt >= 0 {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := copy(p, r.data[r.pos:end])
	r.pos += n
	return n, nil
}

func (r *failingReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}
