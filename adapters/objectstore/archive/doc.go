// Package archive is the backup archive format: a zip with one entry per
// exported item under "<component>/" and a manifest.json, written last,
// with the size and SHA-256 of every entry. docs/archive.md is its
// specification. The package knows nothing of where archives are kept;
// package objectstore stores them in a JetStream object store and calls
// this one to write, check and read their bytes.
//
//   - manifest.go: the manifest, its encoding and its rules.
//   - limits.go: the limits an archive must keep to (Limits).
//   - validate.go: Validate, the rules of an uploaded archive, run as a
//     sequence of steps; directory.go walks the zip's central directory
//     before archive/zip holds it; verify.go checks the entries' content.
//   - stream.go: the streamed pass (StreamCheck), which checks an archive
//     as its bytes arrive and leaves what it cannot follow to Validate.
//   - write.go: Write, which writes an archive as a stream.
//   - read.go: Contents, the entries of a validated archive as items;
//     component.go: Stored, the zip of one component of a stored archive.
//   - errors.go: the errors of refused and corrupt archives.
package archive
