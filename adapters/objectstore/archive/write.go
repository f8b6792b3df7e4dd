package archive

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/backupledger/backupledger/domain"
)

const (
	// writeSize is the size of the writes into an archive's writer: the
	// object store's chunk size, so that each write fills one chunk.
	writeSize = 128 << 10
	// blockSize is the largest item that is read whole and compressed on
	// its own goroutine, and the size of the blocks in which larger items
	// are streamed.
	blockSize = 1 << 20
	// pendingEntries bounds the entries handed to the zip writer and not
	// yet written: with blockSize, the memory an archive's writing holds
	// is a few MiB whatever its size.
	pendingEntries = 4
	// pendingBlocks bounds the blocks of a large item read ahead of the
	// zip writer.
	pendingBlocks = 2
	// sampleSize is how much of an entry is compressed to decide whether
	// it is worth compressing at all.
	sampleSize = 64 << 10
)

var (
	blockPool = sync.Pool{New: func() any { b := make([]byte, blockSize); return &b }}
	flatePool = sync.Pool{New: func() any {
		fw, _ := flate.NewWriter(io.Discard, flate.BestSpeed) // cannot fail at this level
		return fw
	}}
	bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// worthCompressing reports whether deflate saves at least 10% on
// compressed bytes out of raw.
func worthCompressing(raw, compressed int) bool { return compressed*10 <= raw*9 }

// entryJob is one entry handed from the exporter to the zip writer: a
// small item compressed on its own goroutine (done closes when res is
// set), or a large one whose blocks follow on blocks.
type entryJob struct {
	name string
	// small item
	done chan struct{}
	res  smallEntry
	// large item
	method uint16
	blocks chan block
}

type smallEntry struct {
	method uint16
	crc    uint32
	size   int64
	sum    [sha256.Size]byte
	data   []byte        // what goes into the zip: raw or deflated
	in     *[]byte       // pooled input buffer
	out    *bytes.Buffer // pooled output buffer, nil when stored
}

// block is a piece of a large item; the last one has final set and the
// item's size and SHA-256, or err if reading it failed.
type block struct {
	data  []byte
	buf   *[]byte
	final bool
	size  int64
	sum   []byte
	err   error
}

// zipWriter writes one archive as a stream: the entries as the source emits
// them, then the manifest. The exporter's goroutine reads the items
// (add); small items are compressed on goroutines of their own, several at
// once, and large ones are read ahead in blocks, so that compressing,
// hashing and storing run on all cores; one writer goroutine (run) puts
// the entries into the zip in order.
type zipWriter struct {
	h          domain.ArchiveHeader
	modified   time.Time
	defaultCmp string
	components []string
	seen       map[string]struct{}
	failed     error // sticky error of add

	jobs  chan *entryJob
	quit  chan struct{} // closed to stop the writer early
	dead  chan struct{} // closed when the writer stops on an error
	wdone chan struct{}
	werr  error // the writer's error, set before dead closes

	// owned by the writer goroutine
	bw       *bufio.Writer
	zw       *zip.Writer
	fw       *flate.Writer
	entries  []ManifestEntry
	manifest Manifest
}

// Write writes the archive of h with the items that export emits to w,
// and returns its manifest. It does not close w.
//
// export is called once, on the caller's goroutine; each item it emits
// becomes the entry "<component>/<path>" (the header's first component
// when the item names none), and emit returns an error, which export
// should return, once the archive is broken. Items are compressed a few at
// a time on all cores while one goroutine writes the zip, so memory does
// not grow with the size of the archive. The header must pass the
// manifest's rules, so that what is written can be uploaded again. It
// returns export's error, an error for an item that breaks the layout
// (bad path, a component that is no name, an item emitted twice, a size
// other than announced), and w's errors, wrapped.
func Write(w io.Writer, h domain.ArchiveHeader, export func(emit func(domain.Item) error) error) (Manifest, error) {
	z, err := newZipWriter(w, h)
	if err != nil {
		return Manifest{}, err
	}
	go z.run()
	finished := false
	defer func() {
		if !finished { // an error, or a panic of export on its way up
			close(z.quit)
			<-z.wdone
		}
	}()
	err = export(z.add)
	if err == nil {
		err = z.failed
	}
	if err != nil {
		return Manifest{}, err
	}
	close(z.jobs)
	<-z.wdone
	finished = true
	if z.werr != nil {
		return Manifest{}, z.werr
	}
	return z.manifest, nil
}

// newZipWriter returns the writer of the archive of h into w, once h has
// passed the manifest's rules.
func newZipWriter(w io.Writer, h domain.ArchiveHeader) (*zipWriter, error) {
	z := &zipWriter{
		h:        h,
		modified: h.CreatedAt.UTC(),
		seen:     map[string]struct{}{},
		jobs:     make(chan *entryJob, pendingEntries),
		quit:     make(chan struct{}),
		dead:     make(chan struct{}),
		wdone:    make(chan struct{}),
		entries:  []ManifestEntry{},
	}
	z.components = slices.Clone(h.Components)
	if len(z.components) == 0 {
		z.components = []string{ComponentConfig}
	}
	for _, c := range z.components {
		if !IsName(c) {
			return nil, fmt.Errorf("component %q: must be 1 to %d characters of [a-z0-9_-]", c, MaxComponentLen)
		}
	}
	z.defaultCmp = z.components[0]
	// What is written must pass the upload's checks, so that a download
	// can be uploaded again.
	if err := checkHeader(z.manifestOf(nil)); err != nil {
		return nil, fmt.Errorf("archive header: %s", domain.Public(err))
	}
	z.bw = bufio.NewWriterSize(w, writeSize)
	z.zw = zip.NewWriter(z.bw)
	// Large entries are written one after another, so one compressor
	// serves all: zip closes an entry's compressor before it asks for the
	// next one.
	z.zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		if z.fw == nil {
			z.fw = flatePool.Get().(*flate.Writer)
		}
		z.fw.Reset(out)
		return z.fw, nil
	})
	return z, nil
}

// add reads one item and hands it to the writer as the entry
// <component>/<item.Path>. An error is sticky: the archive is broken and
// every later add returns it too.
func (z *zipWriter) add(it domain.Item) error {
	if z.failed != nil {
		return z.failed
	}
	if err := z.addItem(it); err != nil {
		z.failed = err
		return err
	}
	return nil
}

func (z *zipWriter) addItem(it domain.Item) error {
	comp := it.Component
	if comp == "" {
		comp = z.defaultCmp
	}
	if !IsName(comp) {
		return fmt.Errorf("item %q: component %q must be 1 to %d characters of [a-z0-9_-]", it.Path, comp, MaxComponentLen)
	}
	name := comp + "/" + it.Path
	if it.Path == "" {
		return errors.New("item with an empty path")
	}
	if err := checkEntryName(name); err != nil {
		return fmt.Errorf("item path %q: %w", it.Path, err)
	}
	if _, dup := z.seen[name]; dup {
		return fmt.Errorf("item %q emitted twice", name)
	}
	z.seen[name] = struct{}{}
	if !slices.Contains(z.components, comp) {
		z.components = append(z.components, comp)
	}
	body := it.Body
	if body == nil {
		body = bytes.NewReader(nil)
	}
	buf := blockPool.Get().(*[]byte)
	n, err := io.ReadFull(body, *buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if it.Size >= 0 && int64(n) != it.Size {
			blockPool.Put(buf)
			return sizeMismatch(it, int64(n))
		}
		job := &entryJob{name: name, done: make(chan struct{})}
		go job.compressSmall(buf, n)
		return z.send(job)
	case err != nil:
		blockPool.Put(buf)
		return fmt.Errorf("item %q: %w", it.Path, err)
	}
	return z.stream(it, name, body, buf)
}

func sizeMismatch(it domain.Item, n int64) error {
	return fmt.Errorf("item %q: announced %d bytes but read %d (changed during export?)", it.Path, it.Size, n)
}

// send hands job to the writer.
func (z *zipWriter) send(job *entryJob) error {
	select {
	case z.jobs <- job:
		return nil
	case <-z.dead:
		return z.werr
	}
}

// stream hands a large item to the writer in blocks, first being its first
// full block, and hashes it meanwhile.
func (z *zipWriter) stream(it domain.Item, name string, body io.Reader, first *[]byte) error {
	method := zip.Store
	if compressibleSample((*first)[:sampleSize]) {
		method = zip.Deflate
	}
	job := &entryJob{name: name, method: method, blocks: make(chan block, pendingBlocks)}
	if err := z.send(job); err != nil {
		blockPool.Put(first)
		return err
	}
	put := func(b block) error {
		select {
		case job.blocks <- b:
			return nil
		case <-z.dead:
			return z.werr
		}
	}
	h := sha256.New()
	h.Write(*first)
	size := int64(len(*first))
	if err := put(block{data: *first, buf: first}); err != nil {
		return err
	}
	for {
		buf := blockPool.Get().(*[]byte)
		n, rerr := io.ReadFull(body, *buf)
		if n > 0 {
			h.Write((*buf)[:n])
			size += int64(n)
			if err := put(block{data: (*buf)[:n], buf: buf}); err != nil {
				return err
			}
		} else {
			blockPool.Put(buf)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err := fmt.Errorf("item %q: %w", it.Path, rerr)
			_ = put(block{final: true, err: err})
			return err
		}
	}
	if it.Size >= 0 && size != it.Size {
		err := sizeMismatch(it, size)
		_ = put(block{final: true, err: err})
		return err
	}
	return put(block{final: true, size: size, sum: h.Sum(nil)})
}

// compressibleSample reports whether deflate saves 10% on sample.
func compressibleSample(sample []byte) bool {
	fw := flatePool.Get().(*flate.Writer)
	defer flatePool.Put(fw)
	var cw countWriter
	fw.Reset(&cw)
	_, _ = fw.Write(sample)
	_ = fw.Close()
	return worthCompressing(len(sample), int(cw))
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// compressSmall hashes and, if that saves 10%, deflates the n bytes of
// buf, and closes j.done.
func (j *entryJob) compressSmall(buf *[]byte, n int) {
	defer close(j.done)
	data := (*buf)[:n]
	j.res = smallEntry{method: zip.Store, crc: crc32.ChecksumIEEE(data), size: int64(n), sum: sha256.Sum256(data), data: data, in: buf}
	if n == 0 {
		return
	}
	fw := flatePool.Get().(*flate.Writer)
	defer flatePool.Put(fw)
	out := bufferPool.Get().(*bytes.Buffer)
	out.Reset()
	fw.Reset(out)
	sample := data[:min(n, sampleSize)]
	_, _ = fw.Write(sample) // writes to a bytes.Buffer do not fail
	if n > len(sample) {
		_ = fw.Flush()
		if !worthCompressing(len(sample), out.Len()) {
			bufferPool.Put(out)
			return
		}
		_, _ = fw.Write(data[len(sample):])
	}
	_ = fw.Close()
	if !worthCompressing(n, out.Len()) {
		bufferPool.Put(out)
		return
	}
	j.res.method, j.res.data, j.res.out = zip.Deflate, out.Bytes(), out
}

// run is the writer goroutine: it writes the entries of z.jobs in order,
// then the manifest and the central directory.
func (z *zipWriter) run() {
	defer close(z.wdone)
	err := z.writeEntries()
	if err == nil {
		err = z.finish()
	}
	if z.fw != nil {
		flatePool.Put(z.fw)
		z.fw = nil
	}
	if err != nil && err != errQuit {
		z.werr = err
		close(z.dead)
	}
}

var errQuit = errors.New("zip writer stopped")

func (z *zipWriter) writeEntries() error {
	for {
		var job *entryJob
		select {
		case j, ok := <-z.jobs:
			if !ok {
				return nil
			}
			job = j
		case <-z.quit:
			return errQuit
		}
		var err error
		if job.blocks == nil {
			err = z.writeSmall(job)
		} else {
			err = z.writeLarge(job)
		}
		if err != nil {
			return err
		}
	}
}

func (z *zipWriter) writeSmall(job *entryJob) error {
	select {
	case <-job.done:
	case <-z.quit:
		return errQuit
	}
	r := &job.res
	defer func() {
		blockPool.Put(r.in)
		if r.out != nil {
			bufferPool.Put(r.out)
		}
	}()
	fh := z.rawHeader(job.name, r.method)
	fh.CRC32 = r.crc
	fh.CompressedSize64 = uint64(len(r.data))
	fh.UncompressedSize64 = uint64(r.size)
	w, err := z.zw.CreateRaw(fh)
	if err != nil {
		return fmt.Errorf("zip entry %s: %w", job.name, err)
	}
	if _, err := w.Write(r.data); err != nil {
		return fmt.Errorf("zip entry %s: %w", job.name, err)
	}
	z.entries = append(z.entries, ManifestEntry{Path: job.name, Size: r.size, SHA256: hex.EncodeToString(r.sum[:])})
	return nil
}

func (z *zipWriter) writeLarge(job *entryJob) error {
	w, err := z.zw.CreateHeader(&zip.FileHeader{Name: job.name, Method: job.method, Modified: z.modified})
	if err != nil {
		return fmt.Errorf("zip entry %s: %w", job.name, err)
	}
	for {
		var b block
		select {
		case b = <-job.blocks:
		case <-z.quit:
			return errQuit
		}
		if b.final {
			if b.err != nil {
				return b.err
			}
			z.entries = append(z.entries, ManifestEntry{Path: job.name, Size: b.size, SHA256: hex.EncodeToString(b.sum)})
			return nil
		}
		_, err := w.Write(b.data)
		blockPool.Put(b.buf)
		if err != nil {
			return fmt.Errorf("zip entry %s: %w", job.name, err)
		}
	}
}

// rawHeader is the header that CreateHeader would make for an entry named
// name, for CreateRaw (which takes the header as given): the UTF-8 flag
// for non-ASCII names, version 2.0, and the modification time as MS-DOS
// time and extended timestamp.
func (z *zipWriter) rawHeader(name string, method uint16) *zip.FileHeader {
	fh := &zip.FileHeader{Name: name, Method: method, Modified: z.modified, CreatorVersion: 20, ReaderVersion: 20}
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			fh.Flags |= 0x800
			break
		}
	}
	t := z.modified
	fh.ModifiedDate = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	fh.ModifiedTime = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	ext := make([]byte, 9)
	ext[0], ext[1] = 0x55, 0x54 // extended timestamp, 0x5455
	ext[2], ext[3] = 5, 0
	ext[4] = 1 // modification time follows
	mt := uint32(t.Unix())
	ext[5], ext[6], ext[7], ext[8] = byte(mt), byte(mt>>8), byte(mt>>16), byte(mt>>24)
	fh.Extra = ext
	return fh
}

// finish writes the manifest and the zip's central directory and flushes.
func (z *zipWriter) finish() error {
	z.manifest = z.manifestOf(z.entries)
	return writeManifestAndClose(z.zw, z.bw, z.manifest, z.modified)
}

// manifestOf is the manifest of the archive with entries.
func (z *zipWriter) manifestOf(entries []ManifestEntry) Manifest {
	h := z.h
	comps := slices.Clone(z.components)
	slices.Sort(comps)
	return Manifest{
		FormatVersion: FormatVersion, App: h.App, BackupID: h.BackupID, Name: h.Name, Description: h.Description,
		CreatedAt: z.modified, CreatedBy: h.CreatedBy, Origin: string(h.Origin), SchemaVersion: h.SchemaVersion,
		Source: h.SourceKind, Components: slices.Compact(comps), ItemCount: len(entries), Entries: entries,
	}
}

// writeManifestAndClose writes m as the last entry of zw, closes zw and
// flushes bw.
func writeManifestAndClose(zw *zip.Writer, bw *bufio.Writer, m Manifest, modified time.Time) error {
	mw, err := zw.CreateHeader(&zip.FileHeader{Name: ManifestPath, Method: zip.Deflate, Modified: modified})
	if err != nil {
		return fmt.Errorf("zip entry %s: %w", ManifestPath, err)
	}
	enc := json.NewEncoder(mw)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("close zip: %w", err)
	}
	return bw.Flush()
}
