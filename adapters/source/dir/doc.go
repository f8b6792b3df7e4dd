// Package dir is the built-in source of app files: each app's files live in
// the folder <root>/<app>/ under a configured root (backupd's --dir-root),
// and a backup exports them as the component "files".
//
// # Export
//
// [Source.Export] walks <root>/<app>/ and emits one item per regular file,
// in byte order of its path relative to the app folder ("a.txt" before
// "a/b"). Item.Path is that path, '/'-separated; Item.Body is the open
// *os.File, streamed by the consumer and closed when emit returns. A
// missing app folder is an app without files: no items, no error.
//
// Only regular files are exported. A symbolic link, named pipe, socket or
// device anywhere under the app folder fails the export with an error that
// names it: skipping it would make a backup that restores to something other
// than what was there. So does a file whose path cannot be an archive entry
// path (docs/archive.md): not valid UTF-8, a backslash or a control
// character in a name, or longer than 1018 bytes (1024 with "files/").
// Empty directories are not exported (the archive holds files only), and
// neither are permissions, owners or times.
//
// The file list is read first (paths only, so memory grows with the number
// of files, not their size), then each file is opened in turn. The app
// folder is opened once, as an [os.Root], and every file is opened through
// it: the export reads one folder, even if an import of another process
// swaps it meanwhile, and nothing outside it. It is not a point-in-time
// snapshot: a file written during the export is read as it is then, and one
// that changes size or disappears fails the export (the archive checks the
// size). An app whose files are not written during the export (for example
// one in maintenance) is exported exactly.
//
// # Import
//
// [Source.Import] replaces the app folder entirely with the given items:
// what is not among them is gone afterwards. It writes the items into a new
// folder <root>/.tmp-<app>.<random> (same file system), syncs every file and
// folder, then renames the current app folder to <root>/.old-<app>.<random>,
// renames the new one into place, syncs the root and removes the old one.
// Imported files get mode 0640 and folders 0750 (less the umask), owned by
// the user running backupd. An error before the swap changes nothing: the
// temporary folder is removed and the app folder is untouched.
//
// A crash before the swap leaves the app folder as it was; a crash between
// the two renames leaves no app folder but its old content in .old-<app>.*,
// which [New] (at the next start) and the next Import of the app move back.
// Leftover .tmp-<app>.* and .old-<app>.* folders are removed by the next
// Import of that app. '.' never occurs in an app id, so these names never
// collide with an app folder or with the leftovers of another app.
//
// # Concurrency
//
// A Source is safe for concurrent use. Within one process, an import of an
// app waits for the exports of that app that are running and the other way
// round; different apps never wait for each other. Across processes sharing
// a root, imports of one app must not overlap (the restore saga runs one
// restore per app at a time); an export that meets another process's swap
// fails rather than mixing old and new files. An app folder must be a
// directory, not a symbolic link or a mount point (rename cannot swap it).
package dir
