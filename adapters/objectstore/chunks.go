package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// storedChunks are the chunks put has stored for an object not yet
// committed: an io.ReaderAt over them reads them back by sequence.
type storedChunks struct {
	a       *Archives
	b       bucket
	subject string
	seqs    []uint64
	size    int64
}

// errNegativeOffset fails a read before the start of the chunks.
var errNegativeOffset = errors.New("an offset points before the start of the archive")

// chunkCache is how many chunks a chunkReader keeps: the zip reader reads
// each entry front to back, a few entries at once.
const chunkCache = 16

// reader returns an io.ReaderAt over the chunks, reading each with a
// (direct) get of its message; ctx bounds every read.
func (s *storedChunks) reader(ctx context.Context) (*chunkReader, error) {
	st, err := s.b.js.Stream(ctx, s.b.stream)
	if err != nil {
		return nil, fmt.Errorf("read back stored chunks: %w", err)
	}
	return &chunkReader{ctx: ctx, s: s, st: st, cache: make(map[int]*cachedChunk)}, nil
}

type cachedChunk struct {
	data []byte
	used uint64
}

type chunkReader struct {
	ctx   context.Context
	s     *storedChunks
	st    jetstream.Stream
	mu    sync.Mutex
	cache map[int]*cachedChunk
	clock uint64
}

func (r *chunkReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errNegativeOffset
	}
	n := 0
	for n < len(p) {
		if off >= r.s.size {
			return n, io.EOF
		}
		i := int(off / chunkSize)
		data, err := r.chunk(i)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], data[off-int64(i)*chunkSize:])
		n += c
		off += int64(c)
	}
	return n, nil
}

func (r *chunkReader) chunk(i int) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock++
	if c, ok := r.cache[i]; ok {
		c.used = r.clock
		return c.data, nil
	}
	if i >= len(r.s.seqs) {
		return nil, fmt.Errorf("read back stored chunks: no chunk %d of %d", i, len(r.s.seqs))
	}
	msg, err := r.st.GetMsg(r.ctx, r.s.seqs[i])
	if err != nil {
		return nil, fmt.Errorf("read back chunk %d: %w", i, err)
	}
	want := min(chunkSize, r.s.size-int64(i)*chunkSize)
	if msg.Subject != r.s.subject || int64(len(msg.Data)) != want {
		return nil, fmt.Errorf("read back chunk %d: message %d is not that chunk", i, r.s.seqs[i])
	}
	if len(r.cache) >= chunkCache {
		oldest, at := -1, ^uint64(0)
		for k, c := range r.cache {
			if c.used < at {
				oldest, at = k, c.used
			}
		}
		delete(r.cache, oldest)
	}
	r.cache[i] = &cachedChunk{data: msg.Data, used: r.clock}
	return msg.Data, nil
}
