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
