// Package domain is the pure core of backupledger: the app aggregate with its
// commands, events and rules, the application layer that decides commands
// against the in-memory state and appends their events, and the backup
// worker. It imports only the standard library; it talks to the world through
// the small interfaces it declares (EventStore, States, Source, ArchiveStore,
// Clock, IDs, Authenticator), which adapters implement.
package domain
