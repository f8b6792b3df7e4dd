package feed

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// outFile is the JSON Lines file the feed appends to.
type outFile struct {
	path string
	f    *os.File
	w    *bufio.Writer
	// end is the file's size after openOut cut an incomplete last line;
	// truncated is how many bytes it cut.
	end, truncated int64
}

// openOut opens (or creates) the file at path for appending, and cuts an
// incomplete last line (a write cut short by a crash).
func openOut(path string) (*outFile, error) {
	_, err := os.Stat(path)
	created := errors.Is(err, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open output: %w", err)
	}
	o := &outFile{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10)}
	if err := o.recover(); err != nil {
		f.Close()
		return nil, err
	}
	if created {
		// The new file's name must survive a power cut too.
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return o, nil
}

// recover cuts an incomplete last line and leaves the offset at the end.
func (o *outFile) recover() error {
	size, err := o.f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("output %s: %w", o.path, err)
	}
	_, end, err := readTail(o.f, size, 0)
	if err != nil {
		return fmt.Errorf("output %s: %w", o.path, err)
	}
	if end < size {
		if err := o.f.Truncate(end); err != nil {
			return fmt.Errorf("output %s: cut the incomplete last line: %w", o.path, err)
		}
		if err := o.f.Sync(); err != nil {
			return fmt.Errorf("output %s: %w", o.path, err)
		}
		o.truncated = size - end
	}
	if _, err := o.f.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("output %s: %w", o.path, err)
	}
	o.end = end
	return nil
}

// lastLines returns the last n lines the file held when it was opened,
// without their newlines; fewer if it holds fewer.
func (o *outFile) lastLines(n int) ([][]byte, error) {
	lines, _, err := readTail(o.f, o.end, n)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", o.path, err)
	}
	return lines, nil
}

// readTail returns up to keep of the last complete lines (without their
// newline) of the first size bytes of r, and the offset just after the last
// newline (0 when there is none).
func readTail(r io.ReaderAt, size int64, keep int) (lines [][]byte, end int64, err error) {
	const chunk = 64 << 10
	var buf []byte // the bytes from pos to size
	pos := size
	for pos > 0 && bytes.Count(buf, []byte{'\n'}) <= keep {
		n := min(int64(chunk), pos)
		pos -= n
		b := make([]byte, n, int(n)+len(buf))
		if _, err := r.ReadAt(b, pos); err != nil {
			return nil, 0, err
		}
		buf = append(b, buf...)
	}
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 {
		if pos > 0 { // cannot happen: the loop reads until a newline
			return nil, 0, errors.New("no newline found")
		}
		return nil, 0, nil
	}
	end = pos + int64(i) + 1
	all := bytes.Split(buf[:i], []byte{'\n'})
	if pos > 0 {
		all = all[1:] // the first piece may be the end of an earlier line
	}
	if len(all) > keep {
		all = all[len(all)-keep:]
	}
	return all, end, nil
}

// write appends one event and its newline.
func (o *outFile) write(body []byte) error {
	o.w.Write(body)
	if err := o.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	return nil
}

// sync writes out the buffered lines and fsyncs the file.
func (o *outFile) sync() error {
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", o.path, err)
	}
	return nil
}

func (o *outFile) close() error { return o.f.Close() }

// syncDir fsyncs a directory, so that a file created in it stays.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
