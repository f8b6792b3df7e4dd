package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// memSource is a Source and Replacer of documents in memory, per app.
type memSource struct {
	mu         sync.Mutex
	apps       map[string]map[string]string
	schema     int
	failNext   error // the next Replace fails with it, after writing half
	replaces   int
	replacedAt []int
}

func newMemSource() *memSource { return &memSource{apps: map[string]map[string]string{}, schema: 1} }

func (s *memSource) Kind() string         { return "kv" }
func (s *memSource) SchemaVersion() int   { return s.schema }
func (s *memSource) Components() []string { return []string{domain.ComponentConfig} }

func (s *memSource) Export(_ context.Context, app string, emit func(domain.Item) error) error {
	s.mu.Lock()
	docs := maps.Clone(s.apps[app])
	s.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(docs)) {
		if err := emit(domain.Item{Path: k, Size: int64(len(docs[k])), Body: strings.NewReader(docs[k])}); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSource) Replace(_ context.Context, app string, items func(emit func(domain.Item) error) error) error {
	next := map[string]string{}
	err := items(func(it domain.Item) error {
		b, err := io.ReadAll(it.Body)
		if err != nil {
			return err
		}
		next[it.Path] = string(b)
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replaces++
	if s.failNext != nil {
		err, s.failNext = s.failNext, nil
		half := map[string]string{}
		for k, v := range next {
			half[k] = v
			break
		}
		s.apps[app] = half
		return err
	}
	s.apps[app] = next
	return nil
}

func (s *memSource) set(app string, docs map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[app] = maps.Clone(docs)
}

func (s *memSource) get(app string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.apps[app])
}

// memArchiveReader serves archives made of document maps.
type memArchiveReader struct {
	mu       sync.Mutex
	archives map[string]map[string]string
	schema   map[string]int
	corrupt  map[string]bool
	// lost are the archives whose record the store cannot read
	// (CheckArchive finds them corrupt without reading them).
	lost  map[string]bool
	reads int
}

// CheckArchive implements service.ArchiveChecker.
func (r *memArchiveReader) CheckArchive(_ context.Context, backupID string, _ int64, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.archives[backupID]; !ok || r.lost[backupID] {
		return fmt.Errorf("the object store's record of the archive is unreadable: %w", domain.ErrArchiveCorrupt)
	}
	return nil
}

func (r *memArchiveReader) ReadArchive(_ context.Context, backupID string, _ int64, _ string, fn func(domain.ArchiveContents) error) error {
	r.mu.Lock()
	docs, ok := r.archives[backupID]
	corrupt := r.corrupt[backupID]
	schema := r.schema[backupID]
	r.reads++
	r.mu.Unlock()
	if !ok {
		return domain.Errorf(domain.CodeNotFound, "no archive %s", backupID)
	}
	if corrupt {
		return errMismatch
	}
	if schema == 0 {
		schema = 1
	}
	keys := slices.Sorted(maps.Keys(docs))
	var entries []domain.ArchiveEntry
	for _, k := range keys {
		sum := sha256.Sum256([]byte(docs[k]))
		entries = append(entries, domain.ArchiveEntry{Path: "config/" + k, Size: int64(len(docs[k])), SHA256: hex.EncodeToString(sum[:])})
	}
	return fn(domain.ArchiveContents{SchemaVersion: schema, Source: "kv", Components: []string{"config"}, Entries: entries,
		Items: func(emit func(domain.Item) error) error {
			for _, k := range keys {
				if err := emit(domain.Item{Component: "config", Path: k, Size: int64(len(docs[k])), Body: strings.NewReader(docs[k])}); err != nil {
					return err
				}
			}
			return nil
		}})
}

type restoreRig struct {
	stream   *fakeStream
	fold     *fakeFold
	ledger   *service.Ledger
	src      *memSource
	archives *memArchiveReader
	svc      *service.Restores
	admin    domain.Principal
	// clock is the ledger's and the restores' clock.
	clock *fakeClock
}

func newRestoreRig(t *testing.T, migrations domain.Migrations) *restoreRig {
	t.Helper()
	s := newFakeStream()
	f := newFakeFold(s, 100)
	f.follow = true
	rules := domain.DefaultRules()
	rules.MinInterval = 0
	clock := newClock(t0)
	l, err := service.NewLedger(service.LedgerConfig{Rules: rules}, s, f, clock, &fakeIDs{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := newMemSource()
	ar := &memArchiveReader{archives: map[string]map[string]string{}, schema: map[string]int{}, corrupt: map[string]bool{}, lost: map[string]bool{}}
	svc := service.NewRestores(service.RestoreConfig{Poll: time.Millisecond}, l, f, nil, service.SourceSet{Default: src}, ar, migrations, clock, nil)
	return &restoreRig{stream: s, fold: f, ledger: l, src: src, archives: ar, svc: svc, admin: domain.Principal{ID: "admin", Admin: true}, clock: clock}
}

// readyBackup records a ready backup of app holding docs.
func (r *restoreRig) readyBackup(t *testing.T, app string, docs map[string]string) string {
	t.Helper()
	ctx := t.Context()
	res, err := r.ledger.Execute(ctx, domain.RequestBackup{App: app}, domain.Meta{Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	r.completeBackup(t, app, res.BackupID)
	r.archives.mu.Lock()
	r.archives.archives[res.BackupID] = maps.Clone(docs)
	r.archives.mu.Unlock()
	return res.BackupID
}

func (r *restoreRig) completeBackup(t *testing.T, app, id string) {
	t.Helper()
	ctx := t.Context()
	if _, err := r.ledger.Execute(ctx, domain.StartBackup{App: app, BackupID: id, Attempt: 1}, domain.Meta{Actor: "w"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ledger.Execute(ctx, domain.CompleteBackup{App: app, BackupID: id, Attempt: 1, SizeBytes: 10, SHA256: sha64,
		SchemaVersion: 1, Source: "kv"}, domain.Meta{Actor: "w"}); err != nil {
		t.Fatal(err)
	}
}

func (r *restoreRig) restore(t *testing.T, app, id string) domain.Restore {
	t.Helper()
	var rs domain.Restore
	r.fold.ReadApp(app, func(a *domain.App) { rs, _ = a.Restore(id) })
	return rs
}

// run runs the restore, doing the worker's part for a pre-restore backup.
func (r *restoreRig) run(t *testing.T, app, id string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.svc.Run(context.Background(), app, id, 0, nil) }()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-done:
			return err
		case <-deadline:
			t.Fatalf("restore did not end: %+v", r.restore(t, app, id))
		case <-time.After(time.Millisecond):
			rs := r.restore(t, app, id)
			if rs.PreBackupID == "" || rs.PreBackupReady {
				continue
			}
			var b domain.Backup
			r.fold.ReadApp(app, func(a *domain.App) { b, _ = a.Backup(rs.PreBackupID) })
			if b.Status == domain.StatusQueued {
				r.completeBackup(t, app, rs.PreBackupID)
			}
		}
	}
}

func TestRestoreRunInPlace(t *testing.T) {
	for _, autoEnd := range []bool{true, false} {
		r := newRestoreRig(t, nil)
		first := map[string]string{"a": "1", "b": "2"}
		r.src.set("crm", first)
		b1 := r.readyBackup(t, "crm", first)
		r.src.set("crm", map[string]string{"a": "changed", "c": "added later"})

		rs, err := r.svc.Request(t.Context(), r.admin, domain.RestoreRequest{App: "crm", BackupID: b1, PreRestoreBackup: true, AutoEndMaintenance: autoEnd}, domain.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.svc.Request(t.Context(), r.admin, domain.RestoreRequest{App: "crm", BackupID: b1}, domain.Meta{}); domain.Code(err) != domain.CodeRestoreInProgress {
			t.Errorf("second restore: %v", err)
		}
		if err := r.run(t, "crm", rs.RestoreID); err != nil {
			t.Fatal(err)
		}
		if got := r.src.get("crm"); !maps.Equal(got, first) {
			t.Errorf("content after restore = %v, want %v", got, first)
		}
		rs = r.restore(t, "crm", rs.RestoreID)
		if rs.Status != domain.RestoreStatusCompleted || rs.Digest == "" || rs.PreBackupID == "" {
			t.Fatalf("restore = %+v", rs)
		}
		var (
			m   domain.Maintenance
			pre domain.Backup
		)
		r.fold.ReadApp("crm", func(a *domain.App) { m = a.Maintenance(); pre, _ = a.Backup(rs.PreBackupID) })
		if m.On == autoEnd {
			t.Errorf("auto-end %v: maintenance %+v", autoEnd, m)
		}
		if pre.Origin != domain.OriginPreRestore || pre.Status != domain.StatusReady {
			t.Errorf("pre-restore backup = %+v", pre)
		}
		// Each step once.
		counts := map[string]int{}
		for _, typ := range r.stream.types("crm") {
			counts[typ]++
		}
		for _, typ := range []string{domain.TypeRestoreRequested, domain.TypeRestorePreBackup, domain.TypeRestoreArchiveVerified,
			domain.TypeRestoreImported, domain.TypeRestoreCompleted, domain.TypeMaintenanceStarted} {
			if counts[typ] != 1 {
				t.Errorf("%s recorded %d times", typ, counts[typ])
			}
		}
		if want := map[bool]int{true: 1, false: 0}[autoEnd]; counts[domain.TypeMaintenanceEnded] != want {
			t.Errorf("maintenance.ended %d times, want %d", counts[domain.TypeMaintenanceEnded], want)
		}
		// Running again does nothing more.
		n := r.stream.len()
		if err := r.svc.Run(t.Context(), "crm", rs.RestoreID, 0, nil); err != nil || r.stream.len() != n {
			t.Errorf("a second run: %v, %d new events", err, r.stream.len()-n)
		}
	}
}

// A runner that dies in the middle of the import (here: the source fails
// half way) runs again and ends the restore verified, each step once.
func TestRestoreRunResumes(t *testing.T) {
	r := newRestoreRig(t, nil)
	first := map[string]string{"a": "1", "b": "2", "c": "3"}
	b1 := r.readyBackup(t, "crm", first)
	r.src.set("crm", map[string]string{"z": "other"})
	rs, err := r.svc.Request(t.Context(), r.admin, domain.RestoreRequest{App: "crm", BackupID: b1, AutoEndMaintenance: true}, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	r.src.failNext = errors.New("process killed")
	if err := r.svc.Run(t.Context(), "crm", rs.RestoreID, 0, nil); err == nil {
		t.Fatal("the run survived its source failing")
	}
	if st := r.restore(t, "crm", rs.RestoreID); st.Status != domain.RestoreStatusRunning || st.Imported {
		t.Fatalf("after the crash: %+v", st)
	}
	if err := r.svc.Run(t.Context(), "crm", rs.RestoreID, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := r.src.get("crm"); !maps.Equal(got, first) {
		t.Errorf("content = %v", got)
	}
	if st := r.restore(t, "crm", rs.RestoreID); st.Status != domain.RestoreStatusCompleted {
		t.Fatalf("restore = %+v", st)
	}
	if c := strings.Count(strings.Join(r.stream.types("crm"), " "), domain.TypeRestoreImported); c != 1 {
		t.Errorf("restore.imported %d times", c)
	}
}

// A corrupt archive fails the restore before anything changes, and marks
// the backup corrupt.
func TestRestoreCorruptArchive(t *testing.T) {
	r := newRestoreRig(t, nil)
	b1 := r.readyBackup(t, "crm", map[string]string{"a": "1"})
	now := map[string]string{"a": "now"}
	r.src.set("crm", now)
	r.archives.corrupt[b1] = true
	rs, err := r.svc.Request(t.Context(), r.admin, domain.RestoreRequest{App: "crm", BackupID: b1, AutoEndMaintenance: true}, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Run(t.Context(), "crm", rs.RestoreID, 0, nil); err != nil {
		t.Fatal(err)
	}
	st := r.restore(t, "crm", rs.RestoreID)
	if st.Status != domain.RestoreStatusFailed || st.FailedStep != domain.StepVerifyArchive || !strings.Contains(st.Error, "does not match") {
		t.Fatalf("restore = %+v", st)
	}
	if got := r.src.get("crm"); !maps.Equal(got, now) || r.src.replaces != 0 {
		t.Errorf("content changed: %v (%d replaces)", got, r.src.replaces)
	}
	var (
		b domain.Backup
		m domain.Maintenance
	)
	r.fold.ReadApp("crm", func(a *domain.App) { b, _ = a.Backup(b1); m = a.Maintenance() })
	if b.CorruptAt.IsZero() || m.On {
		t.Errorf("backup %+v, maintenance %+v: want corrupt, and the app never put into maintenance", b, m)
	}
}

func TestRestoreRequestChecks(t *testing.T) {
	r := newRestoreRig(t, nil)
	b1 := r.readyBackup(t, "crm", map[string]string{"a": "1"})
	queued, err := r.ledger.Execute(t.Context(), domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	before := r.stream.len()
	for _, tc := range []struct {
		req  domain.RestoreRequest
		code string
	}{
		{domain.RestoreRequest{App: "crm", BackupID: "nope"}, domain.CodeNotFound},
		{domain.RestoreRequest{App: "crm", BackupID: queued.BackupID}, domain.CodeBackupNotReady},
		{domain.RestoreRequest{App: "Bad!", BackupID: b1}, domain.CodeInvalidArgument},
		{domain.RestoreRequest{App: "crm", BackupID: b1, TargetApp: "Bad!"}, domain.CodeInvalidArgument},
	} {
		if _, err := r.svc.Request(t.Context(), r.admin, tc.req, domain.Meta{}); domain.Code(err) != tc.code {
			t.Errorf("%+v: %v, want %s", tc.req, err, tc.code)
		}
	}
	newer, err := r.ledger.Execute(t.Context(), domain.RequestBackup{App: "crm"}, domain.Meta{Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ledger.Execute(t.Context(), domain.StartBackup{App: "crm", BackupID: newer.BackupID, Attempt: 1}, domain.Meta{Actor: "w"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ledger.Execute(t.Context(), domain.CompleteBackup{App: "crm", BackupID: newer.BackupID, Attempt: 1, SizeBytes: 1,
		SHA256: sha64, SchemaVersion: 2, Source: "kv"}, domain.Meta{Actor: "w"}); err != nil {
		t.Fatal(err)
	}
	before = r.stream.len()
	if _, err := r.svc.Request(t.Context(), r.admin, domain.RestoreRequest{App: "crm", BackupID: newer.BackupID}, domain.Meta{}); domain.Code(err) != domain.CodeBackupNewer {
		t.Errorf("a backup newer than the server: %v", err)
	}
	if n := r.stream.len(); n != before {
		t.Errorf("refused requests appended %d events", n-before)
	}
}

// What a restore can check before it starts is checked at the request,
// which then records nothing, and the app does not go into maintenance:
// an archive whose record is unreadable (the backup is marked corrupt),
// and a schema version this server cannot migrate.
func TestRestoreRequestChecksTheArchiveFirst(t *testing.T) {
	r := newRestoreRig(t, nil)
	lost := r.readyBackup(t, "crm", map[string]string{"a": "1"})
	old := r.readyBackup(t, "crm", map[string]string{"a": "0"})
	r.archives.lost[lost] = true
	r.src.schema = 2 // the backups are of version 1, and no migration exists

	before := r.stream.len()
	_, err := r.svc.Request(t.Context(), r.admin, domain.RestoreRequest{App: "crm", BackupID: old}, domain.Meta{})
	if domain.Code(err) != domain.CodeArchiveVersion || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("a backup of a schema without migration: %v", err)
	}
	if n := r.stream.len(); n != before {
		t.Errorf("the refused request appended %d events", n-before)
	}
	r.src.schema = 1
	_, err = r.svc.Request(t.Context(), r.admin, domain.RestoreRequest{App: "crm", BackupID: lost}, domain.Meta{})
	if domain.Code(err) != domain.CodeBackupCorrupt {
		t.Fatalf("a backup whose archive record is unreadable: %v", err)
	}
	var (
		b domain.Backup
		m domain.Maintenance
	)
	r.fold.ReadApp("crm", func(a *domain.App) { b, _ = a.Backup(lost); m = a.Maintenance() })
	if b.CorruptAt.IsZero() || !strings.Contains(b.CorruptReason, "unreadable") || m.On {
		t.Errorf("backup %+v, maintenance %+v: want marked corrupt, no maintenance", b, m)
	}
	if got := r.stream.types("crm")[r.stream.len()-1:]; got[0] != domain.TypeBackupCorrupted {
		t.Errorf("last event %v, want the backup marked corrupt", got)
	}
	if r.archives.reads != 0 {
		t.Errorf("%d archives read; the request checks without reading", r.archives.reads)
	}
}

// An older backup is migrated on the way in; the restore records the
// steps, and verifies the migrated content.
func TestRestoreMigrates(t *testing.T) {
	upper := domain.Migration{Source: "kv", From: 1, Name: "values upper-cased", Apply: func(it domain.Item) ([]domain.Item, error) {
		b, err := io.ReadAll(it.Body)
		if err != nil {
			return nil, err
		}
		b = bytes.ToUpper(b)
		it.Body, it.Size = bytes.NewReader(b), int64(len(b))
		return []domain.Item{it}, nil
	}}
	r := newRestoreRig(t, domain.Migrations{upper})
	b1 := r.readyBackup(t, "crm", map[string]string{"a": "one", "b": "two"})
	r.src.schema = 2
	rs, err := r.svc.Request(t.Context(), r.admin, domain.RestoreRequest{App: "crm", BackupID: b1}, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(t, "crm", rs.RestoreID); err != nil {
		t.Fatal(err)
	}
	if got := r.src.get("crm"); !maps.Equal(got, map[string]string{"a": "ONE", "b": "TWO"}) {
		t.Errorf("content = %v", got)
	}
	st := r.restore(t, "crm", rs.RestoreID)
	if st.Status != domain.RestoreStatusCompleted || len(st.Migrations) != 1 || st.ImportedSchema != 2 {
		t.Fatalf("restore = %+v", st)
	}
	// Without a migration step the request is refused, and nothing
	// changes (TestRestoreRequestChecksTheArchiveFirst); an archive whose
	// own manifest says so fails the restore before maintenance.
	r2 := newRestoreRig(t, nil)
	b2 := r2.readyBackup(t, "crm", map[string]string{"a": "one"})
	r2.src.set("crm", map[string]string{"keep": "me"})
	rs2, err := r2.svc.Request(t.Context(), r2.admin, domain.RestoreRequest{App: "crm", BackupID: b2}, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	r2.src.schema = 2 // the server's version moved after the request
	if err := r2.svc.Run(t.Context(), "crm", rs2.RestoreID, 0, nil); err != nil {
		t.Fatal(err)
	}
	var m domain.Maintenance
	r2.fold.ReadApp("crm", func(a *domain.App) { m = a.Maintenance() })
	if st := r2.restore(t, "crm", rs2.RestoreID); st.Status != domain.RestoreStatusFailed || !strings.Contains(st.Error, "no migration") || m.On {
		t.Fatalf("restore = %+v, maintenance %+v", st, m)
	}
	if got := r2.src.get("crm"); !maps.Equal(got, map[string]string{"keep": "me"}) {
		t.Errorf("content changed: %v", got)
	}
}

// A runner whose projection has not applied the restore's request yet
// (its job came first) waits for it, and runs it again later instead of
// failing it when the wait ends: nothing is recorded meanwhile.
func TestRestoreRunWaitsForTheProjection(t *testing.T) {
	r := newRestoreRig(t, nil)
	b1 := r.readyBackup(t, "crm", map[string]string{"a": "1"})
	rs, err := r.svc.Request(t.Context(), r.admin, domain.RestoreRequest{App: "crm", BackupID: b1, AutoEndMaintenance: true}, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	n := r.stream.len()
	beyond := uint64(n + 10) // a request this server's projection has not applied
	err = r.svc.Run(t.Context(), "crm", rs.RestoreID, beyond, nil)
	if err == nil || !strings.Contains(err.Error(), "projection is behind") {
		t.Fatalf("Run with the projection behind = %v, want an error to run again later", err)
	}
	if r.stream.len() != n {
		t.Fatalf("%d events recorded while the projection was behind", r.stream.len()-n)
	}
	if err := r.svc.Run(t.Context(), "crm", rs.RestoreID, uint64(n), nil); err != nil {
		t.Fatal(err)
	}
	if st := r.restore(t, "crm", rs.RestoreID); st.Status != domain.RestoreStatusCompleted {
		t.Fatalf("restore = %+v", st)
	}
}
