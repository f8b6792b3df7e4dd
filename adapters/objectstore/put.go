package objectstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// window is how many chunks of one archive may await their acknowledgement
// at once (4 MiB): enough to keep the stream busy, few enough that the
// server never buffers much of an archive. jetstream.ObjectStore.Put keeps
// up to 4000 chunks (500 MiB) in flight; with fsync on every write the
// stream's 128 MiB intake queue then fills and the put fails with 429
// (DESIGN §10), and an embedded server holds all of it in this process.
const window = 32

// ackTimeout bounds the wait for one chunk's acknowledgement.
const ackTimeout = 30 * time.Second

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
	old, err := b.obs.GetInfo(ctx, meta.Name, jetstream.GetObjectInfoShowDeleted())
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("get info: %w", err)
	}
	nuid := rand.Text()
	chunkSubj := fmt.Sprintf("$O.%s.C.%s", b.name, nuid)
	// No retries: a chunk sent again after later ones would be out of order.
	opts := []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}

	var (
		h      = sha256.New()
		queue  []inflight
		free   [][]byte
		size   uint64
		chunks uint32
		seqs   []uint64
	)
	next := func() error {
		f := queue[0]
		queue = queue[1:]
		select {
		case ack := <-f.ack.Ok():
			free = append(free, f.buf)
			seqs = append(seqs, ack.Sequence)
			return nil
		case err := <-f.ack.Err():
			return fmt.Errorf("chunk: %w", err)
		}
	}
	fail := func(err error) (*jetstream.ObjectInfo, error) {
		for len(queue) > 0 {
			_ = next()
		}
		if perr := a.purge(ctx, b, chunkSubj); perr != nil {
			err = errors.Join(err, perr)
		}
		return nil, err
	}
	for {
		var buf []byte
		if n := len(free); n > 0 {
			buf, free = free[n-1], free[:n-1]
		} else {
			buf = make([]byte, chunkSize)
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if !known {
				h.Write(buf[:n])
			}
			ack, err := a.pub.PublishMsgAsync(&nats.Msg{Subject: chunkSubj, Data: buf[:n]}, opts...)
			if err != nil {
				return fail(fmt.Errorf("publish chunk: %w", err))
			}
			queue = append(queue, inflight{ack, buf})
			size += uint64(n)
			chunks++
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fail(rerr)
		}
		for len(queue) >= window {
			if err := next(); err != nil {
				return fail(err)
			}
		}
	}
	for len(queue) > 0 {
		if err := next(); err != nil {
			return fail(err)
		}
	}

	digest := jetstream.GetObjectDigestValue(h)
	if commit != nil {
		sum, err := commit(&meta, &storedChunks{a: a, b: b, subject: chunkSubj, seqs: seqs, size: int64(size)})
		if err != nil {
			return fail(err)
		}
		if sum != nil {
			digest = "SHA-256=" + base64.URLEncoding.EncodeToString(sum)
		} else if known {
			return fail(errors.New("commit gave no digest"))
		}
	}
	info := &jetstream.ObjectInfo{ObjectMeta: meta, Bucket: b.name, NUID: nuid, Size: size, Chunks: chunks, Digest: digest}
	m := nats.NewMsg(fmt.Sprintf("$O.%s.M.%s", b.name, base64.URLEncoding.EncodeToString([]byte(meta.Name))))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	if m.Data, err = json.Marshal(info); err != nil {
		return fail(err)
	}
	if _, err := a.pub.PublishMsg(ctx, m, jetstream.WithExpectStream(b.stream)); err != nil {
		// The meta may have been stored all the same; WriteArchive deletes it.
		return fail(fmt.Errorf("publish meta: %w", err))
	}
	if old != nil && !old.Deleted && old.NUID != "" {
		// The replaced object's chunks; if this fails they stay orphaned
		// but the new object is complete.
		_ = a.purge(ctx, b, fmt.Sprintf("$O.%s.C.%s", b.name, old.NUID))
	}
	return info, nil
}

func (a *Archives) purge(ctx context.Context, b bucket, subject string) error {
	s, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		return fmt.Errorf("purge %s: %w", subject, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("purge %s: %w", subject, err)
	}
	return nil
}
