// Package kv is the built-in source of app configuration: each app's
// structure and configuration is a set of documents (key → bytes) in one
// JetStream key-value bucket shared by all apps.
//
// # Bucket and keys
//
// The bucket is named by [Config.Bucket] ("ledger_config" by default), is
// file-backed, and keeps one revision per key (history 1): the ledger's
// backups are the history of an app's configuration, not the bucket.
//
// The document with key K of app A is stored under the KV key "A.K", so the
// documents of one app are exactly the keys matching "A.>", and the keys of
// app "a" never mix with those of app "ab". A is an app id
// ([a-z0-9][a-z0-9_-]{0,62}, see domain.ValidateAppID). K is 1 to 200
// characters of [A-Za-z0-9_=/.-] that, split at '.', has no empty token (no
// leading or trailing '.', no ".."), does not begin or end with '/', contains
// no "//", and has no "." path segment ("a/./b"). Keys are case-sensitive.
// A value is at most [Config.MaxValueBytes] bytes (1 MiB by default); the
// bucket enforces the same limit on writers that bypass this package.
//
// Other services may read and write the bucket directly over NATS (the nats
// CLI, or nats.go's KeyValue API) with the same key scheme; whatever is in
// the bucket under an app's prefix when a backup runs is part of that backup.
// docs/sources.md describes this for operators.
//
// # Export
//
// [Source.Export] lists the app's keys with a filtered key listing on
// "A.>" (delete markers are skipped), sorts them, and then reads each
// document at its latest revision as it goes. It is not a point-in-time
// snapshot of the whole app: a document changed during an export is exported
// with its value at the moment it is read, a document deleted during an
// export is left out, and one created after the listing is not included.
// An app whose documents are not written during the export (for example one
// in maintenance whose writers respect it) is exported exactly.
//
// # Replace
//
// [Source.Replace] is the import side of a restore: it makes an app's
// documents exactly the given items. It reads and checks every item first,
// in memory (at most [Config.MaxReplaceDocs] documents and
// [Config.MaxReplaceBytes] of keys and values), so that a bad item changes
// nothing; then it puts every document and deletes the app's other keys.
// The bucket has no multi-key transaction: a failure while writing leaves a
// mix of old and new documents, which a retry of the same Replace makes
// right. An app whose bucket holds more than these limits exports fine but
// cannot be restored until they are raised.
package kv
