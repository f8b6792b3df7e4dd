package service_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// announcement is one Expect call.
type announcement struct {
	hash string
	env  *domain.Envelope
	ev   domain.Event
}

// expectingFold is a fakeFold that also takes announcements of the events
// its ledger is about to append (service.Expecter), and records them.
type expectingFold struct {
	*fakeFold
	mu        sync.Mutex
	announced []announcement
	withdrawn []string
}

var _ service.Expecter = (*expectingFold)(nil)

func (f *expectingFold) Expect(hash string, env *domain.Envelope, ev domain.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announced = append(f.announced, announcement{hash: hash, env: env, ev: ev})
}

func (f *expectingFold) Unexpect(hash string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.withdrawn = append(f.withdrawn, hash)
}

// outstanding returns the announced hashes that were neither stored nor
// withdrawn: announcements a projection would keep for ever.
func (f *expectingFold) outstanding(s *fakeStream) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	stored := map[string]bool{}
	for _, m := range s.snapshot() {
		stored[domain.HashEvent(m.body)] = true
	}
	var out []string
	for _, a := range f.announced {
		if !stored[a.hash] && !slices.Contains(f.withdrawn, a.hash) {
			out = append(out, a.hash)
		}
	}
	return out
}

// newExpectingProc starts a process on r's stream whose fold is an Expecter.
func newExpectingProc(t *testing.T, r *rig) (*proc, *expectingFold) {
	t.Helper()
	f := &expectingFold{fakeFold: newFakeFold(r.stream, r.cfg.Rules.CommandMemory)}
	l, err := service.NewLedger(r.cfg, r.stream, f, r.clock, r.ids, r.archives, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &proc{fold: f.fakeFold, ledger: l}, f
}

// checkAnnouncement fails unless a announces exactly the stored body.
func checkAnnouncement(t *testing.T, a announcement, body []byte) {
	t.Helper()
	if a.hash != domain.HashEvent(body) {
		t.Fatalf("announced hash %s, stored body hashes to %s", a.hash, domain.HashEvent(body))
	}
	again, err := json.Marshal(a.env)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(body) {
		t.Fatalf("announced envelope encodes to\n%s\nstored body is\n%s", again, body)
	}
	var env domain.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	ev, err := domain.DecodeEvent(&env)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.ev, ev) {
		t.Fatalf("announced event %#v, the stored body decodes to %#v: this process would fold another state than the others", a.ev, ev)
	}
}

func TestExecuteAnnouncesTheEventItAppends(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	p, f := newExpectingProc(t, r)
	res := p.must(t, domain.RequestBackup{App: "crm", Name: ptr("<b> & \"q\""), Description: "x\ny"}, alice("k1"))
	p.must(t, domain.StartBackup{App: "crm", BackupID: res.BackupID, Attempt: 1, Worker: "w"}, alice("k2"))
	p.must(t, domain.FailBackup{App: "crm", BackupID: res.BackupID, Reason: "export: ünïcode"}, alice("k3"))
	msgs := r.stream.snapshot()
	if len(f.announced) != 3 || len(f.withdrawn) != 0 {
		t.Fatalf("%d announced, %d withdrawn; want 3 and 0", len(f.announced), len(f.withdrawn))
	}
	for i, a := range f.announced {
		checkAnnouncement(t, a, msgs[i].body)
	}
	if out := f.outstanding(r.stream); len(out) != 0 {
		t.Fatalf("outstanding announcements %v", out)
	}
}

func TestExecuteWithdrawsFailedAnnouncements(t *testing.T) {
	t.Run("conflict", func(t *testing.T) {
		r := newRig(t, service.LedgerConfig{})
		p, f := newExpectingProc(t, r)
		var once sync.Once
		r.stream.beforeAppend = func(domain.PendingEvent) {
			once.Do(func() { r.stream.publishRaw(t, "crm", "other", "x", nil) })
		}
		p.must(t, nightly("crm"), alice("k1"))
		if len(f.announced) != 2 || !slices.Equal(f.withdrawn, []string{f.announced[0].hash}) {
			t.Fatalf("announced %d, withdrawn %v; want 2 announced and the first withdrawn", len(f.announced), f.withdrawn)
		}
		checkAnnouncement(t, f.announced[1], r.stream.snapshot()[1].body)
		if out := f.outstanding(r.stream); len(out) != 0 {
			t.Fatalf("outstanding announcements %v", out)
		}
	})
	t.Run("store error", func(t *testing.T) {
		r := newRig(t, service.LedgerConfig{})
		p, f := newExpectingProc(t, r)
		r.stream.failAppend = func(domain.PendingEvent) error { return errStore }
		if _, err := p.exec(nightly("crm"), alice("k1")); !errors.Is(err, errStore) {
			t.Fatalf("err = %v", err)
		}
		if len(f.announced) != 1 || !slices.Equal(f.withdrawn, []string{f.announced[0].hash}) {
			t.Fatalf("announced %d, withdrawn %v", len(f.announced), f.withdrawn)
		}
	})
}

// TestExecuteWithdrawsTheAnnouncementOfADuplicate is a regression test for
// a bug reported to the lead: when the store answers Duplicate, the body
// this process announced was never stored, and its announcement is never
// withdrawn (a leak in the projection's expected map).
func TestExecuteWithdrawsTheAnnouncementOfADuplicate(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	p2, f := newExpectingProc(t, r) // stale: has not seen alice's first request
	first := r.must(t, nightly("crm"), alice("k1"))
	res, err := p2.exec(nightly("crm"), alice("k1"))
	if err != nil || !res.Duplicate || res.BackupID != first.BackupID {
		t.Fatalf("retry on the stale process = %+v, %v", res, err)
	}
	if out := f.outstanding(r.stream); len(out) != 0 {
		t.Fatalf("announcement of a duplicate never withdrawn: %v", out)
	}
}

// TestExecuteAnnouncesWhatOthersDecode is a regression test for a bug
// reported to the lead: a failure reason with invalid UTF-8 (an export
// error quoting a file name) is announced with its raw bytes, while the
// stored JSON carries U+FFFD, so this process folds another Backup.Error
// than every other process and than a replay.
func TestExecuteAnnouncesWhatOthersDecode(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	p, f := newExpectingProc(t, r)
	res := p.must(t, nightly("crm"), alice("k1"))
	p.must(t, domain.FailBackup{App: "crm", BackupID: res.BackupID, Reason: "export: open caf\xe9.txt"}, alice("k2"))
	msgs := r.stream.snapshot()
	ev, ok := f.announced[1].ev.(*domain.BackupFailed)
	if !ok {
		t.Fatalf("announced %T", f.announced[1].ev)
	}
	if !strings.Contains(string(msgs[1].body), `caf\ufffd.txt`) && !strings.Contains(string(msgs[1].body), "caf\uFFFD.txt") {
		t.Fatalf("stored body %s", msgs[1].body)
	}
	if ev.Reason != "export: open caf\uFFFD.txt" {
		t.Fatalf("reason %q is not valid UTF-8, the stored JSON has U+FFFD", ev.Reason)
	}
	checkAnnouncement(t, f.announced[1], msgs[1].body)
}

func TestExecuteAnnouncesUploadsAsOthersDecode(t *testing.T) {
	// Invalid UTF-8 from a manifest, and an original creation time with
	// nanoseconds in another zone: the announced event must be exactly
	// what the stored JSON decodes to.
	r := newRig(t, service.LedgerConfig{})
	p, f := newExpectingProc(t, r)
	up := withArchive("up1", func(a *domain.ImportedArchive) {
		a.App, a.Name, a.Source = "e\xffrp", "caf\xe9", "k\xc3v"
		a.CreatedAt = time.Date(2026, 8, 29, 17, 32, 0, 123_456_789, time.FixedZone("IST", 5*3600+1800))
	})
	p.must(t, up, alice("k1"))
	p.must(t, domain.MarkCorrupt{App: "crm", BackupID: "up1", Reason: "sha256 mismatch at caf\xe9"}, alice("k2"))
	msgs := r.stream.snapshot()
	if len(f.announced) != 2 {
		t.Fatalf("%d announced, want 2", len(f.announced))
	}
	for i, a := range f.announced {
		checkAnnouncement(t, a, msgs[i].body)
	}
}
