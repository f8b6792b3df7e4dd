package archive

import (
	"archive/zip"
	"cmp"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// Validate checks that the size bytes of r are an archive this package
// accepts (docs/archive.md): a readable zip within lim, whose
// manifest.json has a supported format version and lists every entry but
// itself (and directory entries) with its size and SHA-256, every entry's
// content matching, every path safe to extract (relative, no "." or ".."
// segments, no backslashes, under a listed component), no links or other
// special files, no duplicates, no encryption, no overlapping entries and
// no entry that inflates more than lim.MaxRatio times beyond 1 MiB. It
// returns the manifest.
//
// A refused archive returns an *domain.Error: CodeArchiveTooLarge when
// size exceeds lim.MaxArchiveBytes, CodeArchiveVersion for a format version
// it does not read, and CodeArchiveInvalid with a message that says what is
// wrong for anything else. An error of r, or the end of ctx, is returned as
// it is. Memory use is bounded by the limits on entries, the central
// directory and the manifest, not by the size of the archive; entries are
// inflated and hashed on all cores.
func Validate(ctx context.Context, r io.ReaderAt, size int64, lim Limits) (Manifest, error) {
	return validate(ctx, r, size, lim, randomAccess{})
}

// contents reads what validate needs of the entries' data: the manifest's
// bytes and the check of every other entry's content against it.
type contents interface {
	// manifest returns the content of f, the manifest, of at most
	// limit+1 bytes.
	manifest(f *zip.File, limit int64) ([]byte, error)
	// verify checks each job's entry against its manifest entry.
	verify(ctx context.Context, jobs []verifyJob) error
}

// randomAccess reads the entries through the zip reader.
type randomAccess struct{}

func (randomAccess) manifest(f *zip.File, limit int64) ([]byte, error) {
	return readManifest(f, limit)
}

func (randomAccess) verify(ctx context.Context, jobs []verifyJob) error { return verifyAll(ctx, jobs) }

// validation is the validation of one archive: each step checks one rule
// and records what later steps need.
type validation struct {
	ctx  context.Context
	r    io.ReaderAt
	size int64
	lim  Limits
	c    contents

	budget       int64 // bytes zip.NewReader may read of the directory
	zr           *zip.Reader
	names        map[string]struct{} // of every entry
	manifestFile *zip.File
	files        []*zip.File // the entries with content
	dirs         []*zip.File // the directory entries
	m            Manifest
	listed       map[string]ManifestEntry // m's entries by path
	spans        []span                   // the entries' data, in file order
}

// span is where an entry's data lies in the file.
type span struct {
	f          *zip.File
	start, end int64
}

// validate is Validate with the entries' data read by c: its steps, in
// order, each stopping the validation with its error.
func validate(ctx context.Context, r io.ReaderAt, size int64, lim Limits, c contents) (Manifest, error) {
	v := &validation{ctx: ctx, r: r, size: size, lim: lim.withDefaults(), c: c}
	steps := []func(*validation) error{
		(*validation).checkSize,
		(*validation).checkDirectory,
		(*validation).openZip,
		(*validation).checkHeaders,
		(*validation).readManifest,
		(*validation).checkTotalSize,
		(*validation).checkDirs,
		(*validation).checkFiles,
		(*validation).checkAllPresent,
		(*validation).locateData,
		(*validation).checkOverlap,
		(*validation).verifyContents,
	}
	for _, step := range steps {
		if err := step(v); err != nil {
			return Manifest{}, err
		}
	}
	return v.m, nil
}

// checkSize refuses a file larger than lim.MaxArchiveBytes.
func (v *validation) checkSize() error {
	if v.size > v.lim.MaxArchiveBytes {
		return TooLarge(v.size, v.lim.MaxArchiveBytes)
	}
	return nil
}

// checkDirectory walks the central directory before archive/zip reads it
// (checkDirectory in directory.go).
func (v *validation) checkDirectory() error {
	budget, err := checkDirectory(v.r, v.size, v.lim.MaxEntries)
	v.budget = budget
	return err
}

// openZip reads the central directory with archive/zip, which keeps every
// record of it: checkDirectory counted them, and the reader may not read
// more than it did. It refuses more entries than allowed.
func (v *validation) openZip() error {
	br := &budgetReader{r: v.r, left: v.budget}
	zr, err := zip.NewReader(br, v.size)
	br.off.Store(true)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		if br.exceeded {
			return invalid("not a readable zip archive: its central directory is malformed")
		}
		var re *readError
		if errors.As(err, &re) {
			return re.err
		}
		return invalid("not a readable zip archive (%s)", zipDetail(err))
	}
	zr.RegisterDecompressor(zip.Deflate, newInflater)
	if len(zr.File) > v.lim.MaxEntries {
		return invalid("archive has %d entries, more than the %d allowed", len(zr.File), v.lim.MaxEntries)
	}
	v.zr = zr
	return nil
}

// checkHeaders checks what each entry's directory record says of it
// (checkEntryHeader), that no name appears twice and that every file's
// path is safe, and sorts the entries into the manifest, directories and
// files.
func (v *validation) checkHeaders() error {
	v.names = make(map[string]struct{}, len(v.zr.File))
	for _, f := range v.zr.File {
		if err := checkEntryHeader(f); err != nil {
			return err
		}
		if _, dup := v.names[f.Name]; dup {
			return invalid("entry %q appears twice", f.Name)
		}
		v.names[f.Name] = struct{}{}
		switch {
		case f.Name == ManifestPath:
			v.manifestFile = f
		case strings.HasSuffix(f.Name, "/"):
			v.dirs = append(v.dirs, f)
		default:
			if err := checkEntryName(f.Name); err != nil {
				return invalid("entry %q: %s", truncate(f.Name, 200), err)
			}
			v.files = append(v.files, f)
		}
	}
	return nil
}

// checkEntryHeader checks what an entry's central directory record says of it
// alone: not encrypted, a known compression method, a regular file or a
// directory.
func checkEntryHeader(f *zip.File) error {
	name := truncate(f.Name, 200)
	if f.Flags&0x1 != 0 {
		return invalid("entry %q is encrypted", name)
	}
	if f.Method != zip.Store && f.Method != zip.Deflate {
		return invalid("entry %q: compression method %d is not supported (only store and deflate)", name, f.Method)
	}
	mode := f.Mode()
	switch {
	case mode&fs.ModeSymlink != 0:
		return invalid("entry %q is a symbolic link", name)
	case mode&(fs.ModeType&^fs.ModeDir) != 0:
		return invalid("entry %q is not a regular file (mode %s)", name, mode)
	case mode.IsDir() != strings.HasSuffix(f.Name, "/"):
		return invalid("entry %q: its mode (%s) and its name disagree on whether it is a directory", name, mode)
	}
	return nil
}

// readManifest reads manifest.json, within its size and ratio limits, and
// parses it (ParseManifest).
func (v *validation) readManifest() error {
	mf := v.manifestFile
	if mf == nil {
		return invalid("archive has no %s", ManifestPath)
	}
	if mf.UncompressedSize64 > uint64(v.lim.MaxManifestBytes) {
		return invalid("%s is %d bytes, more than the %d allowed", ManifestPath, mf.UncompressedSize64, v.lim.MaxManifestBytes)
	}
	if err := checkRatio(mf, int64(mf.UncompressedSize64), v.lim); err != nil {
		return err
	}
	raw, err := v.c.manifest(mf, v.lim.MaxManifestBytes)
	if err != nil {
		return err
	}
	v.m, err = ParseManifest(raw)
	return err
}

// checkRatio refuses an entry of more than ratioFloor bytes (size, as the
// manifest lists it) that inflates more than lim.MaxRatio times.
func checkRatio(f *zip.File, size int64, lim Limits) error {
	if size <= ratioFloor {
		return nil
	}
	if c := int64(f.CompressedSize64); c <= 0 || size/int64(lim.MaxRatio) > c {
		return invalid("entry %q inflates from %d to %d bytes, more than %d times (a zip bomb?)", f.Name, f.CompressedSize64, size, lim.MaxRatio)
	}
	return nil
}

// checkTotalSize refuses entries that the manifest says total more than
// lim.MaxUncompressedBytes, and indexes them by path.
func (v *validation) checkTotalSize() error {
	v.listed = make(map[string]ManifestEntry, len(v.m.Entries))
	var total int64
	for _, e := range v.m.Entries {
		v.listed[e.Path] = e
		if total += e.Size; total > v.lim.MaxUncompressedBytes || total < 0 {
			return invalid("entries total more than the %d bytes allowed uncompressed", v.lim.MaxUncompressedBytes)
		}
	}
	return nil
}

// checkDirs accepts directory entries that are empty, with a safe path
// inside a listed component.
func (v *validation) checkDirs() error {
	for _, d := range v.dirs {
		dir := strings.TrimSuffix(d.Name, "/")
		if !IsName(dir) {
			if err := checkEntryName(dir); err != nil {
				return invalid("directory entry %q: %s", truncate(d.Name, 200), err)
			}
		}
		if c, _, _ := strings.Cut(dir, "/"); !slices.Contains(v.m.Components, c) {
			return invalid("directory entry %q is not under a component listed in %s (%s)", d.Name, ManifestPath, strings.Join(v.m.Components, ", "))
		}
		if d.CompressedSize64 != 0 || d.UncompressedSize64 != 0 {
			return invalid("directory entry %q has content", d.Name)
		}
	}
	return nil
}

// checkFiles accepts files inside a listed component, listed in the
// manifest with the size the zip gives them, within the ratio limit.
func (v *validation) checkFiles() error {
	for _, f := range v.files {
		if c, _, _ := strings.Cut(f.Name, "/"); !slices.Contains(v.m.Components, c) {
			return invalid("entry %q is not under a component listed in %s (%s)", f.Name, ManifestPath, strings.Join(v.m.Components, ", "))
		}
		e, ok := v.listed[f.Name]
		if !ok {
			return invalid("entry %q is not listed in %s", f.Name, ManifestPath)
		}
		if f.UncompressedSize64 != uint64(e.Size) {
			return invalid("entry %q: the zip says %d bytes, %s lists %d", f.Name, f.UncompressedSize64, ManifestPath, e.Size)
		}
		if err := checkRatio(f, e.Size, v.lim); err != nil {
			return err
		}
	}
	return nil
}

// checkAllPresent refuses a manifest that lists an entry the zip does not
// have.
func (v *validation) checkAllPresent() error {
	if len(v.files) == len(v.m.Entries) {
		return nil
	}
	for _, e := range v.m.Entries {
		if _, ok := v.names[e.Path]; !ok {
			return invalid("%s lists %q but the archive has no such entry", ManifestPath, e.Path)
		}
	}
	return nil
}

// locateData finds where the data of each file and of the manifest lies,
// which must be inside the file, and sorts them by where they start.
func (v *validation) locateData() error {
	withData := append(slices.Clone(v.files), v.manifestFile)
	v.spans = make([]span, 0, len(withData))
	for _, f := range withData {
		s, err := v.dataSpan(f)
		if err != nil {
			return err
		}
		v.spans = append(v.spans, s)
	}
	slices.SortFunc(v.spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	return nil
}

// dataSpan returns where f's data lies, after its local header: inside the
// file, and as long as its content if it is stored.
func (v *validation) dataSpan(f *zip.File) (span, error) {
	off, err := f.DataOffset()
	if err != nil {
		var re *readError
		if errors.As(err, &re) {
			return span{}, re.err
		}
		return span{}, invalid("entry %q: local header unreadable (%s)", f.Name, zipDetail(err))
	}
	end := off + int64(f.CompressedSize64)
	if f.CompressedSize64 > uint64(v.size) || end > v.size {
		return span{}, invalid("entry %q: its data runs past the end of the archive (truncated?)", f.Name)
	}
	if f.Method == zip.Store && f.CompressedSize64 != f.UncompressedSize64 {
		return span{}, invalid("entry %q: stored with %d bytes but its size is %d", f.Name, f.CompressedSize64, f.UncompressedSize64)
	}
	return span{f: f, start: off, end: end}, nil
}

// checkOverlap refuses two entries that share bytes (a bomb of
// overlapping entries).
func (v *validation) checkOverlap() error {
	var reach span // the span that reaches furthest so far
	for _, s := range v.spans {
		if s.start < reach.end && s.end > s.start {
			return invalid("entries %q and %q overlap", reach.f.Name, s.f.Name)
		}
		if s.end > reach.end {
			reach = s
		}
	}
	return nil
}

// verifyContents checks every file's content against the manifest, in
// file order (on all cores, when read by randomAccess).
func (v *validation) verifyContents() error {
	var work []verifyJob
	for _, s := range v.spans {
		if s.f != v.manifestFile {
			work = append(work, verifyJob{f: s.f, want: v.listed[s.f.Name]})
		}
	}
	return v.c.verify(v.ctx, work)
}
