package service_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// storeModes are the two orders in which a JetStream stream checks a
// retried append (DESIGN §11).
var storeModes = []struct {
	name       string
	dedupFirst bool
}{
	{"sequence checked first (R1)", false},
	{"id checked first (R3)", true},
}

// The one duplicate rule, for the apps: a command id accepted before is
// answered from the first command's record (its sequence, event type and
// backup), Duplicate set, and nothing is stored; even when the retry is
// another command, and whether this process's fold knows the first
// command or only the store does.
func TestLedgerDuplicateAnsweredFromTheFirstRecord(t *testing.T) {
	for _, mode := range storeModes {
		for _, stale := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, stale %v", mode.name, stale), func(t *testing.T) {
				r := newRig(t, service.LedgerConfig{})
				r.stream.SetDedupFirst(mode.dedupFirst)
				p := r.proc
				if stale {
					p = r.newProc() // has applied nothing
				}
				first := r.must(t, manual(), alice("k1"))
				got, err := p.exec(domain.StartMaintenance{App: "crm", Reason: "upgrade"}, alice("k1"))
				if err != nil {
					t.Fatalf("retry: %v", err)
				}
				want := first
				want.Duplicate = true
				if got != want || got.EventType != domain.TypeBackupRequested {
					t.Fatalf("retry = %+v, want the first result %+v", got, want)
				}
				if n := r.stream.len(); n != 1 {
					t.Fatalf("stream holds %d events, want 1", n)
				}
			})
		}
	}
}

// laggingDirView is a fold of the directory that applies the stream only
// when waited for, as the projection of a process that has not caught up.
type laggingDirView struct{ fakeDirView }

func (v *laggingDirView) ReadDirectory(fn func(d *domain.Directory)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fn(&v.dir)
}

// The one duplicate rule, for the directory: as for the apps. (Before
// the one loop, a duplicate the store noticed was answered with the new
// decision's event type.)
func TestIdentityDuplicateAnsweredFromTheFirstRecord(t *testing.T) {
	for _, mode := range storeModes {
		for _, stale := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, stale %v", mode.name, stale), func(t *testing.T) {
				r := newIdentityRig(t)
				r.stream.SetDedupFirst(mode.dedupFirst)
				id := r.id
				if stale {
					var err error
					id, err = service.NewIdentity(r.stream, &laggingDirView{fakeDirView{s: r.stream}}, r.secrets, fakeHasher{}, r.clock, &fakeIDs{}, service.IdentityConfig{Apps: r.usage}, nil)
					if err != nil {
						t.Fatal(err)
					}
				}
				m := domain.Meta{CommandID: "k1"}
				first, err := r.id.Execute(t.Context(), r.admin, domain.CreateOrg{ID: "acme"}, m)
				if err != nil || first.Duplicate || first.Seq != 1 {
					t.Fatalf("first = %+v, %v", first, err)
				}
				got, err := id.Execute(t.Context(), r.admin, domain.CreateUser{ID: "bob", Name: "Bob", Password: "bob-correct-horse"}, m)
				if err != nil {
					t.Fatalf("retry: %v", err)
				}
				want := domain.IdentityResult{Seq: first.Seq, EventType: first.EventType, Duplicate: true}
				if got.Seq != want.Seq || got.EventType != want.EventType || !got.Duplicate || got.Event != nil {
					t.Fatalf("retry = %+v, want the first result %+v", got, want)
				}
				if n := r.stream.len(); n != 1 {
					t.Fatalf("stream holds %d events, want 1", n)
				}
			})
		}
	}
}

// A client's key sent again with another request is refused, also when
// only the store knows the first command.
func TestIdentityKeyReusedOnAStaleProcess(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			r := newIdentityRig(t)
			r.stream.SetDedupFirst(mode.dedupFirst)
			stale, err := service.NewIdentity(r.stream, &laggingDirView{fakeDirView{s: r.stream}}, r.secrets, fakeHasher{}, r.clock, &fakeIDs{}, service.IdentityConfig{Apps: r.usage}, nil)
			if err != nil {
				t.Fatal(err)
			}
			key := domain.Meta{CommandID: "k1", ClientKey: true}
			if _, err := r.id.Execute(t.Context(), r.admin, domain.CreateOrg{ID: "acme"}, key); err != nil {
				t.Fatal(err)
			}
			_, err = stale.Execute(t.Context(), r.admin, domain.CreateOrg{ID: "beta"}, key)
			wantIdentityCode(t, err, domain.CodeIdempotencyKeyReused)
			res, err := stale.Execute(t.Context(), r.admin, domain.CreateOrg{ID: "acme"}, key)
			if err != nil || !res.Duplicate || res.Seq != 1 {
				t.Fatalf("the same request again = %+v, %v; want the first result", res, err)
			}
		})
	}
}

// Identity commands that keep conflicting give up after 20 attempts with
// an error wrapping ErrConflict, as the ledger's do after MaxAttempts.
func TestIdentityGivesUpAfterMaxAttempts(t *testing.T) {
	r := newIdentityRig(t)
	n := 0
	r.stream.beforeAppend = func(ev domain.PendingEvent) {
		if ev.App == domain.IdentityStream {
			n++
			r.stream.publishRaw(t, domain.IdentityStream, "other", fmt.Sprintf("x%d", n), nil)
		}
	}
	_, err := r.id.Execute(t.Context(), r.admin, domain.CreateOrg{ID: "acme"}, domain.Meta{})
	if !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if n != 20 {
		t.Fatalf("%d appends, want 20", n)
	}
}

// The ledger announces the event it appends to its fold (the
// read-your-writes hint of States); the identity service announces none,
// so that the directory is folded from the stored bodies only.
func TestOnlyTheLedgerAnnounces(t *testing.T) {
	r := newRig(t, service.LedgerConfig{})
	p, f := newExpectingProc(t, r)
	p.must(t, nightly("crm"), alice("k1"))
	if len(f.announced) != 1 {
		t.Fatalf("%d announced, want 1", len(f.announced))
	}
	v := &announcingDirView{fakeDirView: fakeDirView{s: r.stream}}
	id, err := service.NewIdentity(r.stream, v, &fakeSecrets{m: map[string][]byte{}}, fakeHasher{}, r.clock, &fakeIDs{}, service.IdentityConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := id.Execute(context.Background(), domain.Principal{ID: "admin", Admin: true}, domain.CreateOrg{ID: "acme"}, domain.Meta{}); err != nil {
		t.Fatal(err)
	}
	if v.announced != 0 {
		t.Fatalf("the identity service announced %d events", v.announced)
	}
}

// announcingDirView counts announcements, if it ever gets any.
type announcingDirView struct {
	fakeDirView
	announced int
}

func (v *announcingDirView) Expect(string, *domain.Envelope, domain.Event) { v.announced++ }
func (v *announcingDirView) Unexpect(string)                               {}
