// Package domain is the pure core of backupledger: the two aggregates (App,
// Directory) with their commands, events (one registry value, events.go),
// evolve functions and rules; the error codes (errors.go); the restore saga
// and the sweeps as pure policies (a state and a time in, commands out); the
// ledger check and the signing primitives. It imports only the standard
// library and no context, log/slog or sync, and never reads the clock:
// time comes in as an argument (test/architecture_test.go). The services
// that do I/O around it live in package service.
package domain
