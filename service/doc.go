// Package service holds the application services of backupledger that do
// I/O around the pure core in package domain: they read the fold, run the
// domain's pure policies and execute the commands they decide, with a
// context, a logger and a clock. It imports only the standard library and
// domain (test/architecture_test.go).
//
// So far: the backup worker (Worker), the expiry, nightly, integrity and
// orphan sweeps (Sweeper, Nightly, Verifier, Orphans) and the quotes
// (Quoter). The ledger, the identity service, restores, transfers and the
// signing keys still live in domain and move here next (docs/decisions.md,
// "Layout").
package service
