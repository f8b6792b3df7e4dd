package objectstore

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
)

const (
	// fanBlocks and fanBlockSize bound what an import holds of an upload
	// between its reading and its slowest consumer.
	fanBlocks    = 8
	fanBlockSize = 1 << 20
)

// fanout hands the blocks one producer reads to several consumers, each
// reading them all in order through its own io.Reader; a block is reused
// once every consumer has read it, so the slowest one sets the pace.
type fanout struct {
	free chan *fanBlock
	outs []chan *fanBlock
	quit chan struct{}
	once sync.Once
	err  error // why quit closed, or the producer's error; set before its channel closes
	end  error // io.EOF or the producer's error, set before outs close
}

type fanBlock struct {
	data []byte
	refs atomic.Int32
}

func newFanout(consumers, blocks, size int) *fanout {
	f := &fanout{free: make(chan *fanBlock, blocks), quit: make(chan struct{})}
	for range blocks {
		f.free <- &fanBlock{data: make([]byte, size)}
	}
	for range consumers {
		f.outs = append(f.outs, make(chan *fanBlock, blocks))
	}
	return f
}

// abort stops the producer and fails every consumer's reads with err
// (the first error wins).
func (f *fanout) abort(err error) {
	f.once.Do(func() {
		f.err = err
		close(f.quit)
	})
}

// fill reads r to its end into the consumers and returns how many bytes
// it read. It fails with CodeArchiveTooLarge as soon as r yields more than
// limit bytes, with r's error, or with abort's; the consumers then read
// that error.
func (f *fanout) fill(r io.Reader, limit int64) (size int64, err error) {
	defer func() {
		if err != nil {
			f.abort(err)
			err = f.err
		}
		f.end = io.EOF
		if err != nil {
			f.end = err
		}
		for _, o := range f.outs {
			close(o)
		}
	}()
	for {
		var b *fanBlock
		select {
		case b = <-f.free:
		case <-f.quit:
			return 0, f.err
		}
		n, rerr := io.ReadFull(r, b.data[:cap(b.data)])
		if n > 0 {
			if size += int64(n); size > limit {
				return 0, archive.TooLarge(size, limit)
			}
			b.data = b.data[:n]
			b.refs.Store(int32(len(f.outs)))
			for _, o := range f.outs {
				select {
				case o <- b:
				case <-f.quit:
					return 0, f.err
				}
			}
		} else {
			f.free <- b
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return size, nil
		case rerr != nil:
			return 0, fmt.Errorf("read archive: %w", rerr)
		}
		select {
		case <-f.quit:
			return 0, f.err
		default:
		}
	}
}

// reader returns consumer i's reader; it returns io.EOF after the last
// block, or the error that stopped the fanout.
func (f *fanout) reader(i int) io.Reader { return &fanReader{f: f, in: f.outs[i]} }

type fanReader struct {
	f   *fanout
	in  chan *fanBlock
	cur *fanBlock
	off int
}

func (r *fanReader) Read(p []byte) (int, error) {
	for r.cur == nil || r.off == len(r.cur.data) {
		if r.cur != nil {
			r.release()
		}
		select {
		case b, ok := <-r.in:
			if !ok {
				return 0, r.f.end
			}
			r.cur, r.off = b, 0
		case <-r.f.quit:
			return 0, r.f.err
		}
	}
	n := copy(p, r.cur.data[r.off:])
	r.off += n
	return n, nil
}

// WriteTo writes the blocks to w as they come, without copying them.
func (r *fanReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.cur != nil && r.off < len(r.cur.data) {
			n, err := w.Write(r.cur.data[r.off:])
			r.off += n
			total += int64(n)
			if err != nil {
				return total, err
			}
		}
		if _, err := r.Read(nil); err != nil { // releases the block, waits for the next
			if err == io.EOF {
				err = nil
			}
			return total, err
		}
	}
}

func (r *fanReader) release() {
	if r.cur.refs.Add(-1) == 0 {
		r.f.free <- r.cur
	}
	r.cur = nil
}
