package domain_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin without a system zone database

	"github.com/backupledger/backupledger/domain"
)

// at returns t0+d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// later is "now" of the cases that do not care: long after every given event.
var later = at(48 * time.Hour)

const day = 24 * time.Hour

// decideCase is one given/when/then row: the app folded from given, the
// command when decided at now under rules, then either the event want (or
// what check accepts) or an error with code and RetryAfter retry.
type decideCase struct {
	name  string
	given []given
	rules *domain.Rules // nil: DefaultRules
	now   time.Time     // zero: later
	when  domain.Command
	want  domain.Event
	check func(t *testing.T, ev domain.Event)
	code  string
	retry time.Duration
}

func runDecide(t *testing.T, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := fold(t, "crm", tc.given...)
			before := a.Backups()
			rules := domain.DefaultRules()
			if tc.rules != nil {
				rules = *tc.rules
			}
			now := tc.now
			if now.IsZero() {
				now = later
			}
			ev, err := domain.Decide(a, tc.when, now, rules, newIDFunc("new"))
			if !reflect.DeepEqual(a.Backups(), before) || a.Seq() != uint64(len(tc.given)) {
				t.Fatalf("Decide changed the state")
			}
			if tc.code != "" {
				wantCode(t, err, tc.code)
				if ev != nil {
					t.Fatalf("got event %#v together with error %v", ev, err)
				}
				if got := domain.RetryAfter(err); got != tc.retry {
					t.Fatalf("RetryAfter = %v, want %v", got, tc.retry)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if ev == nil {
				t.Fatal("Decide returned no event and no error")
			}
			if tc.want == nil && tc.check == nil {
				t.Fatal("case has neither want nor check")
			}
			if tc.want != nil && !reflect.DeepEqual(ev, tc.want) {
				t.Fatalf("event = %#v, want %#v", ev, tc.want)
			}
			if tc.check != nil {
				tc.check(t, ev)
			}
		})
	}
}

// isRequest accepts a BackupRequested of the given origin with the new id.
func isRequest(origin domain.Origin) func(t *testing.T, ev domain.Event) {
	return func(t *testing.T, ev domain.Event) {
		t.Helper()
		r, ok := ev.(*domain.BackupRequested)
		if !ok {
			t.Fatalf("event = %T, want *domain.BackupRequested", ev)
		}
		if r.BackupID != "new" || r.Origin != origin {
			t.Fatalf("event = %+v, want id new and origin %s", r, origin)
		}
	}
}

// hasName accepts a BackupRequested named name.
func hasName(name string) func(t *testing.T, ev domain.Event) {
	return func(t *testing.T, ev domain.Event) {
		t.Helper()
		r, ok := ev.(*domain.BackupRequested)
		if !ok {
			t.Fatalf("event = %T, want *domain.BackupRequested", ev)
		}
		if r.Name != name {
			t.Fatalf("name = %q, want %q", r.Name, name)
		}
	}
}

// statuses returns one nightly backup per status given, b01, b02, ...,
// created an hour apart.
func statuses(sts ...domain.Status) []given {
	var out []given
	for i, st := range sts {
		out = append(out, inStatus(fmt.Sprintf("b%02d", i+1), time.Duration(i+1)*time.Hour, domain.OriginNightly, st)...)
	}
	return out
}

// failedN returns n failed manual backups f1, f2, ..., created a day and
// an hour apart.
func failedN(n int) []given {
	var out []given
	for i := 1; i <= n; i++ {
		out = append(out, inStatus(fmt.Sprintf("f%d", i), day+time.Duration(i)*time.Hour, domain.OriginManual, domain.StatusFailed)...)
	}
	return out
}

func manual() domain.RequestBackup {
	return domain.RequestBackup{App: "crm", Origin: domain.OriginManual}
}

func withOrigin(o domain.Origin) domain.RequestBackup {
	return domain.RequestBackup{App: "crm", Origin: o}
}

// preRestore is the request of the pre-restore backup of restore id.
func preRestore(id string) domain.RequestBackup {
	return domain.RequestBackup{App: "crm", Origin: domain.OriginPreRestore, RestoreID: id}
}

func TestDecideQuota(t *testing.T) {
	mixed := concat(
		statuses(domain.StatusQueued, domain.StatusQueued, domain.StatusQueued, domain.StatusQueued,
			domain.StatusRunning, domain.StatusRunning, domain.StatusRunning,
			domain.StatusReady, domain.StatusReady, domain.StatusReady),
	)
	runDecide(t, []decideCase{
		{name: "no backup yet: allowed", when: manual(), check: isRequest(domain.OriginManual)},
		{name: "10th backup allowed (9 ready)", given: nBackups(9, domain.OriginManual, domain.StatusReady),
			when: manual(), check: isRequest(domain.OriginManual)},
		{name: "11th backup refused (10 ready)", given: nBackups(10, domain.OriginManual, domain.StatusReady),
			when: manual(), code: domain.CodeQuotaExceeded},
		{name: "11th backup refused (10 queued)", given: nBackups(10, domain.OriginNightly, domain.StatusQueued),
			when: manual(), code: domain.CodeQuotaExceeded},
		{name: "11th backup refused (10 running)", given: nBackups(10, domain.OriginNightly, domain.StatusRunning),
			when: manual(), code: domain.CodeQuotaExceeded},
		{name: "11th backup refused (queued, running and ready mixed)", given: mixed,
			when: manual(), code: domain.CodeQuotaExceeded},
		{name: "failed backups do not count (9 ready, 5 failed)",
			given: concat(nBackups(9, domain.OriginManual, domain.StatusReady),
				failedN(5)),
			when: manual(), check: isRequest(domain.OriginManual)},
		{name: "deleted backups do not count (10 ready, 1 deleted)",
			given: append(nBackups(10, domain.OriginNightly, domain.StatusReady), g(20*time.Hour, deleted("b03"))),
			when:  manual(), check: isRequest(domain.OriginManual)},
		{name: "quota applies to nightly backups", given: nBackups(10, domain.OriginManual, domain.StatusReady),
			when: withOrigin(domain.OriginNightly), code: domain.CodeQuotaExceeded},
		{name: "quota applies to pre-restore backups",
			given: append(nBackups(10, domain.OriginManual, domain.StatusReady), g(time.Hour, restoreRequested("r1", true))),
			when:  preRestore("r1"), code: domain.CodeQuotaExceeded},
		{name: "quota applies to uploads", given: nBackups(10, domain.OriginManual, domain.StatusReady),
			when: withOrigin(domain.OriginUpload), code: domain.CodeQuotaExceeded},
		{name: "quota is checked before the interval",
			given: nBackups(10, domain.OriginManual, domain.StatusReady), now: at(10*time.Hour + time.Second),
			when: manual(), code: domain.CodeQuotaExceeded},
		{name: "an invalid name is refused before the quota", given: nBackups(10, domain.OriginManual, domain.StatusReady),
			when: domain.RequestBackup{App: "crm", Name: ptr(" ")}, code: domain.CodeInvalidArgument},
	})
}

func TestDecideFailedDoNotCountHistory(t *testing.T) {
	// Guard for the table above: the failed-backups case really holds 9
	// ready and 5 failed backups.
	a := fold(t, "crm", concat(nBackups(9, domain.OriginManual, domain.StatusReady), failedN(5))...)
	c := a.CountByStatus()
	if c[domain.StatusReady] != 9 || c[domain.StatusFailed] != 5 || a.Quota() != 9 {
		t.Fatalf("counts = %v, quota %d; want 9 ready, 5 failed, quota 9", c, a.Quota())
	}
}

func TestDecideMinInterval(t *testing.T) {
	lastManual := []given{g(0, requested("m1", domain.OriginManual))}
	runDecide(t, []decideCase{
		{name: "4m59s after the last manual backup: too soon, retry after exactly 1s",
			given: lastManual, now: at(4*time.Minute + 59*time.Second), when: manual(),
			code: domain.CodeTooSoon, retry: time.Second},
		{name: "4m59.5s after: retry after 500ms",
			given: lastManual, now: at(4*time.Minute + 59*time.Second + 500*time.Millisecond), when: manual(),
			code: domain.CodeTooSoon, retry: 500 * time.Millisecond},
		{name: "same instant: retry after the whole interval",
			given: lastManual, now: at(0), when: manual(), code: domain.CodeTooSoon, retry: 5 * time.Minute},
		{name: "5m after the last manual backup: allowed",
			given: lastManual, now: at(5 * time.Minute), when: manual(), check: isRequest(domain.OriginManual)},
		{name: "empty origin means manual: too soon",
			given: lastManual, now: at(time.Minute), when: domain.RequestBackup{App: "crm"},
			code: domain.CodeTooSoon, retry: 4 * time.Minute},
		{name: "empty origin means manual: recorded as manual",
			given: lastManual, now: at(5 * time.Minute), when: domain.RequestBackup{App: "crm"},
			check: isRequest(domain.OriginManual)},
		{name: "nightly is exempt", given: lastManual, now: at(time.Second),
			when: withOrigin(domain.OriginNightly), check: isRequest(domain.OriginNightly)},
		{name: "pre_restore is exempt", given: append(lastManual, g(0, restoreRequested("r1", true))), now: at(time.Second),
			when: preRestore("r1"), check: isRequest(domain.OriginPreRestore)},
		{name: "upload is exempt", given: lastManual, now: at(time.Second),
			when: withOrigin(domain.OriginUpload), check: isRequest(domain.OriginUpload)},
		{name: "a nightly backup does not start the interval",
			given: []given{g(0, requested("n1", domain.OriginNightly))}, now: at(time.Second),
			when: manual(), check: isRequest(domain.OriginManual)},
		{name: "a nightly backup after a manual one does not restart the interval",
			given: append(lastManual, g(4*time.Minute, requested("n1", domain.OriginNightly))), now: at(5 * time.Minute),
			when: manual(), check: isRequest(domain.OriginManual)},
		{name: "measured from the latest manual backup",
			given: append(lastManual, g(10*time.Minute, requested("m2", domain.OriginManual))), now: at(14 * time.Minute),
			when: manual(), code: domain.CodeTooSoon, retry: time.Minute},
		{name: "intended: a manual backup that was later deleted still counts for the interval",
			given: append(lastManual, g(time.Minute, deleted("m1"))), now: at(4 * time.Minute),
			when: manual(), code: domain.CodeTooSoon, retry: time.Minute},
		{name: "a manual backup that the system failed does not count for the interval (issue 15)",
			given: append(lastManual, g(time.Minute, failed("m1"))), now: at(2 * time.Minute),
			when: manual(), check: isRequest(domain.OriginManual)},
		{name: "after a failed one, the interval counts from the manual backup before",
			given: append(lastManual, g(2*time.Minute, requested("m2", domain.OriginManual)), g(3*time.Minute, failed("m2"))),
			now:   at(4 * time.Minute), when: manual(), code: domain.CodeTooSoon, retry: time.Minute},
		{name: "a deleted manual backup still counts for the interval, from its request",
			given: append(lastManual, g(2*time.Minute, requested("m2", domain.OriginManual)), g(3*time.Minute, deleted("m2"))),
			now:   at(4 * time.Minute), when: manual(), code: domain.CodeTooSoon, retry: 3 * time.Minute},
		{name: "a manual backup by another person counts too",
			given: []given{{at: 0, actor: "bob", ev: requested("m1", domain.OriginManual)}}, now: at(time.Minute),
			when: manual(), code: domain.CodeTooSoon, retry: 4 * time.Minute},
	})
}

func TestDecideTooSoonMessage(t *testing.T) {
	a := fold(t, "crm", g(0, requested("m1", domain.OriginManual)))
	_, err := domain.Decide(a, manual(), at(time.Minute), domain.DefaultRules(), newIDFunc("new"))
	wantCode(t, err, domain.CodeTooSoon)
	if msg := domain.Public(err); !strings.Contains(msg, "2026-11-21T10:20:00Z") {
		t.Fatalf("message %q does not say when the next backup is allowed", msg)
	}
}

func TestDecideRequestFields(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("load Europe/Berlin: %v", err)
	}
	rulesIn := func(loc *time.Location) *domain.Rules {
		r := domain.DefaultRules()
		r.Location = loc
		return &r
	}
	summer := time.Date(2026, 8, 29, 22, 2, 0, 0, time.UTC)
	runDecide(t, []decideCase{
		{name: "default name, expires_at = creation + 60 days",
			now: t0, when: manual(),
			want: &domain.BackupRequested{BackupID: "new", Name: "November 21 Saturday 10:15",
				Origin: domain.OriginManual, ExpiresAt: time.Date(2027, 1, 20, 10, 15, 0, 0, time.UTC)}},
		{name: "expires_at is UTC and the name uses the rules' zone, whatever the zone of now",
			now: t0.In(ist), when: manual(),
			want: &domain.BackupRequested{BackupID: "new", Name: "November 21 Saturday 10:15",
				Origin: domain.OriginManual, ExpiresAt: time.Date(2027, 1, 20, 10, 15, 0, 0, time.UTC)}},
		{name: "default name in a fixed zone +05:30", rules: rulesIn(ist), now: t0, when: manual(),
			check: hasName("November 21 Saturday 15:45")},
		{name: "default name in a fixed zone crosses midnight", rules: rulesIn(ist), now: summer, when: manual(),
			check: hasName("August 30 Sunday 03:32")},
		{name: "default name in Europe/Berlin in winter (CET)", rules: rulesIn(berlin), now: t0, when: manual(),
			check: hasName("November 21 Saturday 11:15")},
		{name: "default name in Europe/Berlin in summer (CEST)", rules: rulesIn(berlin), now: summer, when: manual(),
			check: hasName("August 30 Sunday 00:02")},
		{name: "given name and description are trimmed and kept",
			now: t0, when: domain.RequestBackup{App: "crm", Name: ptr("  Before upgrade\t"), Description: "\n two\nlines\tand tab \n",
				Origin: domain.OriginNightly},
			want: &domain.BackupRequested{BackupID: "new", Name: "Before upgrade", Description: "two\nlines\tand tab",
				Origin: domain.OriginNightly, ExpiresAt: time.Date(2027, 1, 20, 10, 15, 0, 0, time.UTC)}},
		{name: "unknown origin refused", when: withOrigin("weekly"), code: domain.CodeInvalidArgument},
		{name: "invalid app id refused", when: domain.RequestBackup{App: "CRM"}, code: domain.CodeInvalidArgument},
	})
	// check that the expected expiry is really creation + 60 days.
	if got := time.Date(2027, 1, 20, 10, 15, 0, 0, time.UTC).Sub(t0); got != 60*day {
		t.Fatalf("test data: expiry is %v after t0, want 60 days", got)
	}
}

func TestDecideNames(t *testing.T) {
	req := func(name string) domain.RequestBackup { return domain.RequestBackup{App: "crm", Name: ptr(name)} }
	ren := func(name string) domain.RenameBackup {
		return domain.RenameBackup{App: "crm", BackupID: "b01", Name: name}
	}
	one := nBackups(1, domain.OriginNightly, domain.StatusReady)
	cases := []decideCase{
		{name: "request: 1 character", when: req("x"), check: hasName("x")},
		{name: "request: 100 characters", when: req(runes("a", 100)), check: hasName(runes("a", 100))},
		{name: "request: 100 two-byte runes", when: req(runes("é", 100)), check: hasName(runes("é", 100))},
		{name: "request: 100 four-byte runes", when: req(runes("😀", 100)), check: hasName(runes("😀", 100))},
		{name: "request: 100 after trimming", when: req("  " + runes("a", 100) + "  "), check: hasName(runes("a", 100))},
		{name: "request: 101 characters", when: req(runes("a", 101)), code: domain.CodeInvalidArgument},
		{name: "request: 101 two-byte runes", when: req(runes("é", 101)), code: domain.CodeInvalidArgument},
		{name: "request: given empty name (not the default)", when: req(""), code: domain.CodeInvalidArgument},
		{name: "request: only spaces", when: req(" \t\n "), code: domain.CodeInvalidArgument},
		{name: "request: NUL", when: req("a\x00b"), code: domain.CodeInvalidArgument},
		{name: "request: inner newline", when: req("a\nb"), code: domain.CodeInvalidArgument},
		{name: "request: inner tab", when: req("a\tb"), code: domain.CodeInvalidArgument},
		{name: "request: DEL", when: req("a\x7fb"), code: domain.CodeInvalidArgument},
		{name: "request: C1 control", when: req("a\u0085b"), code: domain.CodeInvalidArgument},
		{name: "request: invalid UTF-8", when: req("a\xffb"), code: domain.CodeInvalidArgument},
		{name: "request: description of 1000 characters",
			when: domain.RequestBackup{App: "crm", Description: runes("ü", 1000)}, check: isRequest(domain.OriginManual)},
		{name: "request: description of 1001 characters",
			when: domain.RequestBackup{App: "crm", Description: runes("ü", 1001)}, code: domain.CodeInvalidArgument},
		{name: "request: description with a control character",
			when: domain.RequestBackup{App: "crm", Description: "a\x01b"}, code: domain.CodeInvalidArgument},
		{name: "rename: trimmed", given: one, when: ren("  new name "),
			want: &domain.BackupRenamed{BackupID: "b01", Name: "new name", PreviousName: "name of b01"}},
		{name: "rename: 100 characters", given: one, when: ren(runes("z", 100)),
			want: &domain.BackupRenamed{BackupID: "b01", Name: runes("z", 100), PreviousName: "name of b01"}},
		{name: "rename: 101 characters", given: one, when: ren(runes("z", 101)), code: domain.CodeInvalidArgument},
		{name: "rename: empty after trim", given: one, when: ren("   "), code: domain.CodeInvalidArgument},
		{name: "rename: control character", given: one, when: ren("a\rb"), code: domain.CodeInvalidArgument},
	}
	runDecide(t, cases)
}

// lifecycle holds one nightly backup in each status: q queued, r running
// (attempt 2), ok ready, f failed, d deleted.
var lifecycle = concat(
	[]given{g(time.Hour, requested("q", domain.OriginNightly))},
	[]given{g(2*time.Hour, requested("r", domain.OriginNightly)), g(2*time.Hour+time.Second, started("r", 2))},
	inStatus("ok", 3*time.Hour, domain.OriginNightly, domain.StatusReady),
	inStatus("f", 4*time.Hour, domain.OriginNightly, domain.StatusFailed),
	inStatus("d", 5*time.Hour, domain.OriginNightly, domain.StatusReady),
	[]given{g(6*time.Hour, deleted("d"))},
)

func TestDecideTransitions(t *testing.T) {
	start := func(id string, attempt int) domain.StartBackup {
		return domain.StartBackup{App: "crm", BackupID: id, Attempt: attempt, Worker: "w9"}
	}
	complete := func(id string) domain.CompleteBackup {
		return domain.CompleteBackup{App: "crm", BackupID: id, Attempt: 2, SizeBytes: 10, SHA256: sha64, ItemCount: 2, SchemaVersion: 4}
	}
	fail := func(id, reason string) domain.FailBackup {
		return domain.FailBackup{App: "crm", BackupID: id, Reason: reason}
	}
	rename := func(id string) domain.RenameBackup {
		return domain.RenameBackup{App: "crm", BackupID: id, Name: "renamed"}
	}
	del := func(id string) domain.DeleteBackup { return domain.DeleteBackup{App: "crm", BackupID: id} }
	conflict := domain.CodeBackupStateConflict
	notFound := domain.CodeNotFound
	invalid := domain.CodeInvalidArgument
	long := runes("ß", 1001)

	cases := []decideCase{
		{name: "start queued", when: start("q", 1), want: &domain.BackupStarted{BackupID: "q", Attempt: 1, Worker: "w9"}},
		{name: "start queued with attempt 0", when: start("q", 0), code: invalid},
		{name: "start running with a higher attempt", when: start("r", 3), want: &domain.BackupStarted{BackupID: "r", Attempt: 3, Worker: "w9"}},
		{name: "start running with the same attempt", when: start("r", 2), code: conflict},
		{name: "start running with a lower attempt", when: start("r", 1), code: conflict},
		{name: "start ready", when: start("ok", 5), code: conflict},
		{name: "start failed", when: start("f", 5), code: conflict},
		{name: "start deleted", when: start("d", 1), code: notFound},
		{name: "start unknown", when: start("nope", 1), code: notFound},

		{name: "complete running", when: complete("r"),
			want: &domain.BackupCompleted{BackupID: "r", SizeBytes: 10, SHA256: sha64, ItemCount: 2, SchemaVersion: 4}},
		{name: "complete running with an empty archive", when: domain.CompleteBackup{App: "crm", BackupID: "r", Attempt: 2, SHA256: sha64},
			want: &domain.BackupCompleted{BackupID: "r", SHA256: sha64}},
		{name: "complete running by a stale attempt", when: domain.CompleteBackup{App: "crm", BackupID: "r", Attempt: 1, SHA256: sha64}, code: conflict},
		{name: "complete queued", when: complete("q"), code: conflict},
		{name: "complete ready", when: complete("ok"), code: conflict},
		{name: "complete failed", when: complete("f"), code: conflict},
		{name: "complete deleted", when: complete("d"), code: notFound},
		{name: "complete unknown", when: complete("nope"), code: notFound},
		{name: "complete with a 63-character sha", when: domain.CompleteBackup{App: "crm", BackupID: "r", SHA256: sha64[:63]}, code: invalid},
		{name: "complete with a 65-character sha", when: domain.CompleteBackup{App: "crm", BackupID: "r", SHA256: sha64 + "0"}, code: invalid},
		{name: "complete without a sha", when: domain.CompleteBackup{App: "crm", BackupID: "r"}, code: invalid},
		{name: "complete with a negative size", when: domain.CompleteBackup{App: "crm", BackupID: "r", SHA256: sha64, SizeBytes: -1}, code: invalid},
		{name: "complete with a negative item count", when: domain.CompleteBackup{App: "crm", BackupID: "r", SHA256: sha64, ItemCount: -1}, code: invalid},

		{name: "fail queued", when: fail("q", "no space"), want: &domain.BackupFailed{BackupID: "q", Reason: "no space"}},
		{name: "fail running", when: fail("r", "no space"), want: &domain.BackupFailed{BackupID: "r", Reason: "no space"}},
		{name: "fail without a reason", when: fail("r", ""), want: &domain.BackupFailed{BackupID: "r", Reason: "unknown"}},
		{name: "fail with a reason over 1000 runes: cut to 1000 runes", when: fail("r", long),
			want: &domain.BackupFailed{BackupID: "r", Reason: runes("ß", 1000)}},
		{name: "fail ready", when: fail("ok", "x"), code: conflict},
		{name: "fail failed", when: fail("f", "x"), code: conflict},
		{name: "fail deleted", when: fail("d", "x"), code: notFound},
		{name: "fail unknown", when: fail("nope", "x"), code: notFound},

		{name: "rename queued", when: rename("q"), want: &domain.BackupRenamed{BackupID: "q", Name: "renamed", PreviousName: "name of q"}},
		{name: "rename running", when: rename("r"), want: &domain.BackupRenamed{BackupID: "r", Name: "renamed", PreviousName: "name of r"}},
		{name: "rename ready", when: rename("ok"), want: &domain.BackupRenamed{BackupID: "ok", Name: "renamed", PreviousName: "name of ok"}},
		{name: "rename failed", when: rename("f"), want: &domain.BackupRenamed{BackupID: "f", Name: "renamed", PreviousName: "name of f"}},
		{name: "rename deleted", when: rename("d"), code: notFound},
		{name: "rename unknown", when: rename("nope"), code: notFound},

		{name: "delete queued", when: del("q"), want: &domain.BackupDeleted{BackupID: "q"}},
		{name: "delete running", when: del("r"), want: &domain.BackupDeleted{BackupID: "r"}},
		{name: "delete ready", when: del("ok"), want: &domain.BackupDeleted{BackupID: "ok"}},
		{name: "delete failed", when: del("f"), want: &domain.BackupDeleted{BackupID: "f"}},
		{name: "delete deleted", when: del("d"), code: notFound},
		{name: "delete unknown", when: del("nope"), code: notFound},

		{name: "start with an invalid app id", when: domain.StartBackup{BackupID: "q", Attempt: 1}, code: invalid},
		{name: "delete with an invalid app id", when: domain.DeleteBackup{App: "-crm", BackupID: "q"}, code: invalid},
	}
	for i := range cases {
		cases[i].given = lifecycle
	}
	runDecide(t, cases)
}

func TestDecideRenamePreviousNameIsTheLatest(t *testing.T) {
	a := fold(t, "crm", g(0, requested("b1", domain.OriginNightly)), g(time.Minute, renamed("b1", "second")))
	ev, err := domain.Decide(a, domain.RenameBackup{App: "crm", BackupID: "b1", Name: "third"}, later, domain.DefaultRules(), newIDFunc("x"))
	if err != nil {
		t.Fatal(err)
	}
	want := &domain.BackupRenamed{BackupID: "b1", Name: "third", PreviousName: "second"}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("event = %#v, want %#v", ev, want)
	}
}

func TestDecideCustomRules(t *testing.T) {
	zone := time.FixedZone("minus3", -3*3600)
	custom := domain.Rules{MaxBackups: 3, MinInterval: time.Minute, Retention: 7 * day, Location: zone, CommandMemory: 5}
	noInterval := custom
	noInterval.MinInterval = 0
	lastManual := []given{g(0, requested("m1", domain.OriginManual))}
	runDecide(t, []decideCase{
		{name: "3rd backup allowed", rules: &custom, given: nBackups(2, domain.OriginManual, domain.StatusReady),
			when: manual(), check: isRequest(domain.OriginManual)},
		{name: "4th backup refused", rules: &custom, given: nBackups(3, domain.OriginManual, domain.StatusReady),
			when: manual(), code: domain.CodeQuotaExceeded},
		{name: "59s after: too soon, retry after 1s", rules: &custom, given: lastManual, now: at(59 * time.Second),
			when: manual(), code: domain.CodeTooSoon, retry: time.Second},
		{name: "1m after: allowed", rules: &custom, given: lastManual, now: at(time.Minute),
			when: manual(), check: isRequest(domain.OriginManual)},
		{name: "4m after: allowed although the default interval would refuse", rules: &custom, given: lastManual,
			now: at(4 * time.Minute), when: manual(), check: isRequest(domain.OriginManual)},
		{name: "zero interval: same instant allowed", rules: &noInterval, given: lastManual, now: at(0),
			when: manual(), check: isRequest(domain.OriginManual)},
		{name: "retention and zone", rules: &custom, now: t0, when: manual(),
			want: &domain.BackupRequested{BackupID: "new", Name: "November 21 Saturday 07:15",
				Origin: domain.OriginManual, ExpiresAt: t0.Add(7 * day)}},
	})
}

func TestDecideUsesNewIDOnlyForRequests(t *testing.T) {
	a := fold(t, "crm", lifecycle...)
	calls := 0
	newID := func() string { calls++; return fmt.Sprintf("id%d", calls) }
	for _, cmd := range []domain.Command{
		domain.StartBackup{App: "crm", BackupID: "q", Attempt: 1},
		domain.RenameBackup{App: "crm", BackupID: "q", Name: "n"},
		domain.DeleteBackup{App: "crm", BackupID: "q"},
		domain.MarkCorrupt{App: "crm", BackupID: "ok"},
		recordUpload("up1"),
	} {
		ev, err := domain.Decide(a, cmd, later, domain.DefaultRules(), newID)
		if err != nil {
			t.Fatalf("%s: %v", cmd.CommandName(), err)
		}
		if strings.HasPrefix(domain.BackupID(ev), "id") {
			t.Fatalf("%s: event of backup %q, a new id", cmd.CommandName(), domain.BackupID(ev))
		}
	}
	ev, err := domain.Decide(a, domain.RequestBackup{App: "crm", Origin: domain.OriginNightly}, later, domain.DefaultRules(), newID)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || domain.BackupID(ev) != "id1" {
		t.Fatalf("newID called %d times, backup id %q; want once, id1", calls, domain.BackupID(ev))
	}
}

func TestCommandNamesAndApps(t *testing.T) {
	cases := []struct {
		cmd  domain.Command
		name string
	}{
		{domain.RequestBackup{App: "a1"}, "backup.request"},
		{domain.StartBackup{App: "a1"}, "backup.start"},
		{domain.CompleteBackup{App: "a1"}, "backup.complete"},
		{domain.FailBackup{App: "a1"}, "backup.fail"},
		{domain.RenameBackup{App: "a1"}, "backup.rename"},
		{domain.DeleteBackup{App: "a1"}, "backup.delete"},
		{domain.RecordUpload{App: "a1"}, "backup.upload"},
		{domain.MarkCorrupt{App: "a1"}, "backup.mark_corrupt"},
	}
	for _, tc := range cases {
		if got := tc.cmd.CommandName(); got != tc.name {
			t.Errorf("CommandName of %T = %q, want %q", tc.cmd, got, tc.name)
		}
		if got := tc.cmd.AppID(); got != "a1" {
			t.Errorf("AppID of %T = %q, want a1", tc.cmd, got)
		}
	}
}

// TestDecideCompleteNeedsHexSHA is a regression test for an oddity reported
// to the lead: CompleteBackup checks only the length of the SHA-256 although
// its error says it must be hex.
func TestDecideCompleteNeedsHexSHA(t *testing.T) {
	a := fold(t, "crm", lifecycle...)
	for _, sum := range []string{runes("z", 64), "g" + sha64[1:]} {
		_, err := domain.Decide(a, domain.CompleteBackup{App: "crm", BackupID: "r", SHA256: sum}, later, domain.DefaultRules(), newIDFunc("x"))
		if err == nil {
			t.Fatalf("SHA-256 %q accepted", sum)
		}
		wantCode(t, err, domain.CodeInvalidArgument)
	}
}

// TestDecideIntervalFromTheLatestManualBackup is a regression test for an
// oddity reported to the lead: events of one app may carry times out of
// order (processes with skewed clocks), and evolve then moves the last
// manual backup time backwards, shortening the interval.
func TestDecideIntervalFromTheLatestManualBackup(t *testing.T) {
	a := fold(t, "crm",
		g(10*time.Minute, requested("m1", domain.OriginManual)),
		g(9*time.Minute, requested("m2", domain.OriginManual)), // written later by a process whose clock is behind
	)
	_, err := domain.Decide(a, manual(), at(14*time.Minute+30*time.Second), domain.DefaultRules(), newIDFunc("x"))
	if err == nil {
		t.Fatal("the interval counted from an earlier manual backup")
	}
	wantCode(t, err, domain.CodeTooSoon)
	if got := domain.RetryAfter(err); got != 30*time.Second {
		t.Fatalf("RetryAfter = %v, want 30s", got)
	}
}
