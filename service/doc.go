// Package service holds the application services of backupledger that do
// I/O around the pure core in package domain: they read the fold, decide
// with the domain's commands and pure policies, append, and wait, with a
// context, a logger and a clock. It imports only the standard library and
// domain (test/architecture_test.go).
//
//   - the one decide→append→retry loop (commandLoop) and its two users: the
//     Ledger (one App per subject) and the Identity service (the
//     Directory, with the login Throttle);
//   - the ledger's signing keys (Signing);
//   - the restore runner (Restores), uploads and downloads (Transfers), the
//     backup Worker and the Quoter;
//   - the periodic sweeps (Sweeper, Nightly, Verifier, Orphans), run by one
//     runner (Every);
//   - the ports these services need, which adapters implement (ports.go):
//     EventStore, States, DirectoryView, SecretStore, KeyVault, Source,
//     ArchiveStore and the other archive ports.
package service
