package objectstore

import (
	"context"
	"io"

	"github.com/nats-io/nats.go/jetstream"
)

// PutRaw stores r as the object name of the archives' bucket with the same
// paced chunked put that archives use: the baseline of the benchmarks.
func (a *Archives) PutRaw(ctx context.Context, name string, r io.Reader) (int64, error) {
	obj, err := a.put(ctx, a.arch, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunkSize}}, r, nil, false)
	if err != nil {
		return 0, err
	}
	return int64(obj.Size), nil
}

// ErrUndecided is what the streamed pass answers when it leaves the
// decision to ValidateArchive.
var ErrUndecided = errUndecided

// StreamVerdict runs the streamed pass of an upload over raw, fed in reads
// of at most step bytes, and returns its verdict.
func StreamVerdict(ctx context.Context, raw []byte, step int, lim Limits) (Manifest, error) {
	s := newStreamCheck(&steppedReader{b: raw, step: step}, lim)
	s.run()
	return s.verdict(ctx, int64(len(raw)))
}

type steppedReader struct {
	b    []byte
	step int
}

func (r *steppedReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.b)
	r.b = r.b[n:]
	return n, nil
}
