package objectstore

import (
	"archive/zip"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"

	"github.com/backupledger/backupledger/domain"
)

// Limits bound what ValidateArchive accepts. Zero fields take the
// defaults of Config.
type Limits struct {
	// MaxArchiveBytes bounds the zip file (CodeArchiveTooLarge).
	MaxArchiveBytes int64
	// MaxEntries bounds the zip's entries, manifest and directory entries
	// included.
	MaxEntries int
	// MaxUncompressedBytes bounds the sum of the entries' sizes.
	MaxUncompressedBytes int64
	// MaxRatio bounds uncompressed/compressed size of each entry that is
	// larger than ratioFloor.
	MaxRatio int
	// MaxManifestBytes bounds manifest.json.
	MaxManifestBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxArchiveBytes <= 0 {
		l.MaxArchiveBytes = DefaultMaxUploadBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxUncompressedBytes <= 0 {
		l.MaxUncompressedBytes = DefaultMaxUncompressedBytes
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	if l.MaxManifestBytes <= 0 {
		l.MaxManifestBytes = DefaultMaxManifestBytes
	}
	return l
}

const (
	// ratioFloor is the size up to which an entry may inflate whatever its
	// compression ratio: small documents of repeated bytes are no bomb.
	ratioFloor = 1 << 20
	// maxDirectoryBytes bounds the zip's central directory, which is held
	// in memory while the archive is read.
	maxDirectoryBytes = 64 << 20
	// maxExtraLen bounds each entry's extra field and comment.
	maxExtraLen = 1024
)

// ValidateArchive checks that the size bytes of r are an archive this
// package accepts (docs/archive.md): a readable zip within lim, whose
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
func ValidateArchive(ctx context.Context, r io.ReaderAt, size int64, lim Limits) (Manifest, error) {
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

// validate is ValidateArchive with the entries' data read by c.
func validate(ctx context.Context, r io.ReaderAt, size int64, lim Limits, c contents) (Manifest, error) {
	lim = lim.withDefaults()
	if size > lim.MaxArchiveBytes {
		return Manifest{}, tooLarge(size, lim.MaxArchiveBytes)
	}
	budget, err := checkDirectory(r, size, lim.MaxEntries)
	if err != nil {
		return Manifest{}, err
	}
	// zip.NewReader keeps every record of the directory; checkDirectory
	// counted them, and the reader may not read more than it did.
	br := &budgetReader{r: r, left: budget}
	zr, err := zip.NewReader(br, size)
	br.off.Store(true)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		if br.exceeded {
			return Manifest{}, invalid("not a readable zip archive: its central directory is malformed")
		}
		var re *readError
		if errors.As(err, &re) {
			return Manifest{}, re.err
		}
		return Manifest{}, invalid("not a readable zip archive (%s)", zipDetail(err))
	}
	zr.RegisterDecompressor(zip.Deflate, newInflater)
	if len(zr.File) > lim.MaxEntries {
		return Manifest{}, invalid("archive has %d entries, more than the %d allowed", len(zr.File), lim.MaxEntries)
	}

	// The entries' headers.
	var (
		manifestFile *zip.File
		files        []*zip.File
		dirs         []*zip.File
		names        = make(map[string]struct{}, len(zr.File))
	)
	for _, f := range zr.File {
		if err := checkEntryHeader(f); err != nil {
			return Manifest{}, err
		}
		if _, dup := names[f.Name]; dup {
			return Manifest{}, invalid("entry %q appears twice", f.Name)
		}
		names[f.Name] = struct{}{}
		switch {
		case f.Name == ManifestPath:
			manifestFile = f
		case strings.HasSuffix(f.Name, "/"):
			dirs = append(dirs, f)
		default:
			if err := checkEntryName(f.Name); err != nil {
				return Manifest{}, invalid("entry %q: %s", truncate(f.Name, 200), err)
			}
			files = append(files, f)
		}
	}

	// The manifest.
	if manifestFile == nil {
		return Manifest{}, invalid("archive has no %s", ManifestPath)
	}
	if manifestFile.UncompressedSize64 > uint64(lim.MaxManifestBytes) {
		return Manifest{}, invalid("%s is %d bytes, more than the %d allowed", ManifestPath, manifestFile.UncompressedSize64, lim.MaxManifestBytes)
	}
	if err := checkRatio(manifestFile, int64(manifestFile.UncompressedSize64), lim); err != nil {
		return Manifest{}, err
	}
	raw, err := c.manifest(manifestFile, lim.MaxManifestBytes)
	if err != nil {
		return Manifest{}, err
	}
	m, err := parseManifest(raw)
	if err != nil {
		return Manifest{}, err
	}

	// The entries against the manifest.
	listed := make(map[string]ManifestEntry, len(m.Entries))
	var total int64
	for _, e := range m.Entries {
		listed[e.Path] = e
		if total += e.Size; total > lim.MaxUncompressedBytes || total < 0 {
			return Manifest{}, invalid("entries total more than the %d bytes allowed uncompressed", lim.MaxUncompressedBytes)
		}
	}
	for _, d := range dirs {
		dir := strings.TrimSuffix(d.Name, "/")
		if !isName(dir) {
			if err := checkEntryName(dir); err != nil {
				return Manifest{}, invalid("directory entry %q: %s", truncate(d.Name, 200), err)
			}
		}
		if c, _, _ := strings.Cut(dir, "/"); !slices.Contains(m.Components, c) {
			return Manifest{}, invalid("directory entry %q is not under a component listed in %s (%s)", d.Name, ManifestPath, strings.Join(m.Components, ", "))
		}
		if d.CompressedSize64 != 0 || d.UncompressedSize64 != 0 {
			return Manifest{}, invalid("directory entry %q has content", d.Name)
		}
	}
	for _, f := range files {
		if c, _, _ := strings.Cut(f.Name, "/"); !slices.Contains(m.Components, c) {
			return Manifest{}, invalid("entry %q is not under a component listed in %s (%s)", f.Name, ManifestPath, strings.Join(m.Components, ", "))
		}
		e, ok := listed[f.Name]
		if !ok {
			return Manifest{}, invalid("entry %q is not listed in %s", f.Name, ManifestPath)
		}
		if f.UncompressedSize64 != uint64(e.Size) {
			return Manifest{}, invalid("entry %q: the zip says %d bytes, %s lists %d", f.Name, f.UncompressedSize64, ManifestPath, e.Size)
		}
		if err := checkRatio(f, e.Size, lim); err != nil {
			return Manifest{}, err
		}
	}
	if len(files) != len(m.Entries) {
		for _, e := range m.Entries {
			if _, ok := names[e.Path]; !ok {
				return Manifest{}, invalid("%s lists %q but the archive has no such entry", ManifestPath, e.Path)
			}
		}
	}

	// Where their data lies: inside the file, and no two entries sharing
	// bytes (a bomb of overlapping entries).
	withData := append(slices.Clone(files), manifestFile)
	spans := make([]span, 0, len(withData))
	for _, f := range withData {
		off, err := f.DataOffset()
		if err != nil {
			var re *readError
			if errors.As(err, &re) {
				return Manifest{}, re.err
			}
			return Manifest{}, invalid("entry %q: local header unreadable (%s)", f.Name, zipDetail(err))
		}
		end := off + int64(f.CompressedSize64)
		if f.CompressedSize64 > uint64(size) || end > size {
			return Manifest{}, invalid("entry %q: its data runs past the end of the archive (truncated?)", f.Name)
		}
		if f.Method == zip.Store && f.CompressedSize64 != f.UncompressedSize64 {
			return Manifest{}, invalid("entry %q: stored with %d bytes but its size is %d", f.Name, f.CompressedSize64, f.UncompressedSize64)
		}
		spans = append(spans, span{f: f, start: off, end: end})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	var reach span // the span that reaches furthest so far
	for _, s := range spans {
		if s.start < reach.end && s.end > s.start {
			return Manifest{}, invalid("entries %q and %q overlap", reach.f.Name, s.f.Name)
		}
		if s.end > reach.end {
			reach = s
		}
	}

	// Their content, in file order, on all cores.
	var work []verifyJob
	for _, s := range spans {
		if s.f != manifestFile {
			work = append(work, verifyJob{f: s.f, want: listed[s.f.Name]})
		}
	}
	if err := c.verify(ctx, work); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

type span struct {
	f          *zip.File
	start, end int64
}

func tooLarge(size, limit int64) error {
	return domain.Errorf(domain.CodeArchiveTooLarge, "archive is larger than the %d bytes allowed (%d bytes or more)", limit, size)
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

func checkRatio(f *zip.File, size int64, lim Limits) error {
	if size <= ratioFloor {
		return nil
	}
	if c := int64(f.CompressedSize64); c <= 0 || size/int64(lim.MaxRatio) > c {
		return invalid("entry %q inflates from %d to %d bytes, more than %d times (a zip bomb?)", f.Name, f.CompressedSize64, size, lim.MaxRatio)
	}
	return nil
}

func readManifest(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, entryErr(f, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, entryErr(f, err)
	}
	if int64(len(raw)) > limit {
		return nil, invalid("%s is more than the %d bytes allowed", ManifestPath, limit)
	}
	return raw, nil
}

type verifyJob struct {
	f    *zip.File
	want ManifestEntry
}

// verifyAll reads every job's entry and compares it with the manifest, on
// up to GOMAXPROCS goroutines. Of several bad entries it reports the
// first in file order.
func verifyAll(ctx context.Context, jobs []verifyJob) error {
	workers := min(runtime.GOMAXPROCS(0), 4, len(jobs))
	var (
		next     atomic.Int64
		firstBad atomic.Int64
		errs     = make([]error, len(jobs))
		wg       sync.WaitGroup
	)
	firstBad.Store(int64(len(jobs)))
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(jobs)) || i > firstBad.Load() {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = verifyEntry(jobs[i], buf)
				}
				if err != nil {
					errs[i] = err
					for {
						cur := firstBad.Load()
						if i >= cur || firstBad.CompareAndSwap(cur, i) {
							break
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if i := firstBad.Load(); i < int64(len(jobs)) {
		return errs[i]
	}
	return nil
}

func verifyEntry(j verifyJob, buf []byte) error {
	f, want := j.f, j.want
	rc, err := f.Open()
	if err != nil {
		return entryErr(f, err)
	}
	defer rc.Close()
	h := sha256.New()
	// One byte more than the manifest lists: inflating stops right there.
	n, err := io.CopyBuffer(h, io.LimitReader(rc, want.Size+1), buf)
	switch {
	case n > want.Size || errors.Is(err, zip.ErrFormat): // the zip reader's word for "more than the header says"
		return invalid("entry %q inflates to more than the %d bytes %s lists", f.Name, want.Size, ManifestPath)
	case err != nil:
		return entryErr(f, err)
	case n < want.Size:
		return invalid("entry %q has %d bytes, %s lists %d", f.Name, n, ManifestPath, want.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return invalid("entry %q has sha256 %s, %s lists %s", f.Name, got, ManifestPath, want.SHA256)
	}
	return nil
}

// entryErr describes an error reading an entry; an error of the
// underlying file is returned as it is.
func entryErr(f *zip.File, err error) error {
	var re *readError
	if errors.As(err, &re) {
		return re.err
	}
	return invalid("entry %q is unreadable (%s)", f.Name, zipDetail(err))
}

func zipDetail(err error) string {
	switch {
	case errors.Is(err, zip.ErrChecksum):
		return "CRC-32 mismatch"
	case errors.Is(err, zip.ErrFormat):
		return "malformed zip structure"
	case errors.Is(err, zip.ErrAlgorithm):
		return "unsupported compression method"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of data"
	}
	var ce flate.CorruptInputError
	if errors.As(err, &ce) {
		return fmt.Sprintf("corrupt deflate data at byte %d", int64(ce))
	}
	return strings.TrimPrefix(err.Error(), "zip: ")
}

// readError marks an error of the io.ReaderAt under the zip, which is not
// the archive's fault.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// budgetReader reads from r, wrapping r's errors in readError, and, until
// off is set, fails once more than left bytes were read.
type budgetReader struct {
	r        io.ReaderAt
	left     int64
	exceeded bool
	off      atomic.Bool
}

var (
	errBudget         = errors.New("read budget exceeded")
	errNegativeOffset = errors.New("an offset points before the start of the archive")
)

func (b *budgetReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errNegativeOffset // the archive's offsets are wrong
	}
	if !b.off.Load() {
		if int64(len(p)) > b.left {
			b.exceeded = true
			return 0, errBudget
		}
		b.left -= int64(len(p))
	}
	n, err := b.r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

// Zip record signatures and sizes (APPNOTE.TXT).
const (
	sigDirHeader   = 0x02014b50
	sigDirEnd      = 0x06054b50
	sigDir64Loc    = 0x07064b50
	sigDir64End    = 0x06064b50
	dirHeaderLen   = 46
	dirEndLen      = 22
	dir64LocLen    = 20
	dir64EndLen    = 56
	dirSearchLen   = 65 * 1024
	readAheadSlack = 8 << 10
)

// checkDirectory finds the end of the central directory as archive/zip
// does, then walks the directory's records without keeping them: at most
// maxEntries, names of at most MaxEntryNameLen+1 bytes, extra fields and
// comments of at most maxExtraLen, maxDirectoryBytes in all. It returns
// how many bytes zip.NewReader needs to read to parse the same directory.
func checkDirectory(r io.ReaderAt, size int64, maxEntries int) (int64, error) {
	notZip := invalid("not a zip archive (no end of central directory record; truncated?)")
	var (
		buf    []byte
		endOff int64
		found  bool
	)
	for _, n := range []int64{1024, dirSearchLen} {
		n = min(n, size)
		buf = make([]byte, n)
		if _, err := r.ReadAt(buf, size-n); err != nil && err != io.EOF {
			return 0, err
		}
		if p := findDirEnd(buf); p >= 0 {
			buf, endOff, found = buf[p:], size-n+int64(p), true
			break
		}
		if n == size {
			break
		}
	}
	if !found {
		return 0, notZip
	}
	le := binary.LittleEndian
	records := uint64(le.Uint16(buf[10:]))
	dirSize := uint64(le.Uint32(buf[12:]))
	dirOff := uint64(le.Uint32(buf[16:]))
	if records == 0xffff || dirSize == 0xffff || dirOff == 0xffffffff {
		if endOff >= dir64LocLen {
			loc := make([]byte, dir64LocLen)
			if _, err := r.ReadAt(loc, endOff-dir64LocLen); err != nil && err != io.EOF {
				return 0, err
			}
			if le.Uint32(loc) == sigDir64Loc && le.Uint32(loc[4:]) == 0 && le.Uint32(loc[16:]) == 1 {
				p := int64(le.Uint64(loc[8:]))
				rec := make([]byte, dir64EndLen)
				if p < 0 || p > size-dir64EndLen {
					return 0, notZip
				}
				if _, err := r.ReadAt(rec, p); err != nil && err != io.EOF {
					return 0, err
				}
				if le.Uint32(rec) != sigDir64End {
					return 0, notZip
				}
				records, dirSize, dirOff, endOff = le.Uint64(rec[32:]), le.Uint64(rec[40:]), le.Uint64(rec[48:]), p
			}
		}
	}
	if records > uint64(maxEntries) {
		return 0, invalid("archive has %d entries, more than the %d allowed", records, maxEntries)
	}
	outside := invalid("not a readable zip archive (its central directory lies outside the file; truncated?)")
	if dirSize > uint64(size) || dirOff > uint64(size) {
		return 0, outside
	}
	base := endOff - int64(dirSize) - int64(dirOff)
	if o := base + int64(dirOff); o < 0 || o >= size {
		return 0, outside
	}
	if base > 0 {
		sig := make([]byte, 4)
		if _, err := r.ReadAt(sig, int64(dirOff)); err == nil && le.Uint32(sig) == sigDirHeader {
			base = 0
		}
	}
	var (
		off   = base + int64(dirOff)
		hdr   = make([]byte, dirHeaderLen)
		count int
	)
	for {
		n, err := r.ReadAt(hdr, off)
		if n < dirHeaderLen || le.Uint32(hdr) != sigDirHeader {
			if err != nil && err != io.EOF {
				return 0, err
			}
			break
		}
		if count++; count > maxEntries {
			return 0, invalid("archive has more than the %d entries allowed", maxEntries)
		}
		nameLen, extraLen, commentLen := int64(le.Uint16(hdr[28:])), int64(le.Uint16(hdr[30:])), int64(le.Uint16(hdr[32:]))
		if nameLen > MaxEntryNameLen+1 {
			return 0, invalid("archive has an entry name of %d bytes, more than the %d allowed", nameLen, MaxEntryNameLen)
		}
		if extraLen > maxExtraLen || commentLen > maxExtraLen {
			return 0, invalid("archive has an entry with more than %d bytes of extra fields or comment", maxExtraLen)
		}
		off += dirHeaderLen + nameLen + extraLen + commentLen
		if off-base-int64(dirOff) > maxDirectoryBytes {
			return 0, invalid("archive's central directory is larger than the %d bytes allowed", maxDirectoryBytes)
		}
	}
	return (off - base - int64(dirOff)) + dirSearchLen + 1024 + dir64LocLen + dir64EndLen + 2*readAheadSlack, nil
}

// findDirEnd returns the offset in b of the end of central directory
// record whose comment ends within b, searching from the end, or -1.
func findDirEnd(b []byte) int {
	for i := len(b) - dirEndLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(b[i:]) == sigDirEnd {
			n := int(binary.LittleEndian.Uint16(b[i+dirEndLen-2:]))
			if n+dirEndLen+i > len(b) {
				return -1
			}
			return i
		}
	}
	return -1
}

// inflaters recycles klauspost deflate readers (faster than the standard
// library's) across entries.
var inflaters sync.Pool

type inflater struct{ rc io.ReadCloser }

func newInflater(r io.Reader) io.ReadCloser {
	if rc, ok := inflaters.Get().(io.ReadCloser); ok {
		if err := rc.(flate.Resetter).Reset(r, nil); err == nil {
			return &inflater{rc}
		}
	}
	return &inflater{flate.NewReader(r)}
}

func (i *inflater) Read(p []byte) (int, error) {
	if i.rc == nil {
		return 0, errors.New("read of a closed inflater")
	}
	return i.rc.Read(p)
}

func (i *inflater) Close() error {
	if i.rc == nil {
		return nil
	}
	err := i.rc.Close()
	inflaters.Put(i.rc)
	i.rc = nil
	return err
}
