package archive

import (
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
)

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

// directory is the walk of one zip's central directory by checkDirectory:
// each step reads one record and fills in what the next needs.
type directory struct {
	r          io.ReaderAt
	size       int64
	maxEntries int

	end     []byte // the end of central directory record, and its comment
	endOff  int64  // where the end record (or the zip64 one) starts
	records uint64 // entries the end record announces
	dirSize uint64
	dirOff  uint64
	base    int64 // bytes before the zip (a self-extracting archive)
	walked  int64 // bytes of directory records walked
}

// checkDirectory finds the end of the central directory as archive/zip
// does, then walks the directory's records without keeping them: at most
// maxEntries, names of at most MaxEntryNameLen+1 bytes, extra fields and
// comments of at most maxExtraLen, maxDirectoryBytes in all. It returns
// how many bytes zip.NewReader needs to read to parse the same directory.
// Errors of r are returned as they are.
func checkDirectory(r io.ReaderAt, size int64, maxEntries int) (int64, error) {
	d := &directory{r: r, size: size, maxEntries: maxEntries}
	steps := []func(*directory) error{
		(*directory).findEnd,
		(*directory).readZip64End,
		(*directory).checkRecordCount,
		(*directory).locate,
		(*directory).walk,
	}
	for _, step := range steps {
		if err := step(d); err != nil {
			return 0, err
		}
	}
	return d.walked + dirSearchLen + 1024 + dir64LocLen + dir64EndLen + 2*readAheadSlack, nil
}

func notZip() error {
	return invalid("not a zip archive (no end of central directory record; truncated?)")
}

// findEnd finds the end of central directory record in the last KiB of
// the file, else in its last 65 KiB (a long comment), and reads it.
func (d *directory) findEnd() error {
	for _, n := range []int64{1024, dirSearchLen} {
		n = min(n, d.size)
		buf := make([]byte, n)
		if _, err := d.r.ReadAt(buf, d.size-n); err != nil && err != io.EOF {
			return err
		}
		if p := findDirEnd(buf); p >= 0 {
			d.end, d.endOff = buf[p:], d.size-n+int64(p)
			d.records = uint64(le.Uint16(d.end[10:]))
			d.dirSize = uint64(le.Uint32(d.end[12:]))
			d.dirOff = uint64(le.Uint32(d.end[16:]))
			return nil
		}
		if n == d.size {
			break
		}
	}
	return notZip()
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

// readZip64End reads the zip64 end of central directory record, as
// archive/zip does, when a field of the end record is at its maximum and
// the zip64 locator precedes it.
func (d *directory) readZip64End() error {
	deferred := d.records == 0xffff || d.dirSize == 0xffff || d.dirOff == 0xffffffff
	if !deferred || d.endOff < dir64LocLen {
		return nil
	}
	loc := make([]byte, dir64LocLen)
	if _, err := d.r.ReadAt(loc, d.endOff-dir64LocLen); err != nil && err != io.EOF {
		return err
	}
	if le.Uint32(loc) != sigDir64Loc || le.Uint32(loc[4:]) != 0 || le.Uint32(loc[16:]) != 1 {
		return nil
	}
	p := int64(le.Uint64(loc[8:]))
	if p < 0 || p > d.size-dir64EndLen {
		return notZip()
	}
	rec := make([]byte, dir64EndLen)
	if _, err := d.r.ReadAt(rec, p); err != nil && err != io.EOF {
		return err
	}
	if le.Uint32(rec) != sigDir64End {
		return notZip()
	}
	d.records, d.dirSize, d.dirOff, d.endOff = le.Uint64(rec[32:]), le.Uint64(rec[40:]), le.Uint64(rec[48:]), p
	return nil
}

// checkRecordCount refuses more entries than allowed, as the end record
// announces them.
func (d *directory) checkRecordCount() error {
	if d.records > uint64(d.maxEntries) {
		return invalid("archive has %d entries, more than the %d allowed", d.records, d.maxEntries)
	}
	return nil
}

// locate finds where the directory starts: at its recorded offset plus the
// bytes before the zip, or at the recorded offset itself if a directory
// record is there; either inside the file.
func (d *directory) locate() error {
	outside := func() error {
		return invalid("not a readable zip archive (its central directory lies outside the file; truncated?)")
	}
	if d.dirSize > uint64(d.size) || d.dirOff > uint64(d.size) {
		return outside()
	}
	d.base = d.endOff - int64(d.dirSize) - int64(d.dirOff)
	if o := d.base + int64(d.dirOff); o < 0 || o >= d.size {
		return outside()
	}
	if d.base > 0 {
		sig := make([]byte, 4)
		if _, err := d.r.ReadAt(sig, int64(d.dirOff)); err == nil && le.Uint32(sig) == sigDirHeader {
			d.base = 0
		}
	}
	return nil
}

// walk reads the directory's records up to the first that is not one, and
// checks each (checkRecord), their number and their total size.
func (d *directory) walk() error {
	var (
		start = d.base + int64(d.dirOff)
		off   = start
		hdr   = make([]byte, dirHeaderLen)
		count int
	)
	for {
		n, err := d.r.ReadAt(hdr, off)
		if n < dirHeaderLen || le.Uint32(hdr) != sigDirHeader {
			if err != nil && err != io.EOF {
				return err
			}
			d.walked = off - start
			return nil
		}
		if count++; count > d.maxEntries {
			return invalid("archive has more than the %d entries allowed", d.maxEntries)
		}
		length, err := checkRecord(hdr)
		if err != nil {
			return err
		}
		if off += length; off-start > maxDirectoryBytes {
			return invalid("archive's central directory is larger than the %d bytes allowed", maxDirectoryBytes)
		}
	}
}

// checkRecord checks the lengths that the central directory record hdr
// gives of its variable parts, and returns the record's length.
func checkRecord(hdr []byte) (int64, error) {
	nameLen, extraLen, commentLen := int64(le.Uint16(hdr[28:])), int64(le.Uint16(hdr[30:])), int64(le.Uint16(hdr[32:]))
	if nameLen > MaxEntryNameLen+1 {
		return 0, invalid("archive has an entry name of %d bytes, more than the %d allowed", nameLen, MaxEntryNameLen)
	}
	if extraLen > maxExtraLen || commentLen > maxExtraLen {
		return 0, invalid("archive has an entry with more than %d bytes of extra fields or comment", maxExtraLen)
	}
	return dirHeaderLen + nameLen + extraLen + commentLen, nil
}

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
