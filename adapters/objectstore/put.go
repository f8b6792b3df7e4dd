package objectstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// chunkSize is the object store chunk size of archives, and the size of
// the writes into the store (archive.Write writes as much at a time).
const chunkSize = 128 << 10

// window is how many chunks of one archive may await their acknowledgement
// at once (4 MiB): enough to keep the stream busy, few enough that the
// server never buffers much of an archive. jetstream.ObjectStore.Put keeps
// up to 4000 chunks (500 MiB) in flight; with fsync on every write the
// stream's 128 MiB intake queue then fills and the put fails with 429
// (DESIGN §10), and an embedded server holds all of it in this process.
const window = 32

type inflight struct {
	ack jetstream.PubAckFuture
	buf []byte
}

// bucket is an object store bucket that put writes into.
type bucket struct {
	// js is the JetStream API of the bucket's account.
	js     jetstream.JetStream
	obs    jetstream.ObjectStore
	name   string
	stream string
}

func newBucket(js jetstream.JetStream, obs jetstream.ObjectStore, name string) bucket {
	return bucket{js: js, obs: obs, name: name, stream: "OBJ_" + name}
}

// commitFunc is called by put once all chunks are stored, before the
// object's meta record is: the object exists only from then on. It may
// complete meta, and returns the SHA-256 of the bytes put read, if known
// (else put's own is recorded); an error fails the put, which then purges
// the chunks and leaves no object. stored reads the chunks back.
type commitFunc func(meta *jetstream.ObjectMeta, stored *storedChunks) (sum []byte, err error)

// put stores r as the object meta.Name of b, exactly as
// jetstream.ObjectStore.Put does (chunks on "$O.<bucket>.C.<nuid>", then
// the ObjectInfo with its SHA-256 digest on
// "$O.<bucket>.M.<base64url(name)>" as a subject rollup, then the purge of
// a replaced object's chunks), but with at most window chunks
// unacknowledged. On an error the new chunks are purged and the old
// object, if any, is left as it was. ctx should not end before put
// returns: a read error of r is the way to stop it. commit, if not nil,
// decides whether the object is stored (see commitFunc); when it knows the
// digest, put does not hash the bytes itself. known says it will.
func (a *Archives) put(ctx context.Context, b bucket, meta jetstream.ObjectMeta, r io.Reader, commit commitFunc, known bool) (*jetstream.ObjectInfo, error) {
	cctx, cancel := a.call(ctx)
	old, err := b.obs.GetInfo(cctx, meta.Name, jetstream.GetObjectInfoShowDeleted())
	cancel()
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("get info: %w", err)
	}
	p := &chunkPut{a: a, b: b, nuid: rand.Text(), h: sha256.New(), known: known}
	if err := p.copy(r); err != nil {
		return nil, p.fail(ctx, err)
	}
	digest, err := p.digest(&meta, commit)
	if err != nil {
		return nil, p.fail(ctx, err)
	}
	info := &jetstream.ObjectInfo{ObjectMeta: meta, Bucket: b.name, NUID: p.nuid, Size: p.size, Chunks: p.chunks, Digest: digest}
	if err := a.publishMeta(ctx, b, info); err != nil {
		// The meta may have been stored all the same; WriteArchive deletes it.
		return nil, p.fail(ctx, err)
	}
	if old != nil && !old.Deleted && old.NUID != "" {
		// The replaced object's chunks; if this fails they stay orphaned
		// but the new object is complete.
		_ = a.purge(ctx, b, chunkSubject(b.name, old.NUID))
	}
	return info, nil
}

// chunkSubject is the subject of the chunks of the object nuid of bucket.
func chunkSubject(bucket, nuid string) string { return fmt.Sprintf("$O.%s.C.%s", bucket, nuid) }

// chunkPut is the chunks of one put: published asynchronously, at most
// window of them awaiting their acknowledgement.
type chunkPut struct {
	a     *Archives
	b     bucket
	nuid  string
	h     hash.Hash // of the bytes, unless known
	known bool      // the commit gives the digest
	queue []inflight
	free  [][]byte // chunk buffers whose publish was acknowledged
	size  uint64
	// chunks counts the chunks published; seqs are the stream sequences
	// of those acknowledged, in order.
	chunks uint32
	seqs   []uint64
}

// copy publishes the bytes of r as chunks until r ends, and waits for
// every acknowledgement. It returns r's error as it is.
func (p *chunkPut) copy(r io.Reader) error {
	subject := chunkSubject(p.b.name, p.nuid)
	// No retries: a chunk sent again after later ones would be out of order.
	opts := []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}
	for {
		var buf []byte
		if n := len(p.free); n > 0 {
			buf, p.free = p.free[n-1], p.free[:n-1]
		} else {
			buf = make([]byte, chunkSize)
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if !p.known {
				p.h.Write(buf[:n])
			}
			ack, err := p.a.pub.PublishMsgAsync(&nats.Msg{Subject: subject, Data: buf[:n]}, opts...)
			if err != nil {
				return fmt.Errorf("publish chunk: %w", err)
			}
			p.queue = append(p.queue, inflight{ack, buf})
			p.size += uint64(n)
			p.chunks++
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return p.await(0)
		}
		if rerr != nil {
			return rerr
		}
		if err := p.await(window - 1); err != nil {
			return err
		}
	}
}

// await waits for acknowledgements, oldest first, until at most n chunks
// await theirs.
func (p *chunkPut) await(n int) error {
	for len(p.queue) > n {
		if err := p.next(); err != nil {
			return err
		}
	}
	return nil
}

// next waits for the acknowledgement of the oldest chunk in flight.
func (p *chunkPut) next() error {
	f := p.queue[0]
	p.queue = p.queue[1:]
	select {
	case ack := <-f.ack.Ok():
		p.free = append(p.free, f.buf)
		p.seqs = append(p.seqs, ack.Sequence)
		return nil
	case err := <-f.ack.Err():
		return fmt.Errorf("chunk: %w", err)
	}
}

// digest returns the object's digest: what commit gives, if anything,
// else p's own. commit's error is returned as it is.
func (p *chunkPut) digest(meta *jetstream.ObjectMeta, commit commitFunc) (string, error) {
	digest := jetstream.GetObjectDigestValue(p.h)
	if commit == nil {
		return digest, nil
	}
	sum, err := commit(meta, &storedChunks{a: p.a, b: p.b, subject: chunkSubject(p.b.name, p.nuid), seqs: p.seqs, size: int64(p.size)})
	switch {
	case err != nil:
		return "", err
	case sum != nil:
		return "SHA-256=" + base64.URLEncoding.EncodeToString(sum), nil
	case p.known:
		return "", errors.New("commit gave no digest")
	}
	return digest, nil
}

// fail waits for the chunks in flight, purges every chunk of p and
// returns err, joined with the purge's error.
func (p *chunkPut) fail(ctx context.Context, err error) error {
	for len(p.queue) > 0 {
		_ = p.next()
	}
	if perr := p.a.purge(ctx, p.b, chunkSubject(p.b.name, p.nuid)); perr != nil {
		err = errors.Join(err, perr)
	}
	return err
}

// publishMeta publishes info as the object's meta record, replacing the
// previous one: from then on the object exists.
func (a *Archives) publishMeta(ctx context.Context, b bucket, info *jetstream.ObjectInfo) error {
	m := nats.NewMsg(fmt.Sprintf("$O.%s.M.%s", b.name, base64.URLEncoding.EncodeToString([]byte(info.Name))))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	m.Data = data
	ctx, cancel := a.call(ctx)
	defer cancel()
	if _, err := a.pub.PublishMsg(ctx, m, jetstream.WithExpectStream(b.stream)); err != nil {
		return fmt.Errorf("publish meta: %w", err)
	}
	return nil
}

// purge removes the messages of subject from b's stream.
func (a *Archives) purge(ctx context.Context, b bucket, subject string) error {
	ctx, cancel := a.call(ctx)
	defer cancel()
	s, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		return fmt.Errorf("purge %s: %w", subject, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("purge %s: %w", subject, err)
	}
	return nil
}
