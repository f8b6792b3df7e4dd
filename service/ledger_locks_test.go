package service_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// The commands of one app in one process go one after another, and each
// within its bound.

func TestExecuteSerialisesCommandsOfOneApp(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	b := r.must(t, nightly("crm"), alice("k0"))
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := r.exec(domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: fmt.Sprintf("name %d", i)},
				alice(fmt.Sprintf("r%d", i)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(r.stream.appendCalls()); got != n+1 {
		t.Fatalf("%d appends for %d commands: commands of one app in one process conflicted", got, n+1)
	}
	// The chain is intact and sequences have no gaps.
	msgs := r.stream.snapshot()
	for i, m := range msgs {
		if m.seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d", i, m.seq)
		}
		want := ""
		if i > 0 {
			want = domain.HashEvent(msgs[i-1].body)
		}
		if got := rawEnvelope(t, m.body)["prev_hash"]; got != want {
			t.Fatalf("seq %d: prev_hash %v, want %s", m.seq, got, want)
		}
	}
}

func TestExecuteHoldsOtherCommandsOfTheAppWhileAppending(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	b := r.must(t, nightly("crm"), alice("k0"))
	var (
		appending atomic.Bool // alice's command is inside Append
		overlap   atomic.Bool // bob's command read the state meanwhile
		bobDone   = make(chan error, 1)
		once      sync.Once
	)
	r.fold.readHook = func() {
		if appending.Load() {
			overlap.Store(true)
		}
	}
	r.stream.beforeAppend = func(ev domain.PendingEvent) {
		if !strings.Contains(ev.MsgID, "|ka|alice") {
			return
		}
		once.Do(func() {
			appending.Store(true)
			go func() {
				_, err := r.exec(domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: "bob's"}, bob("kb"))
				bobDone <- err
			}()
			// Give bob's command every chance to get in; it must not read
			// the state before alice's command is done. (Polling without a
			// clock: it cannot make a correct ledger fail.)
			for i := 0; i < 10000 && !overlap.Load(); i++ {
				runtime.Gosched()
			}
			appending.Store(false)
		})
	}
	if _, err := r.exec(domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: "alice's"}, alice("ka")); err != nil {
		t.Fatal(err)
	}
	if err := <-bobDone; err != nil {
		t.Fatal(err)
	}
	if overlap.Load() {
		t.Fatal("a second command of the same app was decided while the first was being appended")
	}
	if got := len(r.stream.appendCalls()); got != 3 {
		t.Fatalf("%d appends, want 3 (no conflict within one process)", got)
	}
}

// TestCommandsAreBoundedBehindAStuckWrite: a write the store never
// confirms holds its app, but the app's next command does not wait past
// its own bound: it answers unavailable, not recorded, and an app that
// is not held answers at once.
func TestCommandsAreBoundedBehindAStuckWrite(t *testing.T) {
	r := newRig(t, service.LedgerConfig{CommandTimeout: 200 * time.Millisecond})
	release := make(chan struct{})
	held := make(chan struct{})
	r.stream.failAppend = func(ev domain.PendingEvent) error {
		if ev.App == "crm" {
			close(held)
			<-release // the store never answers this one, until the test ends
		}
		return nil
	}
	first := make(chan error, 1)
	go func() {
		_, err := r.exec(manual(), alice("k1"))
		first <- err
	}()
	<-held

	start := time.Now()
	_, err := r.exec(domain.RequestBackup{App: "crm", Origin: domain.OriginManual}, bob("k2"))
	took := time.Since(start)
	wantCode(t, err, domain.CodeUnavailable)
	if got := domain.RecordedOf(err); got != domain.RecordedNo {
		t.Errorf("recorded = %q, want %q: the command never reached the store", got, domain.RecordedNo)
	}
	if took > 5*time.Second {
		t.Errorf("the second command answered after %s, want about its bound of 200ms", took)
	}
	if _, err := r.exec(domain.RequestBackup{App: "hr", Origin: domain.OriginManual}, bob("k3")); err != nil {
		t.Errorf("another app waited for the stuck one: %v", err)
	}
	close(release)
	<-first
}
