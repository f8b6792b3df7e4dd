package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// recordUpload returns the command that records the archive of imported()
// as backup id of crm, with the default name.
func recordUpload(id string) domain.RecordUpload {
	return domain.RecordUpload{App: "crm", BackupID: id, Archive: imported()}
}

// withArchive returns recordUpload(id) with the archive changed by edit.
func withArchive(id string, edit func(a *domain.ImportedArchive)) domain.RecordUpload {
	c := recordUpload(id)
	edit(&c.Archive)
	return c
}

// wantUpload returns the event of recordUpload(id) decided at now under
// the default rules, named name.
func wantUpload(id, name string, now time.Time) *domain.BackupUploaded {
	return &domain.BackupUploaded{BackupID: id, Name: name, ExpiresAt: now.Add(60 * day).UTC(),
		SizeBytes: 2048, SHA256: sha64, ItemCount: 5, SchemaVersion: 3, Source: "kv",
		Original: domain.ArchiveOrigin{App: "erp", BackupID: "orig-1", Name: "Before upgrade", CreatedAt: origCreated}}
}

// isUpload accepts a BackupUploaded of backup id.
func isUpload(id string) func(t *testing.T, ev domain.Event) {
	return func(t *testing.T, ev domain.Event) {
		t.Helper()
		u, ok := ev.(*domain.BackupUploaded)
		if !ok {
			t.Fatalf("event = %T, want *domain.BackupUploaded", ev)
		}
		if u.BackupID != id {
			t.Fatalf("backup id = %q, want %q", u.BackupID, id)
		}
	}
}

func TestDecideRecordUploadFields(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	custom := domain.DefaultRules()
	custom.Retention, custom.Location = 7*day, time.FixedZone("minus3", -3*3600)
	named := func(name, desc string) domain.RecordUpload {
		c := recordUpload("up1")
		c.Name, c.Description = ptr(name), desc
		return c
	}
	withName := func(name string) *domain.BackupUploaded { return wantUpload("up1", name, later) }
	runDecide(t, []decideCase{
		{name: "default name is the upload time, expires_at = now + 60 days, the archive's facts copied",
			when: recordUpload("up1"), want: wantUpload("up1", "November 23 Monday 10:15", later)},
		{name: "expires_at is UTC and the name uses the rules' zone, whatever the zone of now",
			now: later.In(ist), when: recordUpload("up1"), want: wantUpload("up1", "November 23 Monday 10:15", later)},
		{name: "retention and zone of the rules", rules: &custom, now: t0, when: recordUpload("up1"),
			check: func(t *testing.T, ev domain.Event) {
				u := ev.(*domain.BackupUploaded)
				if u.Name != "November 21 Saturday 07:15" || !u.ExpiresAt.Equal(t0.Add(7*day)) {
					t.Fatalf("name %q expires %v; want the rules' zone and retention", u.Name, u.ExpiresAt)
				}
			}},
		{name: "given name kept", when: named("Copy of erp", ""), want: withName("Copy of erp")},
		{name: "given name and description trimmed", when: named("  Copy of erp\t", "\n from the old\nserver \n"),
			check: func(t *testing.T, ev domain.Event) {
				u := ev.(*domain.BackupUploaded)
				if u.Name != "Copy of erp" || u.Description != "from the old\nserver" {
					t.Fatalf("name %q description %q", u.Name, u.Description)
				}
			}},
		{name: "the manifest's description is not copied: only the uploader's is the backup's", when: recordUpload("up1"),
			check: func(t *testing.T, ev domain.Event) {
				if d := ev.(*domain.BackupUploaded).Description; d != "" {
					t.Fatalf("description = %q, want none (the uploader gave none)", d)
				}
			}},
		{name: "given name of 100 four-byte runes", when: named(runes("😀", 100), ""), want: withName(runes("😀", 100))},
		{name: "invalid UTF-8 in the archive's strings is made valid",
			when: withArchive("up1", func(a *domain.ImportedArchive) {
				a.App, a.BackupID, a.Name, a.Source = "e\xffrp", "orig\xfe-1", "caf\xe9", "k\xc3v"
			}),
			check: func(t *testing.T, ev domain.Event) {
				u := ev.(*domain.BackupUploaded)
				want := domain.ArchiveOrigin{App: "e\uFFFDrp", BackupID: "orig\uFFFD-1", Name: "caf\uFFFD", CreatedAt: origCreated}
				if u.Original != want || u.Source != "k\uFFFDv" {
					t.Fatalf("original %+v source %q, want %+v and k\uFFFDv", u.Original, u.Source, want)
				}
			}},
		{name: "the original's creation time is kept in UTC",
			when: withArchive("up1", func(a *domain.ImportedArchive) {
				a.CreatedAt = time.Date(2026, 8, 29, 17, 32, 0, 500, ist)
			}),
			check: func(t *testing.T, ev domain.Event) {
				got := ev.(*domain.BackupUploaded).Original.CreatedAt
				if !got.Equal(origCreated.Add(500)) || got.Location() != time.UTC {
					t.Fatalf("original created_at = %v, want %v in UTC", got, origCreated.Add(500))
				}
			}},
		{name: "an empty archive", when: withArchive("up1", func(a *domain.ImportedArchive) { a.SizeBytes, a.ItemCount = 0, 0 }),
			check: isUpload("up1")},
		{name: "the archive of one of the app's own live backups is a new entry",
			given: lifecycle, when: withArchive("up1", func(a *domain.ImportedArchive) { a.App, a.BackupID = "crm", "ok" }),
			check: isUpload("up1")},
		{name: "the same archive uploaded twice gives two entries",
			given: []given{g(0, uploaded("up1"))}, when: recordUpload("up2"), check: isUpload("up2")},
	})
}

func TestDecideRecordUploadRules(t *testing.T) {
	lastManual := []given{g(0, requested("m1", domain.OriginManual))}
	custom := domain.DefaultRules()
	custom.MaxBackups = 3
	full := nBackups(10, domain.OriginManual, domain.StatusReady)
	invalid, conflict := domain.CodeInvalidArgument, domain.CodeBackupStateConflict
	sha := func(s string) domain.RecordUpload {
		return withArchive("up1", func(a *domain.ImportedArchive) { a.SHA256 = s })
	}
	cases := []decideCase{
		{name: "quota: 10th backup allowed (9 ready)", given: nBackups(9, domain.OriginManual, domain.StatusReady),
			when: recordUpload("up1"), check: isUpload("up1")},
		{name: "quota: 11th refused (10 ready)", given: full, when: recordUpload("up1"), code: domain.CodeQuotaExceeded},
		{name: "quota: 11th refused (10 queued)", given: nBackups(10, domain.OriginNightly, domain.StatusQueued),
			when: recordUpload("up1"), code: domain.CodeQuotaExceeded},
		{name: "quota: 11th refused (10 running)", given: nBackups(10, domain.OriginNightly, domain.StatusRunning),
			when: recordUpload("up1"), code: domain.CodeQuotaExceeded},
		{name: "quota: 11th refused (10 uploads)", given: nUploads(10), when: recordUpload("up11"), code: domain.CodeQuotaExceeded},
		{name: "quota: uploads count for requests too", given: nUploads(10), when: manual(), code: domain.CodeQuotaExceeded},
		{name: "quota: failed backups do not count (9 ready, 5 failed)",
			given: concat(nBackups(9, domain.OriginManual, domain.StatusReady), failedN(5)),
			when:  recordUpload("up1"), check: isUpload("up1")},
		{name: "quota: deleted backups do not count", given: append(nUploads(10), g(20*time.Hour, deleted("u03"))),
			when: recordUpload("up1"), check: isUpload("up1")},
		{name: "intended: a corrupt backup still counts until it is deleted",
			given: append(nUploads(10), g(20*time.Hour, corrupted("u03"))), when: recordUpload("up1"), code: domain.CodeQuotaExceeded},
		{name: "quota of the rules: 4th refused", rules: &custom, given: nUploads(3), when: recordUpload("up4"),
			code: domain.CodeQuotaExceeded},

		{name: "no interval: right after a manual backup", given: lastManual, now: at(time.Second),
			when: recordUpload("up1"), check: isUpload("up1")},
		{name: "no interval: at the same instant as a manual backup", given: lastManual, now: at(0),
			when: recordUpload("up1"), check: isUpload("up1")},
		{name: "an upload does not start the interval of manual backups",
			given: []given{g(0, uploaded("up1"))}, now: at(time.Second), when: manual(), check: isRequest(domain.OriginManual)},
		{name: "an upload does not restart the interval of manual backups",
			given: append(lastManual, g(4*time.Minute, uploaded("up1"))), now: at(5 * time.Minute),
			when: manual(), check: isRequest(domain.OriginManual)},

		{name: "id of a queued backup", given: lifecycle, when: recordUpload("q"), code: conflict},
		{name: "id of a running backup", given: lifecycle, when: recordUpload("r"), code: conflict},
		{name: "id of a ready backup", given: lifecycle, when: recordUpload("ok"), code: conflict},
		{name: "id of a failed backup", given: lifecycle, when: recordUpload("f"), code: conflict},
		{name: "id of a deleted backup", given: lifecycle, when: recordUpload("d"), code: conflict},
		{name: "id of an uploaded backup", given: []given{g(0, uploaded("up1"))}, when: recordUpload("up1"), code: conflict},
		{name: "empty id", when: recordUpload(""), code: invalid},

		{name: "sha: not hex", when: sha("g" + sha64[1:]), code: invalid},
		{name: "sha: uppercase", when: sha(strings.ToUpper(sha64)), code: invalid},
		{name: "sha: 63 characters", when: sha(sha64[:63]), code: invalid},
		{name: "sha: 65 characters", when: sha(sha64 + "0"), code: invalid},
		{name: "sha: empty", when: sha(""), code: invalid},
		{name: "negative size", when: withArchive("up1", func(a *domain.ImportedArchive) { a.SizeBytes = -1 }), code: invalid},
		{name: "negative item count", when: withArchive("up1", func(a *domain.ImportedArchive) { a.ItemCount = -1 }), code: invalid},
		{name: "given empty name (not the default)", when: domain.RecordUpload{App: "crm", BackupID: "up1", Name: ptr(" "), Archive: imported()},
			code: invalid},
		{name: "name of 101 characters", when: domain.RecordUpload{App: "crm", BackupID: "up1", Name: ptr(runes("a", 101)), Archive: imported()},
			code: invalid},
		{name: "name with a control character", when: domain.RecordUpload{App: "crm", BackupID: "up1", Name: ptr("a\x00b"), Archive: imported()},
			code: invalid},
		{name: "description of 1001 characters", when: domain.RecordUpload{App: "crm", BackupID: "up1", Description: runes("ü", 1001), Archive: imported()},
			code: invalid},
		{name: "invalid app id", when: domain.RecordUpload{App: "CRM", BackupID: "up1", Archive: imported()}, code: invalid},

		{name: "a bad archive is refused before the quota", given: full, when: sha(""), code: invalid},
		{name: "a bad name is refused before the quota", given: full,
			when: domain.RecordUpload{App: "crm", BackupID: "up1", Name: ptr(""), Archive: imported()}, code: invalid},
		{name: "a taken id is refused before the quota", given: full, when: recordUpload("b01"), code: conflict},
	}
	runDecide(t, cases)
}

func TestDecideMarkCorrupt(t *testing.T) {
	given := concat(lifecycle,
		inStatus("c", 7*time.Hour, domain.OriginNightly, domain.StatusReady),
		[]given{g(8*time.Hour, corrupted("c")), g(9*time.Hour, uploaded("u"))},
	)
	mark := func(id, reason string) domain.MarkCorrupt {
		return domain.MarkCorrupt{App: "crm", BackupID: id, Reason: reason}
	}
	conflict := domain.CodeBackupStateConflict
	cases := []decideCase{
		{name: "ready", when: mark("ok", "archive does not match the ledger: sha256 mismatch"),
			want: &domain.BackupCorrupted{BackupID: "ok", Reason: "archive does not match the ledger: sha256 mismatch"}},
		{name: "uploaded (ready)", when: mark("u", "size"), want: &domain.BackupCorrupted{BackupID: "u", Reason: "size"}},
		{name: "without a reason: the default text", when: mark("ok", ""),
			want: &domain.BackupCorrupted{BackupID: "ok", Reason: "archive does not match the ledger"}},
		{name: "invalid UTF-8 in the reason is made valid", when: mark("ok", "open caf\xe9"),
			want: &domain.BackupCorrupted{BackupID: "ok", Reason: "open caf\uFFFD"}},
		{name: "queued", when: mark("q", "x"), code: conflict},
		{name: "running", when: mark("r", "x"), code: conflict},
		{name: "failed", when: mark("f", "x"), code: conflict},
		{name: "already corrupt", when: mark("c", "x"), code: conflict},
		{name: "deleted", when: mark("d", "x"), code: domain.CodeNotFound},
		{name: "unknown", when: mark("nope", "x"), code: domain.CodeNotFound},
		{name: "invalid app id", when: domain.MarkCorrupt{App: "", BackupID: "ok"}, code: domain.CodeInvalidArgument},
	}
	for i := range cases {
		cases[i].given = given
	}
	runDecide(t, cases)
}

func TestDecideAfterCorruption(t *testing.T) {
	// A corrupt backup stays in the list: it can be renamed and deleted.
	given := concat(inStatus("c", time.Hour, domain.OriginNightly, domain.StatusReady), []given{g(2*time.Hour, corrupted("c"))})
	runDecide(t, []decideCase{
		{name: "rename", given: given, when: domain.RenameBackup{App: "crm", BackupID: "c", Name: "broken"},
			want: &domain.BackupRenamed{BackupID: "c", Name: "broken", PreviousName: "name of c"}},
		{name: "delete", given: given, when: domain.DeleteBackup{App: "crm", BackupID: "c"}, want: &domain.BackupDeleted{BackupID: "c"}},
		{name: "complete again", given: given,
			when: domain.CompleteBackup{App: "crm", BackupID: "c", Attempt: 1, SHA256: sha64}, code: domain.CodeBackupStateConflict},
	})
}
