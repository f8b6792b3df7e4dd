package domain

import (
	"encoding/json"
	"fmt"
	"slices"
)

// eventDef is one registered event type: its stable name, the current
// version of its data, a constructor of that data and, when the type has
// had older versions, the hook that brings their data up to the current one.
type eventDef struct {
	name      string
	version   int
	construct func() Event
	// upcast turns data of version from (< version) into data of the
	// current version; nil when the type has only ever had one version.
	upcast func(from int, data json.RawMessage) (json.RawMessage, error)
}

// eventRegistry is the set of registered event types. It is built once by
// newEventRegistry and never changed afterwards.
type eventRegistry struct {
	defs   []eventDef // sorted by name
	byName map[string]int
}

// registry holds every event type of the ledger: the only
// package-level value of the event machinery, read-only after it is built.
var registry = newEventRegistry()

// newEventRegistry lists every event type, under the explicit name it is
// stored with (never one derived by reflection), with its version,
// constructor and upcaster. A new type is added here; a breaking change of
// a type's data is a new version with an upcast hook, never a rename.
func newEventRegistry() eventRegistry {
	defs := []eventDef{
		// Backups (event.go, expiry.go, verify.go), on the app's subject.
		{name: TypeBackupRequested, version: 1, construct: func() Event { return new(BackupRequested) }},
		{name: TypeBackupStarted, version: 1, construct: func() Event { return new(BackupStarted) }},
		{name: TypeBackupCompleted, version: 1, construct: func() Event { return new(BackupCompleted) }},
		{name: TypeBackupFailed, version: 1, construct: func() Event { return new(BackupFailed) }},
		{name: TypeBackupRenamed, version: 1, construct: func() Event { return new(BackupRenamed) }},
		{name: TypeBackupDeleted, version: 1, construct: func() Event { return new(BackupDeleted) }},
		{name: TypeBackupUploaded, version: 1, construct: func() Event { return new(BackupUploaded) }},
		{name: TypeBackupCorrupted, version: 1, construct: func() Event { return new(BackupCorrupted) }},
		{name: TypeBackupExpired, version: 1, construct: func() Event { return new(BackupExpired) }},
		{name: TypeBackupVerified, version: 1, construct: func() Event { return new(BackupVerified) }},
		// Maintenance and restores (restore_events.go), on the target
		// app's subject.
		{name: TypeMaintenanceStarted, version: 1, construct: func() Event { return new(MaintenanceStarted) }},
		{name: TypeMaintenanceEnded, version: 1, construct: func() Event { return new(MaintenanceEnded) }},
		{name: TypeRestoreRequested, version: 1, construct: func() Event { return new(RestoreRequested) }},
		{name: TypeRestorePreBackup, version: 1, construct: func() Event { return new(RestorePreBackupReady) }},
		{name: TypeRestoreArchiveVerified, version: 1, construct: func() Event { return new(RestoreArchiveVerified) }},
		{name: TypeRestoreImported, version: 1, construct: func() Event { return new(RestoreImported) }},
		{name: TypeRestoreCompleted, version: 1, construct: func() Event { return new(RestoreCompleted) }},
		{name: TypeRestoreFailed, version: 1, construct: func() Event { return new(RestoreFailed) }},
		// Nightly backups and orphaned archives (nightly.go, orphans.go),
		// on the app's subject.
		{name: TypeScheduleSet, version: 1, construct: func() Event { return new(ScheduleSet) }},
		{name: TypeNightlySkipped, version: 1, construct: func() Event { return new(NightlySkipped) }},
		{name: TypeArchiveOrphanRemoved, version: 1, construct: func() Event { return new(ArchiveOrphanRemoved) }},
		// The directory (directory.go, webhooks.go), on IdentityStream.
		{name: TypeOrgCreated, version: 1, construct: func() Event { return new(OrgCreated) }},
		{name: TypeMemberAdded, version: 1, construct: func() Event { return new(MemberAdded) }},
		{name: TypeMemberRemoved, version: 1, construct: func() Event { return new(MemberRemoved) }},
		{name: TypeUserCreated, version: 1, construct: func() Event { return new(UserCreated) }},
		{name: TypeUserDisabled, version: 1, construct: func() Event { return new(UserDisabled) }},
		{name: TypeUserEnabled, version: 1, construct: func() Event { return new(UserEnabled) }},
		{name: TypePasswordChanged, version: 1, construct: func() Event { return new(PasswordChanged) }},
		{name: TypePasswordFailed, version: 1, construct: func() Event { return new(PasswordFailed) }},
		{name: TypeAppRegistered, version: 1, construct: func() Event { return new(AppRegistered) }},
		{name: TypeAdminGranted, version: 1, construct: func() Event { return new(AdminGranted) }},
		{name: TypeAdminRevoked, version: 1, construct: func() Event { return new(AdminRevoked) }},
		{name: TypeTokenCreated, version: 1, construct: func() Event { return new(TokenCreated) }},
		{name: TypeTokenRevoked, version: 1, construct: func() Event { return new(TokenRevoked) }},
		{name: TypeWebhookRegistered, version: 1, construct: func() Event { return new(WebhookRegistered) }},
		{name: TypeWebhookRemoved, version: 1, construct: func() Event { return new(WebhookRemoved) }},
		// Signing keys (keys.go), on KeysStream.
		{name: TypeKeyCreated, version: 1, construct: func() Event { return new(KeyCreated) }},
		{name: TypeKeyRotated, version: 1, construct: func() Event { return new(KeyRotated) }},
	}
	slices.SortStableFunc(defs, func(a, b eventDef) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	byName := make(map[string]int, len(defs))
	for i, d := range defs {
		if _, dup := byName[d.name]; !dup {
			byName[d.name] = i
		}
	}
	return eventRegistry{defs: defs, byName: byName}
}

// lookup returns the definition of type name.
func (r eventRegistry) lookup(name string) (eventDef, bool) {
	i, ok := r.byName[name]
	if !ok {
		return eventDef{}, false
	}
	return r.defs[i], true
}

// version returns the current version of type name's data; 1 for a type
// not registered.
func (r eventRegistry) version(name string) int {
	if d, ok := r.lookup(name); ok {
		return d.version
	}
	return 1
}

// decode decodes the data of env into its registered type, upcast first
// when it is of an older version.
func (r eventRegistry) decode(env *Envelope) (Event, error) {
	d, ok := r.lookup(env.Type)
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", env.Type)
	}
	env.Type = d.name // one string per type, however many events are kept
	if env.Version > d.version {
		return nil, fmt.Errorf("%s version %d is not known to this server (it knows %d)", env.Type, env.Version, d.version)
	}
	data := env.Data
	if env.Version < d.version && d.upcast != nil {
		up, err := d.upcast(env.Version, data)
		if err != nil {
			return nil, fmt.Errorf("upcast %s data from version %d: %w", env.Type, env.Version, err)
		}
		data = up
	}
	ev := d.construct()
	if err := json.Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("decode %s data: %w", env.Type, err)
	}
	return ev, nil
}

// EventDef describes one registered event type.
type EventDef struct {
	// Type is the registered name, e.g. "backup.requested".
	Type string
	// Version is the current version of its data, the one written.
	Version int
	// Upcasts reports whether data of older versions is brought up to
	// Version when it is decoded.
	Upcasts bool
}

// EventDefs returns the registry's entries, sorted by type name: one per
// registered type.
func EventDefs() []EventDef {
	out := make([]EventDef, 0, len(registry.defs))
	for _, d := range registry.defs {
		out = append(out, EventDef{Type: d.name, Version: d.version, Upcasts: d.upcast != nil})
	}
	return out
}

// EventTypes returns the registered event type names, sorted.
func EventTypes() []string {
	out := make([]string, 0, len(registry.defs))
	for _, d := range registry.defs {
		if !slices.Contains(out, d.name) {
			out = append(out, d.name)
		}
	}
	return out
}

// DecodeEvent decodes the data of an envelope into its registered type. An
// unknown type, or a version newer than the registered one, returns an
// error; callers that fold events skip such events so that an older process
// survives a newer event type. It sets env.Type to the registry's string
// of a known type (the same value), so that events kept in memory share
// it: env must not be read meanwhile.
func DecodeEvent(env *Envelope) (Event, error) {
	return registry.decode(env)
}

// DecodeCurrent decodes data of the current version of the registered
// event type typ (what json.Marshal made of such an event), as a snapshot
// keeps it.
func DecodeCurrent(typ string, data []byte) (Event, error) {
	d, ok := registry.lookup(typ)
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", typ)
	}
	return registry.decode(&Envelope{Type: typ, Version: d.version, Data: data})
}
