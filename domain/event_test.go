package domain_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenTime is the time of every golden envelope: UTC, millisecond
// precision, as the ledger writes it.
var goldenTime = time.Date(2026, 11, 21, 10, 15, 0, 123_000_000, time.UTC)

// goldenEvents holds one event of each registered type, with every field
// set, as frozen in testdata/events/<type>.json.
var goldenEvents = []domain.Event{
	&domain.BackupRequested{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", Name: "Before upgrade", Description: "all of crm\nbefore 2.0",
		Origin: domain.OriginManual, ExpiresAt: time.Date(2027, 1, 20, 10, 15, 0, 123_000_000, time.UTC)},
	&domain.BackupStarted{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", Attempt: 2, Worker: "backupd-1"},
	&domain.BackupCompleted{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", SizeBytes: 1048576, SHA256: sha64, ItemCount: 42, SchemaVersion: 3},
	&domain.BackupFailed{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", Reason: "export: source unavailable"},
	&domain.BackupRenamed{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", Name: "After upgrade", PreviousName: "Before upgrade"},
	&domain.BackupDeleted{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B"},
	&domain.BackupUploaded{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", Name: "Copy from staging", Description: "brought in\nby hand",
		ExpiresAt: time.Date(2027, 1, 20, 10, 15, 0, 123_000_000, time.UTC), SizeBytes: 2097152, SHA256: sha64, ItemCount: 17,
		SchemaVersion: 4, Source: "dir",
		Original: domain.ArchiveOrigin{App: "erp", BackupID: "01JD5Q3ZK6N8W2X4Y7T9R1M3P5", Name: "Before upgrade",
			CreatedAt: time.Date(2026, 8, 29, 12, 2, 0, 500_000_000, time.UTC)}},
	&domain.BackupCorrupted{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", Reason: "archive does not match the ledger: sha256 mismatch"},
	&domain.BackupExpired{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", ExpiresAt: time.Date(2027, 1, 20, 10, 15, 0, 123_000_000, time.UTC)},
	&domain.BackupVerified{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", SHA256: sha64, ItemCount: 42},
	// Maintenance and restores (DESIGN §6).
	&domain.MaintenanceStarted{Reason: "restore 01JDAX3N3Z8Q1V0G5Y9F6K2M4F", RestoreID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4F"},
	&domain.MaintenanceEnded{Reason: "restore 01JDAX3N3Z8Q1V0G5Y9F6K2M4F completed", RestoreID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4F"},
	&domain.RestoreRequested{RestoreID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4F", SourceApp: "erp", BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B",
		BackupSHA256: sha64, BackupSizeBytes: 1048576, BackupSchema: 1, BackupSource: "kv", PreRestoreBackup: true,
		AutoEndMaintenance: true, NewApp: true},
	&domain.RestorePreBackupReady{RestoreID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4F", BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4G"},
	&domain.RestoreArchiveVerified{RestoreID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4F", SHA256: sha64},
	&domain.RestoreImported{RestoreID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4F", Items: 42, FromSchema: 1, ToSchema: 2, Migrations: []string{"kv 1→2: example"}, Digest: sha64},
	&domain.RestoreCompleted{RestoreID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4F", Digest: sha64, PreRestoreBackup: "01JDAX3N3Z8Q1V0G5Y9F6K2M4G"},
	&domain.RestoreFailed{RestoreID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4F", Step: "import", Reason: "source unavailable", PreRestoreBackup: "01JDAX3N3Z8Q1V0G5Y9F6K2M4G"},
	// Identity events (subject ledger.events._identity).
	&domain.OrgCreated{Org: "acme", Name: "ACME Corp."},
	&domain.MemberAdded{Org: "acme", User: "alice"},
	&domain.MemberRemoved{Org: "acme", User: "alice"},
	&domain.UserCreated{User: "alice", Name: "Alice Liddell", Email: "alice@example.com"},
	&domain.UserDisabled{User: "alice"},
	&domain.UserEnabled{User: "alice"},
	&domain.PasswordChanged{User: "alice", By: domain.ChangedByUser, RevokedSessions: []string{"01JDAX3N3Z8Q1V0G5Y9F6K2M4D"}},
	&domain.PasswordFailed{User: "alice", Purpose: "login", LockedUntil: time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)},
	&domain.AppRegistered{App: "crm", Org: "acme", Admin: "alice"},
	&domain.AdminGranted{App: "crm", User: "alice"},
	&domain.AdminRevoked{App: "crm", User: "alice"},
	&domain.TokenCreated{Token: "01JDAX3N3Z8Q1V0G5Y9F6K2M4C", User: "alice", Name: "ci", Kind: domain.TokenAPI,
		ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	&domain.TokenRevoked{Token: "01JDAX3N3Z8Q1V0G5Y9F6K2M4C"},
	// Lifecycle (issue 6).
	&domain.ScheduleSet{Enabled: true, Time: "02:30", TimeZone: "Europe/Berlin"},
	&domain.NightlySkipped{Night: "2026-11-22", Try: 1, Code: "backup_quota_exceeded", Reason: "app crm already holds 10 backups"},
	&domain.ArchiveOrphanRemoved{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", SizeBytes: 1048576,
		StoredAt: time.Date(2026, 11, 20, 9, 0, 0, 250_000_000, time.UTC), Reason: "its backup failed"},
	&domain.WebhookRegistered{Webhook: "01JDAX3N3Z8Q1V0G5Y9F6K2M4H", App: "crm", URL: "https://hooks.example.com/crm",
		Events: []string{"backup.completed", "backup.failed"}},
	&domain.WebhookRemoved{Webhook: "01JDAX3N3Z8Q1V0G5Y9F6K2M4H"},
	// Signing keys (subject ledger.events._keys): the keys of the seeds
	// 32×0x01 and 32×0x02, the MAC key 32×0x07.
	&domain.KeyCreated{KeyID: "34750f98bd59fcfc", Algorithm: "ed25519", PublicKey: "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=",
		MACKeySHA256: "4bb06f8e4e3a7715d201d573d0aa423762e55dabd61a2c02278fa56cc6d294e0"},
	&domain.KeyRotated{KeyID: "6a3803d5f059902a", Algorithm: "ed25519", PublicKey: "gTl3Dqh9F19Wo1Rmw0x+zMuNipG07jeiXfYPW4/Js5Q=",
		PreviousKeyID: "34750f98bd59fcfc"},
}

// goldenVariants are further frozen forms of registered types, in
// testdata/events/<file>.json: optional fields that the event of
// goldenEvents leaves empty (or sets) must keep their JSON too.
var goldenVariants = []struct {
	file string
	ev   domain.Event
}{
	// backup.completed's source came with archives (issue 3); events
	// written before it have none, and the golden above keeps that form.
	{"backup.completed.v1-with-source", &domain.BackupCompleted{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", SizeBytes: 1048576,
		SHA256: sha64, ItemCount: 42, SchemaVersion: 3, Source: "kv"}},
	// An app the server administrator registered has no first admin.
	{"app.registered.v1-by-server-admin", &domain.AppRegistered{App: "crm", Org: "acme"}},
	// The pre-restore backup names its restore.
	{"backup.requested.v1-pre-restore", &domain.BackupRequested{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", Name: "Before restore",
		Origin: domain.OriginPreRestore, ExpiresAt: time.Date(2027, 1, 20, 10, 15, 0, 123_000_000, time.UTC), RestoreID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4F"}},
	// A restore without the optional parts.
	{"restore.requested.v1-minimal", &domain.RestoreRequested{RestoreID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4F", SourceApp: "crm",
		BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", BackupSHA256: sha64, BackupSchema: 1, BackupSource: "kv"}},
	// A wrong password that did not lock, and a token without expiry.
	{"user.password_failed.v1-not-locked", &domain.PasswordFailed{User: "alice", Purpose: "restore"}},
	// A password change from before who made it and the sessions it
	// ended were recorded.
	{"user.password_changed.v1-before-by", &domain.PasswordChanged{User: "alice"}},
	{"token.created.v1-no-expiry", &domain.TokenCreated{Token: "01JDAX3N3Z8Q1V0G5Y9F6K2M4D", User: "alice", Name: "laptop", Kind: domain.TokenSession}},
	// A nightly backup names its night and try.
	{"backup.requested.v1-nightly", &domain.BackupRequested{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", Name: "November 22 Sunday 02:00",
		Description: "Nightly backup of 2026-11-22 (try 2 of 3)", Origin: domain.OriginNightly,
		ExpiresAt: time.Date(2027, 1, 21, 2, 0, 0, 0, time.UTC), Night: "2026-11-22", Try: 2}},
	// An organisation's webhook.
	{"webhook.registered.v1-org", &domain.WebhookRegistered{Webhook: "01JDAX3N3Z8Q1V0G5Y9F6K2M4J", Org: "acme",
		URL: "http://hooks.internal:8080/backups", Events: []string{"backup.corrupted", "restore.failed"}}},
	// backup.uploaded's description is optional, its source is not.
	{"backup.uploaded.v1-minimal", &domain.BackupUploaded{BackupID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4B", Name: "n",
		ExpiresAt: time.Date(2027, 1, 20, 10, 15, 0, 123_000_000, time.UTC), SHA256: sha64}},
}

// golden is one frozen event and the file (without .json) it is frozen in.
type golden struct {
	file string
	ev   domain.Event
}

// goldens returns every frozen event: one per registered type, then the
// variants.
func goldens() []golden {
	var out []golden
	for _, ev := range goldenEvents {
		out = append(out, golden{ev.EventType(), ev})
	}
	for _, v := range goldenVariants {
		out = append(out, golden{v.file, v.ev})
	}
	return out
}

// goldenEnvelope returns the envelope of ev with every field set.
func goldenEnvelope(t *testing.T, ev domain.Event) domain.Envelope {
	t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal %s: %v", ev.EventType(), err)
	}
	app := domain.IdentityStream
	for _, p := range []string{"backup.", "restore.", "maintenance.", "schedule.", "nightly.", "archive."} {
		if strings.HasPrefix(ev.EventType(), p) {
			app = "crm" // on the app's subject
		}
	}
	prev := domain.HashEvent([]byte("previous event"))
	if strings.HasPrefix(ev.EventType(), "key.") {
		app = domain.KeysStream
		if ev.EventType() == domain.TypeKeyCreated {
			prev = "" // the first event of its subject, always
		}
	}
	return domain.Envelope{
		ID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4E", Type: ev.EventType(), Version: 1, App: app, Time: goldenTime,
		Actor: "alice", CommandID: "idem-key.1", CorrelationID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4C",
		CausationID: "01JDAX3N3Z8Q1V0G5Y9F6K2M4D", PrevHash: prev, Data: data,
	}
}

func goldenPath(typ string) string { return filepath.Join("testdata", "events", typ+".json") }

// indent returns the indented form of compact JSON; whitespace is the only
// difference, so the golden freezes the exact field names, order and values.
func indent(t *testing.T, compact []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, compact, "", "  "); err != nil {
		t.Fatalf("indent: %v", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

func TestEventGoldens(t *testing.T) {
	for _, gd := range goldens() {
		ev := gd.ev
		t.Run(gd.file, func(t *testing.T) {
			env := goldenEnvelope(t, ev)
			body, err := json.Marshal(env)
			if err != nil {
				t.Fatalf("marshal envelope: %v", err)
			}
			got := indent(t, body)
			path := goldenPath(gd.file)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run go test -run TestEventGoldens -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("JSON of %s changed; events are never changed incompatibly (DESIGN §3).\n got:\n%s\nwant:\n%s",
					ev.EventType(), got, want)
			}
		})
	}
}

func TestGoldensCoverEveryRegisteredType(t *testing.T) {
	var golden []string
	for _, ev := range goldenEvents {
		golden = append(golden, ev.EventType())
	}
	registered := domain.EventTypes()
	slices.Sort(golden)
	slices.Sort(registered)
	if !slices.Equal(golden, registered) {
		t.Fatalf("golden events %v, registered types %v", golden, registered)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fromFiles, want []string
	for _, f := range files {
		fromFiles = append(fromFiles, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	for _, gd := range goldens() {
		want = append(want, gd.file)
	}
	slices.Sort(fromFiles)
	slices.Sort(want)
	if !slices.Equal(fromFiles, want) {
		t.Fatalf("golden files %v, frozen events %v", fromFiles, want)
	}
	for _, v := range goldenVariants {
		if !strings.HasPrefix(v.file, v.ev.EventType()+".v1-") {
			t.Errorf("variant file %q does not name its type and version", v.file)
		}
	}
}

// The registry holds exactly one entry per event type, the one of its
// golden event, at the version the goldens are written with; its
// constructor makes data of that very type.
func TestEventRegistryHasOneEntryPerType(t *testing.T) {
	defs := domain.EventDefs()
	entries := map[string]int{}
	for _, d := range defs {
		entries[d.Type]++
	}
	for _, ev := range goldenEvents {
		typ := ev.EventType()
		t.Run(typ, func(t *testing.T) {
			if n := entries[typ]; n != 1 {
				t.Fatalf("%d registry entries, want exactly one", n)
			}
			i := slices.IndexFunc(defs, func(d domain.EventDef) bool { return d.Type == typ })
			def := defs[i]
			if def.Version != goldenEnvelope(t, ev).Version {
				t.Fatalf("registered version %d, golden envelope version %d", def.Version, goldenEnvelope(t, ev).Version)
			}
			if def.Version == 1 && def.Upcasts {
				t.Fatalf("version 1 has no older version to upcast")
			}
			got, err := domain.DecodeEvent(&domain.Envelope{Type: typ, Version: def.Version, Data: json.RawMessage(`{}`)})
			if err != nil {
				t.Fatalf("DecodeEvent of empty data: %v", err)
			}
			if got.EventType() != typ || reflect.TypeOf(got) != reflect.TypeOf(ev) {
				t.Fatalf("constructor makes %T (%s), want %T", got, got.EventType(), ev)
			}
		})
	}
	if len(defs) != len(goldenEvents) {
		t.Fatalf("%d registry entries, %d golden events (one per type)", len(defs), len(goldenEvents))
	}
	if !slices.IsSortedFunc(defs, func(a, b domain.EventDef) int { return strings.Compare(a.Type, b.Type) }) {
		t.Fatalf("EventDefs not sorted by type: %v", defs)
	}
}

func TestEventTypes(t *testing.T) {
	want := []string{
		domain.TypeBackupCompleted, domain.TypeBackupCorrupted, domain.TypeBackupDeleted, domain.TypeBackupFailed,
		domain.TypeBackupRenamed, domain.TypeBackupRequested, domain.TypeBackupStarted, domain.TypeBackupUploaded,
		domain.TypeAdminGranted, domain.TypeAdminRevoked, domain.TypeAppRegistered, domain.TypeOrgCreated,
		domain.TypeMemberAdded, domain.TypeMemberRemoved, domain.TypeTokenCreated, domain.TypeTokenRevoked,
		domain.TypeUserCreated, domain.TypeUserDisabled, domain.TypeUserEnabled, domain.TypePasswordChanged,
		domain.TypePasswordFailed,
		domain.TypeMaintenanceStarted, domain.TypeMaintenanceEnded, domain.TypeRestoreRequested, domain.TypeRestorePreBackup,
		domain.TypeRestoreArchiveVerified, domain.TypeRestoreImported, domain.TypeRestoreCompleted, domain.TypeRestoreFailed,
		domain.TypeBackupExpired, domain.TypeBackupVerified,
		domain.TypeScheduleSet, domain.TypeNightlySkipped, domain.TypeArchiveOrphanRemoved,
		domain.TypeWebhookRegistered, domain.TypeWebhookRemoved,
		domain.TypeKeyCreated, domain.TypeKeyRotated,
	}
	slices.Sort(want)
	got := domain.EventTypes()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("EventTypes() = %v, want %v", got, want)
	}
	names := map[string]string{
		domain.TypeBackupRequested: "backup.requested", domain.TypeBackupStarted: "backup.started",
		domain.TypeBackupCompleted: "backup.completed", domain.TypeBackupFailed: "backup.failed",
		domain.TypeBackupRenamed: "backup.renamed", domain.TypeBackupDeleted: "backup.deleted",
		domain.TypeBackupUploaded: "backup.uploaded", domain.TypeBackupCorrupted: "backup.corrupted",
		domain.TypeOrgCreated: "org.created", domain.TypeMemberAdded: "org.member_added",
		domain.TypeMemberRemoved: "org.member_removed", domain.TypeUserCreated: "user.created",
		domain.TypeUserDisabled: "user.disabled", domain.TypeUserEnabled: "user.enabled",
		domain.TypePasswordChanged: "user.password_changed", domain.TypePasswordFailed: "user.password_failed",
		domain.TypeAppRegistered: "app.registered", domain.TypeAdminGranted: "app.admin_granted",
		domain.TypeAdminRevoked: "app.admin_revoked", domain.TypeTokenCreated: "token.created",
		domain.TypeTokenRevoked:       "token.revoked",
		domain.TypeMaintenanceStarted: "maintenance.started", domain.TypeMaintenanceEnded: "maintenance.ended",
		domain.TypeRestoreRequested: "restore.requested", domain.TypeRestorePreBackup: "restore.pre_backup_ready",
		domain.TypeRestoreArchiveVerified: "restore.archive_verified", domain.TypeRestoreImported: "restore.imported",
		domain.TypeRestoreCompleted: "restore.completed", domain.TypeRestoreFailed: "restore.failed",
		domain.TypeBackupExpired: "backup.expired", domain.TypeBackupVerified: "backup.verified",
		domain.TypeScheduleSet: "schedule.set", domain.TypeNightlySkipped: "nightly.skipped",
		domain.TypeArchiveOrphanRemoved: "archive.orphan_removed",
		domain.TypeWebhookRegistered:    "webhook.registered", domain.TypeWebhookRemoved: "webhook.removed",
		domain.TypeKeyCreated: "key.created", domain.TypeKeyRotated: "key.rotated",
	}
	for c, n := range names {
		if c != n {
			t.Errorf("type constant %q, want the frozen name %q", c, n)
		}
	}
}

func TestDecodeEventRoundTripsGoldens(t *testing.T) {
	for _, gd := range goldens() {
		want := gd.ev
		t.Run(gd.file, func(t *testing.T) {
			raw, err := os.ReadFile(goldenPath(gd.file))
			if err != nil {
				t.Fatal(err)
			}
			var env domain.Envelope
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&env); err != nil {
				t.Fatalf("decode envelope: %v", err)
			}
			wantEnv := goldenEnvelope(t, want)
			gotData := env.Data
			env.Data, wantEnv.Data = nil, nil
			if !reflect.DeepEqual(env, wantEnv) {
				t.Fatalf("envelope = %+v, want %+v", env, wantEnv)
			}
			env.Data = gotData
			ev, err := domain.DecodeEvent(&env)
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			if !reflect.DeepEqual(ev, want) {
				t.Fatalf("DecodeEvent = %#v, want %#v", ev, want)
			}
			if ev.EventType() != env.Type {
				t.Fatalf("EventType() = %q, envelope type %q", ev.EventType(), env.Type)
			}
			// The data re-encodes to exactly the frozen bytes.
			again, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, gotData); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, compact.Bytes()) {
				t.Fatalf("data re-encodes to %s, golden %s", again, compact.Bytes())
			}
			if got := domain.BackupID(ev); strings.HasPrefix(gd.file, "backup.") && got != "01JDAX3N3Z8Q1V0G5Y9F6K2M4B" {
				t.Fatalf("BackupID = %q", got)
			}
		})
	}
}

func TestDecodeEventErrors(t *testing.T) {
	cases := []struct {
		name string
		env  domain.Envelope
		want string
	}{
		{"unknown type", domain.Envelope{Type: "backup.exploded", Data: json.RawMessage(`{}`)}, `unknown event type "backup.exploded"`},
		{"empty type", domain.Envelope{Data: json.RawMessage(`{}`)}, "unknown event type"},
		{"wrong field type", domain.Envelope{Type: domain.TypeBackupStarted, Data: json.RawMessage(`{"backup_id":"b","attempt":"two"}`)}, "decode backup.started data"},
		{"not an object", domain.Envelope{Type: domain.TypeBackupDeleted, Data: json.RawMessage(`[1]`)}, "decode backup.deleted data"},
		{"no data", domain.Envelope{Type: domain.TypeBackupDeleted}, "decode backup.deleted data"},
		{"newer version", domain.Envelope{Type: domain.TypeBackupUploaded, Version: 2, Data: json.RawMessage(`{}`)},
			"backup.uploaded version 2 is not known"},
		{"uploaded with a bad original", domain.Envelope{Type: domain.TypeBackupUploaded, Data: json.RawMessage(`{"original":"erp"}`)},
			"decode backup.uploaded data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := domain.DecodeEvent(&tc.env)
			if err == nil || ev != nil {
				t.Fatalf("DecodeEvent = %v, %v; want an error", ev, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeEventIgnoresUnknownDataFields(t *testing.T) {
	// A newer writer may add optional fields; an older reader keeps going.
	env := domain.Envelope{Type: domain.TypeBackupDeleted, Data: json.RawMessage(`{"backup_id":"b1","reason":"new field"}`)}
	ev, err := domain.DecodeEvent(&env)
	if err != nil || !reflect.DeepEqual(ev, &domain.BackupDeleted{BackupID: "b1"}) {
		t.Fatalf("DecodeEvent = %#v, %v", ev, err)
	}
}

func TestOptionalFieldsAreOmitted(t *testing.T) {
	data, err := json.Marshal(&domain.BackupRequested{BackupID: "b", Name: "n", Origin: domain.OriginNightly, ExpiresAt: goldenTime})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"backup_id":"b","name":"n","origin":"nightly","expires_at":"2026-11-21T10:15:00.123Z"}`; string(data) != want {
		t.Fatalf("requested without description = %s, want %s", data, want)
	}
	data, err = json.Marshal(&domain.BackupStarted{BackupID: "b", Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"backup_id":"b","attempt":1}`; string(data) != want {
		t.Fatalf("started without worker = %s, want %s", data, want)
	}
	body, err := json.Marshal(domain.Envelope{ID: "e", Type: "t", Version: 1, App: "a", Time: goldenTime, Actor: "x",
		CommandID: "c", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"e","type":"t","version":1,"app":"a","time":"2026-11-21T10:15:00.123Z","actor":"x","command_id":"c","prev_hash":"","data":{}}`
	if string(body) != want {
		t.Fatalf("minimal envelope = %s, want %s", body, want)
	}
}

func TestBackupIDOfUnknownEvent(t *testing.T) {
	if got := domain.BackupID(nil); got != "" {
		t.Fatalf("BackupID(nil) = %q", got)
	}
}

func TestHashEvent(t *testing.T) {
	cases := map[string]string{
		"":    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	}
	for in, want := range cases {
		if got := domain.HashEvent([]byte(in)); got != want {
			t.Errorf("HashEvent(%q) = %s, want %s", in, got, want)
		}
	}
}
