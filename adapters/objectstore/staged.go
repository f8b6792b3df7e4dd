package objectstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/domain"
)

// stagedIdle is how long a read of a staging object may wait for its next
// chunk: a producer that purges an object while it is read must not hold
// the request (and a consumer) for the whole transfer timeout.
const stagedIdle = time.Minute

// errNoStaging answers transfers through the staging bucket when it is
// left out (Config.NoStaging).
var errNoStaging = domain.Errorf(domain.CodeUnavailable, "archives do not travel over NATS here: this backupd has no staging bucket (see docs/security.md); use the HTTP API")

// stagedReader reads the chunks of an object of the staging bucket in
// order, through an ordered pull consumer of its own. Unlike
// jetstream.ObjectStore.Get, whose push consumer delivers to a subject of
// the bucket's account, its pulls are requests whose replies come back
// through a JetStream API prefix, so it reads a bucket of another account.
// The bytes are checked against the object's size and digest: a mismatch
// fails the read that would end the object with
// jetstream.ErrDigestMismatch instead of io.EOF.
type stagedReader struct {
	ctx    context.Context
	st     jetstream.Stream
	cons   jetstream.Consumer
	it     jetstream.MessagesContext
	h      hash.Hash
	digest string
	size   uint64
	read   uint64
	buf    []byte
	err    error // sticky
}

// openStaged opens the object described by info (of the staging bucket b)
// for reading; ctx bounds every read.
func openStaged(ctx context.Context, b bucket, info *jetstream.ObjectInfo) (*stagedReader, error) {
	r := &stagedReader{ctx: ctx, h: sha256.New(), digest: info.Digest, size: info.Size}
	if info.Size == 0 {
		return r, nil
	}
	st, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		return nil, fmt.Errorf("staging bucket %s: %w", b.name, err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{fmt.Sprintf("$O.%s.C.%s", b.name, info.NUID)},
	})
	if err != nil {
		return nil, fmt.Errorf("read staging object %s: %w", info.Name, err)
	}
	if ci := cons.CachedInfo(); ci != nil && ci.NumPending < uint64(info.Chunks) {
		// Chunks are gone (purged while the object was described): fail
		// now rather than wait for them.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = st.DeleteConsumer(ctx, ci.Name)
		r.err = jetstream.ErrDigestMismatch
		return r, nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(8))
	if err != nil {
		return nil, fmt.Errorf("read staging object %s: %w", info.Name, err)
	}
	r.st, r.cons, r.it = st, cons, it
	return r, nil
}

func (r *stagedReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.read == r.size {
			r.err = io.EOF
			if jetstream.GetObjectDigestValue(r.h) != r.digest {
				r.err = jetstream.ErrDigestMismatch
			}
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, stagedIdle)
		msg, err := r.it.Next(jetstream.NextContext(ctx))
		cancel()
		if err != nil {
			if r.ctx.Err() == nil && ctx.Err() != nil {
				err = fmt.Errorf("no chunk for %s: %w", stagedIdle, jetstream.ErrDigestMismatch)
			}
			r.err = fmt.Errorf("read staging object: %w", err)
			continue
		}
		data := msg.Data()
		if r.read += uint64(len(data)); r.read > r.size {
			r.err = jetstream.ErrDigestMismatch // longer than recorded
			continue
		}
		if md, err := msg.Metadata(); err == nil && md.NumPending == 0 && r.read < r.size {
			r.err = jetstream.ErrDigestMismatch // the rest of its chunks is gone
			continue
		}
		r.h.Write(data)
		r.buf = data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close stops the reads and deletes the consumer.
func (r *stagedReader) Close() error {
	if r.it == nil {
		return nil
	}
	r.it.Stop()
	if info := r.cons.CachedInfo(); info != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 2*time.Second)
		defer cancel()
		_ = r.st.DeleteConsumer(ctx, info.Name) // else the server drops it when idle
	}
	return nil
}
