package archive

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/flate"
)

// The streamed pass checks an upload as its bytes arrive, so that they
// need not be written anywhere but the object store, nor read again. It
// walks the zip's local entries front to back, inflating and hashing each,
// and keeps what the central directory's check needs: the local headers,
// the bytes after the last entry (the central directory) and the last
// suffixLen bytes. validate then runs over those, with each entry's
// content checked against what the pass recorded.
//
// The pass only ever accepts: whatever it cannot follow (bytes before or
// between entries, a stored entry of unknown size, a data descriptor
// without its signature), whatever validate would have to read that the
// pass did not keep, and every verdict but "valid" leave the decision to
// Validate reading the stored bytes back. So it accepts exactly
// what Validate accepts, and refusals keep Validate's words.

// ErrUndecided is wrapped by every answer of StreamCheck.Verdict but a
// manifest: the streamed pass cannot decide, and leaves the decision to
// Validate.
var ErrUndecided = errors.New("the streamed pass cannot decide")

const (
	sigLocalHeader = 0x04034b50
	sigDataDesc    = 0x08074b50
	localHeaderLen = 30
	// suffixLen is how many of the archive's last bytes are kept whatever
	// they are: the zip reader looks for the end of the central directory
	// in the last KiB, then (if it has a long comment) in the last 65. Few
	// archives have a long comment, and those are left to Validate
	// rather than copying 65 KiB of every read.
	suffixLen = 4 << 10
	// maxTailBytes bounds the bytes after the last entry kept in memory.
	maxTailBytes = maxDirectoryBytes + suffixLen
	// streamBufSize is the read buffer of the pass.
	streamBufSize = 256 << 10
)

var (
	le           = binary.LittleEndian
	sigDescBytes = []byte{0x50, 0x4b, 0x07, 0x08}
)

// streamRecord is what the pass learned of one local entry.
type streamRecord struct {
	name    string
	method  uint16
	csize   int64 // its data's bytes in the archive
	usize   int64
	crc     uint32
	sum     [sha256.Size]byte
	content []byte // for an entry named ManifestPath, its first limit+1 bytes
}

// StreamCheck is the streamed pass over one archive: Run reads it, then
// Verdict says whether it is valid or leaves the decision to Validate.
type StreamCheck struct {
	lim       Limits
	feed      *suffixReader
	br        *bufio.Reader
	fr        io.ReadCloser           // the inflater, reused
	headers   map[int64][]byte        // local headers by offset
	records   map[int64]*streamRecord // by data offset
	inflated  int64
	tailStart int64
	tail      []byte
	err       error // why the pass cannot decide
	hasher    *hashPipe
}

// NewStreamCheck returns the streamed pass over the archive that r yields,
// with the limits of Validate.
func NewStreamCheck(r io.Reader, lim Limits) *StreamCheck {
	feed := &suffixReader{r: r, ring: make([]byte, suffixLen)}
	return &StreamCheck{
		lim:       lim.withDefaults(),
		feed:      feed,
		br:        bufio.NewReaderSize(feed, streamBufSize),
		headers:   make(map[int64][]byte),
		records:   make(map[int64]*streamRecord),
		tailStart: -1,
		hasher:    newHashPipe(),
	}
}

// Run walks the archive, then reads the rest of it: r is always read to
// its end (or its error). It holds a few hundred KiB of the archive at a
// time, its local headers and its central directory.
func (s *StreamCheck) Run() {
	defer s.hasher.close()
	s.err = s.walk()
	if s.fr != nil {
		s.fr.Close()
	}
	if s.err != nil {
		_, _ = io.Copy(io.Discard, s.br)
	}
}

// pos is the offset in the archive of the next byte the pass reads.
func (s *StreamCheck) pos() int64 { return s.feed.n - int64(s.br.Buffered()) }

func (s *StreamCheck) walk() error {
	for {
		off := s.pos()
		b, err := s.br.Peek(4)
		if err != nil {
			return fmt.Errorf("at byte %d: %w", off, err)
		}
		switch le.Uint32(b) {
		case sigLocalHeader:
			if len(s.records) >= s.lim.MaxEntries {
				return errors.New("too many local entries")
			}
			if err := s.entry(off); err != nil {
				return fmt.Errorf("entry at byte %d: %w", off, err)
			}
		case sigDirHeader, sigDirEnd, sigDir64End:
			return s.readTail(off)
		default:
			return fmt.Errorf("no local header at byte %d", off)
		}
	}
}

func (s *StreamCheck) readTail(off int64) error {
	var tail bytes.Buffer
	n, err := io.Copy(&tail, io.LimitReader(s.br, maxTailBytes+1))
	if err != nil {
		return err
	}
	if n > maxTailBytes {
		return errors.New("too many bytes after the last entry")
	}
	s.tailStart, s.tail = off, tail.Bytes()
	return nil
}

func (s *StreamCheck) entry(off int64) error {
	hdr, err := s.br.Peek(localHeaderLen)
	if err != nil {
		return err
	}
	flags, method := le.Uint16(hdr[6:]), le.Uint16(hdr[8:])
	csize, usize := int64(le.Uint32(hdr[18:])), int64(le.Uint32(hdr[22:]))
	nameLen, extraLen := int(le.Uint16(hdr[26:])), int(le.Uint16(hdr[28:]))
	if nameLen > MaxEntryNameLen+1 || extraLen > maxExtraLen {
		return errors.New("name or extra field too long")
	}
	if flags&0x1 != 0 {
		return errors.New("encrypted")
	}
	full, err := s.br.Peek(localHeaderLen + nameLen + extraLen)
	if err != nil {
		return err
	}
	raw := bytes.Clone(full)
	if _, err := s.br.Discard(len(raw)); err != nil {
		return err
	}
	s.headers[off] = raw
	rec := &streamRecord{name: string(raw[localHeaderLen : localHeaderLen+nameLen]), method: method}
	dataOff := off + int64(len(raw))
	s.records[dataOff] = rec

	desc := flags&0x8 != 0
	if !desc && (csize == 0xffffffff || usize == 0xffffffff) {
		if csize, usize, err = zip64Sizes(raw[localHeaderLen+nameLen:], csize, usize); err != nil {
			return err
		}
	}
	e := &entryHash{s: s, rec: rec}
	switch {
	case method == zip.Store && !desc:
		err = s.stored(csize, e)
	case method == zip.Store:
		err = s.storedUntilDescriptor(e)
	case method == zip.Deflate:
		err = s.inflate(dataOff, csize, desc, e)
	default:
		err = fmt.Errorf("compression method %d", method)
	}
	if err != nil {
		return err
	}
	rec.csize, rec.crc = s.pos()-dataOff, e.crc
	rec.sum = s.hasher.sum()
	if desc {
		n, err := s.descriptor(rec.crc, rec.csize, rec.usize)
		if err != nil {
			return err
		}
		_, err = s.br.Discard(n)
		return err
	}
	if rec.csize != csize || rec.usize != usize {
		return errors.New("sizes differ from the local header's")
	}
	return nil
}

// entryHash takes in an entry's content.
type entryHash struct {
	s   *StreamCheck
	crc uint32
	rec *streamRecord
}

// consume takes in b, which it copies.
func (e *entryHash) consume(b []byte) error {
	e.s.hasher.write(b)
	return e.account(b)
}

// consumeOwned takes in b, a buffer of the hasher's.
func (e *entryHash) consumeOwned(b []byte) error {
	err := e.account(b)
	e.s.hasher.send(b)
	return err
}

func (e *entryHash) account(b []byte) error {
	e.crc = crc32.Update(e.crc, crc32.IEEETable, b)
	rec, lim := e.rec, e.s.lim
	if rec.name == ManifestPath && int64(len(rec.content)) <= lim.MaxManifestBytes {
		rec.content = append(rec.content, b[:min(int64(len(b)), lim.MaxManifestBytes+1-int64(len(rec.content)))]...)
	}
	rec.usize += int64(len(b))
	if e.s.inflated += int64(len(b)); e.s.inflated > lim.MaxUncompressedBytes+lim.MaxManifestBytes {
		return errors.New("inflates beyond the limits")
	}
	return nil
}

// stored hashes the next n bytes.
func (s *StreamCheck) stored(n int64, e *entryHash) error {
	for n > 0 {
		b, err := s.br.Peek(int(min(n, int64(s.br.Size()))))
		if len(b) == 0 {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if err := e.consume(b); err != nil {
			return err
		}
		if _, err := s.br.Discard(len(b)); err != nil {
			return err
		}
		n -= int64(len(b))
	}
	return nil
}

// storedUntilDescriptor hashes the bytes of a stored entry whose size only
// its data descriptor tells: up to the first descriptor signature
// followed by the CRC-32 and sizes of the bytes before it and by the next
// record's signature.
func (s *StreamCheck) storedUntilDescriptor(e *entryHash) error {
	for {
		if s.br.Buffered() < 32 {
			_, _ = s.br.Peek(32) // fills the buffer; short at the end
		}
		b, _ := s.br.Peek(s.br.Buffered())
		i := bytes.Index(b, sigDescBytes)
		if i < 0 {
			if len(b) < 32 {
				return errors.New("stored entry without its data descriptor")
			}
			i = len(b) - 3 // a signature may begin in the last bytes
		}
		if i == 0 {
			if b, _ = s.br.Peek(32); len(b) >= 4 && descriptorLen(b[4:], e.crc, e.rec.usize, e.rec.usize) > 0 {
				return nil // entry reads the descriptor
			}
			i = 1 // content that looks like a signature
		}
		if err := e.consume(b[:i]); err != nil {
			return err
		}
		if _, err := s.br.Discard(i); err != nil {
			return err
		}
	}
}

// inflate inflates an entry's data: csize bytes, or with desc up to the
// end of its deflate stream.
func (s *StreamCheck) inflate(dataOff, csize int64, desc bool, e *entryHash) error {
	if s.fr == nil {
		s.fr = flate.NewReader(s.br)
	} else if err := s.fr.(flate.Resetter).Reset(s.br, nil); err != nil {
		return err
	}
	var out int64
	for {
		buf := s.hasher.buffer()
		n, err := s.fr.Read(buf)
		if n > 0 {
			if cerr := e.consumeOwned(buf[:n]); cerr != nil {
				return cerr
			}
			out += int64(n)
			in := s.pos() - dataOff
			if !desc && in > csize {
				return errors.New("deflate data runs past its size")
			}
			if out > ratioFloor && out > (in+1)*int64(s.lim.MaxRatio) {
				return errors.New("inflates too much")
			}
		} else {
			s.hasher.send(buf[:0])
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// descriptor returns the length of the data descriptor that follows,
// signature included, if it says crc, csize and usize.
func (s *StreamCheck) descriptor(crc uint32, csize, usize int64) (int, error) {
	b, _ := s.br.Peek(32)
	skip := 0
	if len(b) >= 4 && le.Uint32(b) == sigDataDesc {
		skip = 4
	}
	if n := descriptorLen(b[skip:], crc, csize, usize); n > 0 {
		return skip + n, nil
	}
	return 0, errors.New("data descriptor not as expected")
}

// descriptorLen returns the length of the data descriptor (after its
// signature) at the start of b if it says crc, csize and usize, with
// 4-byte or 8-byte sizes, and the next record's signature follows it;
// else 0.
func descriptorLen(b []byte, crc uint32, csize, usize int64) int {
	next := func(b []byte) bool {
		if len(b) < 4 {
			return false
		}
		sig := le.Uint32(b)
		return sig == sigLocalHeader || sig == sigDirHeader
	}
	if len(b) >= 12 && le.Uint32(b) == crc && csize < 1<<32 && usize < 1<<32 &&
		int64(le.Uint32(b[4:])) == csize && int64(le.Uint32(b[8:])) == usize && next(b[12:]) {
		return 12
	}
	if len(b) >= 20 && le.Uint32(b) == crc && le.Uint64(b[4:]) == uint64(csize) && le.Uint64(b[12:]) == uint64(usize) && next(b[20:]) {
		return 20
	}
	return 0
}

// zip64Sizes reads the sizes a local header leaves to its zip64 extra
// field.
func zip64Sizes(extra []byte, csize, usize int64) (int64, int64, error) {
	for len(extra) >= 4 {
		id, n := le.Uint16(extra), int(le.Uint16(extra[2:]))
		extra = extra[4:]
		if n > len(extra) {
			break
		}
		if id == 0x0001 {
			f := extra[:n]
			if usize == 0xffffffff {
				if len(f) < 8 {
					break
				}
				usize, f = int64(le.Uint64(f)), f[8:]
			}
			if csize == 0xffffffff {
				if len(f) < 8 {
					break
				}
				csize = int64(le.Uint64(f))
			}
			if csize < 0 || usize < 0 {
				break
			}
			return csize, usize, nil
		}
		extra = extra[n:]
	}
	return 0, 0, errors.New("zip64 sizes missing")
}

// Verdict is the pass's verdict, once Run has returned, on the archive of
// size bytes: its manifest if it is valid, else an error wrapping
// ErrUndecided (whatever it could not follow, and every refusal: Validate
// then decides, reading the archive again, so a refusal always has
// Validate's words). It accepts only what Validate accepts, with the same
// manifest.
func (s *StreamCheck) Verdict(ctx context.Context, size int64) (Manifest, error) {
	if s.err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrUndecided, s.err)
	}
	if s.feed.n != size {
		return Manifest{}, fmt.Errorf("%w: read %d bytes of %d", ErrUndecided, s.feed.n, size)
	}
	suffix := s.feed.suffix()
	start := size - int64(len(suffix))
	if s.tailStart >= 0 && s.tailStart < start {
		suffix, start = s.tail, s.tailStart
	}
	r := &keptReader{headers: s.headers, suffix: suffix, start: start, size: size}
	m, err := validate(ctx, r, size, s.lim, streamedContents{s})
	switch {
	case r.missed:
		return Manifest{}, fmt.Errorf("%w: needs bytes it did not keep", ErrUndecided)
	case err != nil:
		return Manifest{}, fmt.Errorf("%w: %v", ErrUndecided, err)
	}
	return m, nil
}

// keptReader reads the bytes the pass kept: the local headers and the
// suffix of the archive from start. Any other read fails and sets missed.
type keptReader struct {
	headers map[int64][]byte
	suffix  []byte
	start   int64
	size    int64
	missed  bool
}

func (r *keptReader) ReadAt(p []byte, off int64) (int, error) {
	switch {
	case off < 0:
		return 0, errNegativeOffset
	case off >= r.size:
		return 0, io.EOF
	case off >= r.start:
		n := copy(p, r.suffix[off-r.start:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	if h, ok := r.headers[off]; ok && len(p) <= len(h) {
		return copy(p, h), nil
	}
	r.missed = true
	return 0, ErrUndecided
}

// streamedContents are the entries' contents as the pass recorded them.
type streamedContents struct{ s *StreamCheck }

func (c streamedContents) record(f *zip.File) (*streamRecord, error) {
	off, err := f.DataOffset()
	if err != nil {
		return nil, err
	}
	rec := c.s.records[off]
	if rec == nil || rec.name != f.Name || rec.method != f.Method || rec.csize != int64(f.CompressedSize64) ||
		rec.usize != int64(f.UncompressedSize64) || rec.crc != f.CRC32 {
		return nil, fmt.Errorf("%w: entry %q differs from its local record", ErrUndecided, f.Name)
	}
	return rec, nil
}

func (c streamedContents) manifest(f *zip.File, limit int64) ([]byte, error) {
	rec, err := c.record(f)
	if err != nil {
		return nil, err
	}
	if int64(len(rec.content)) != min(rec.usize, limit+1) {
		return nil, fmt.Errorf("%w: %s not kept", ErrUndecided, ManifestPath)
	}
	return rec.content, nil
}

func (c streamedContents) verify(_ context.Context, jobs []verifyJob) error {
	for _, j := range jobs {
		rec, err := c.record(j.f)
		if err != nil {
			return err
		}
		if rec.usize != j.want.Size || hex.EncodeToString(rec.sum[:]) != j.want.SHA256 {
			return fmt.Errorf("%w: entry %q differs from %s", ErrUndecided, j.f.Name, ManifestPath)
		}
	}
	return nil
}

// suffixReader reads r, counting the bytes and keeping the last
// len(ring) of them.
type suffixReader struct {
	r    io.Reader
	n    int64
	ring []byte
}

func (s *suffixReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	b := p[:n]
	if len(b) > len(s.ring) {
		s.n += int64(len(b) - len(s.ring))
		b = b[len(b)-len(s.ring):]
	}
	for len(b) > 0 {
		w := int(s.n % int64(len(s.ring)))
		c := copy(s.ring[w:], b)
		s.n += int64(c)
		b = b[c:]
	}
	return n, err
}

// suffix returns the last bytes read, at most len(ring).
func (s *suffixReader) suffix() []byte {
	k := int64(len(s.ring))
	if s.n <= k {
		return bytes.Clone(s.ring[:s.n])
	}
	w := int(s.n % k)
	return append(bytes.Clone(s.ring[w:]), s.ring[:w]...)
}

// hashPipe computes SHA-256 digests on a goroutine of its own, so that an
// entry is hashed while the next bytes are inflated.
type hashPipe struct {
	in   chan []byte // nil: the entry ends
	sums chan [sha256.Size]byte
	free chan []byte
}

const (
	hashBuffers = 4
	hashBufSize = 256 << 10
)

func newHashPipe() *hashPipe {
	p := &hashPipe{in: make(chan []byte, hashBuffers), sums: make(chan [sha256.Size]byte), free: make(chan []byte, hashBuffers)}
	for range hashBuffers {
		p.free <- make([]byte, hashBufSize)
	}
	go func() {
		h := sha256.New()
		for b := range p.in {
			if b == nil {
				var sum [sha256.Size]byte
				h.Sum(sum[:0])
				h.Reset()
				p.sums <- sum
				continue
			}
			h.Write(b)
			p.free <- b[:cap(b)]
		}
	}()
	return p
}

// write hashes a copy of b as part of the current entry.
func (p *hashPipe) write(b []byte) {
	for len(b) > 0 {
		buf := <-p.free
		n := copy(buf, b)
		p.in <- buf[:n]
		b = b[n:]
	}
}

// buffer returns a buffer to fill and send.
func (p *hashPipe) buffer() []byte { return <-p.free }

// send hashes b, a buffer from buffer, as part of the current entry;
// b belongs to the pipe from now on.
func (p *hashPipe) send(b []byte) {
	if len(b) == 0 {
		p.free <- b[:cap(b)]
		return
	}
	p.in <- b
}

// sum returns the digest of the current entry and starts the next.
func (p *hashPipe) sum() [sha256.Size]byte {
	p.in <- nil
	return <-p.sums
}

func (p *hashPipe) close() { close(p.in) }
