package objectstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/domain"
)

var _ domain.ArchiveTransfer = (*Archives)(nil)

// ImportArchive reads a zip from r into a temporary file (Config.TempDir),
// validates it there (ValidateArchive, with the limits of Config) and
// stores it unchanged under backupID. It returns the stored archive's
// size, SHA-256 and entry count with the manifest's header.
//
// A refused archive returns an *domain.Error with CodeArchiveTooLarge (as
// soon as r yields more than Config.MaxUploadBytes), CodeArchiveVersion or
// CodeArchiveInvalid, and nothing is stored. A bad backup id returns one
// with CodeInvalidArgument. An error reading r, the end of ctx, and the
// object store's errors are returned wrapped; then too nothing is left
// under backupID. The temporary file is always removed.
func (a *Archives) ImportArchive(ctx context.Context, backupID string, r io.Reader) (domain.ImportedArchive, error) {
	if err := checkBackupID(backupID); err != nil {
		return domain.ImportedArchive{}, err
	}
	if r == nil {
		r = strings.NewReader("") // refused as not a zip
	}
	return a.importFrom(ctx, backupID, r, func(err error) error { return err })
}

// ImportStaged is ImportArchive of the object named object in the staging
// bucket (Config.StagingBucket). The staging object is deleted whatever the
// outcome; should that fail, the bucket's TTL removes it. A missing object
// returns an *domain.Error with CodeNotFound, an empty or overlong name one
// with CodeInvalidArgument; a staging object whose bytes do not match its
// own digest is CodeArchiveInvalid.
func (a *Archives) ImportStaged(ctx context.Context, backupID, object string) (domain.ImportedArchive, error) {
	if object == "" || len(object) > 1024 {
		return domain.ImportedArchive{}, domain.Errorf(domain.CodeInvalidArgument, "staging object name must be 1 to 1024 bytes")
	}
	oi, err := a.staging.obs.GetInfo(ctx, object)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return domain.ImportedArchive{}, domain.Errorf(domain.CodeNotFound, "no object %q in the staging bucket %s (expired, or never put?)", object, a.staging.name)
	}
	if err != nil {
		return domain.ImportedArchive{}, fmt.Errorf("staging object %s: %w", object, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = a.staging.obs.Delete(cctx, object) // else the bucket's TTL removes it
	}()
	if err := checkBackupID(backupID); err != nil {
		return domain.ImportedArchive{}, err
	}
	if int64(oi.Size) > a.cfg.MaxUploadBytes {
		return domain.ImportedArchive{}, tooLarge(int64(oi.Size), a.cfg.MaxUploadBytes)
	}
	rctx, cancel := readContext(ctx)
	defer cancel()
	res, err := a.staging.obs.Get(rctx, object)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return domain.ImportedArchive{}, domain.Errorf(domain.CodeNotFound, "no object %q in the staging bucket %s (expired, or never put?)", object, a.staging.name)
	}
	if err != nil {
		return domain.ImportedArchive{}, fmt.Errorf("staging object %s: %w", object, err)
	}
	defer res.Close()
	return a.importFrom(ctx, backupID, res, func(err error) error {
		if errors.Is(err, jetstream.ErrDigestMismatch) {
			return invalid("staging object %q does not match its own digest (damaged, or replaced while it was read)", object)
		}
		return err
	})
}

// readContext bounds a read whose context has no deadline; nats.go would
// otherwise stop it after its default API timeout (5 s).
func readContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, readTimeout)
}

// importFrom spools r into a temporary file and validates it there while
// a put stores the file's bytes as they arrive; the object is committed
// (its meta record published, which is what makes it exist) only once the
// archive is valid, else its chunks are purged. This costs the time of
// the slower of the two, not of both.
func (a *Archives) importFrom(ctx context.Context, backupID string, r io.Reader, mapErr func(error) error) (domain.ImportedArchive, error) {
	f, err := os.CreateTemp(a.cfg.TempDir, "backupledger-upload-*.zip")
	if err != nil {
		return domain.ImportedArchive{}, fmt.Errorf("spool upload: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	gf := newGrowingFile(f)
	stop := context.AfterFunc(ctx, func() { gf.fail(context.Cause(ctx)) })
	defer stop()
	vctx, vcancel := context.WithCancelCause(ctx)
	defer vcancel(nil)

	type checked struct {
		m    Manifest
		size int64
		sum  []byte
		err  error
	}
	done := make(chan checked, 1)
	go func() {
		var c checked
		c.size, c.sum, c.err = spoolTo(vctx, r, gf, a.cfg.MaxUploadBytes)
		if c.err == nil {
			c.m, c.err = ValidateArchive(vctx, f, c.size, a.cfg.Limits())
		}
		if c.err != nil {
			c.err = mapErr(c.err)
			gf.fail(c.err) // the put stops reading
		}
		done <- c
	}()
	var (
		res      checked
		received bool
	)
	meta := jetstream.ObjectMeta{
		Name:    backupID,
		Headers: map[string][]string{"Content-Type": {"application/zip"}},
		Opts:    &jetstream.ObjectMetaOptions{ChunkSize: chunkSize},
	}
	obj, err := a.put(context.WithoutCancel(ctx), a.arch, meta, gf.reader(), func(meta *jetstream.ObjectMeta) ([]byte, error) {
		res, received = <-done, true
		if res.err != nil {
			return nil, res.err
		}
		meta.Description = "backupledger archive uploaded, made of app " + res.m.App
		meta.Metadata = map[string]string{"app": res.m.App, "format_version": fmt.Sprint(res.m.FormatVersion), "uploaded": "true"}
		return res.sum, nil
	}, true)
	if !received {
		gf.fail(errPutEnded)
		vcancel(errPutEnded)
		res = <-done
		if errors.Is(res.err, errPutEnded) || errors.Is(res.err, context.Canceled) && ctx.Err() == nil {
			res.err = nil // the put's error tells what happened
		}
	}
	if res.err != nil {
		err = res.err
	}
	if err == nil && int64(obj.Size) != res.size {
		err = fmt.Errorf("stored %d bytes of %d", obj.Size, res.size)
	}
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return domain.ImportedArchive{}, err // refused: the put stored nothing
		}
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		err = fmt.Errorf("import archive as %s: %w", backupID, err)
		a.removeFailed(ctx, backupID, &err)
		return domain.ImportedArchive{}, err
	}
	m := res.m
	return domain.ImportedArchive{
		ArchiveInfo: domain.ArchiveInfo{SizeBytes: res.size, SHA256: hex.EncodeToString(res.sum), ItemCount: m.ItemCount},
		App:         m.App, BackupID: m.BackupID, Name: m.Name, Description: m.Description, CreatedAt: m.CreatedAt.UTC(),
		SchemaVersion: m.SchemaVersion, Source: m.Source, Components: m.Components,
	}, nil
}

// spoolTo copies r to w, hashing it on another goroutine, and fails with
// CodeArchiveTooLarge as soon as r yields more than limit bytes. It closes
// w at the end, or fails it with the error.
func spoolTo(ctx context.Context, r io.Reader, w *growingFile, limit int64) (size int64, sum []byte, err error) {
	defer func() {
		if err != nil {
			w.fail(err)
		} else {
			w.close()
		}
	}()
	const buffers = 3
	var (
		h      = sha256.New()
		free   = make(chan []byte, buffers)
		toHash = make(chan []byte, buffers)
		hashed = make(chan struct{})
	)
	for range buffers {
		free <- make([]byte, 1<<20)
	}
	go func() {
		defer close(hashed)
		for b := range toHash {
			h.Write(b)
			free <- b[:cap(b)]
		}
	}()
	stopHashing := sync.OnceFunc(func() {
		close(toHash)
		<-hashed
	})
	defer stopHashing()
	for {
		if err := ctx.Err(); err != nil {
			return 0, nil, context.Cause(ctx)
		}
		buf := <-free
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if size += int64(n); size > limit {
				return 0, nil, tooLarge(size, limit)
			}
			if err := w.write(buf[:n]); err != nil {
				return 0, nil, fmt.Errorf("spool: %w", err)
			}
			toHash <- buf[:n]
		} else {
			free <- buf
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return 0, nil, fmt.Errorf("read archive: %w", rerr)
		}
	}
	stopHashing()
	return size, h.Sum(nil), nil
}

// growingFile is a file being written, whose readers follow the writer:
// they wait for more bytes until the writer closes or fails it.
type growingFile struct {
	f    *os.File
	mu   sync.Mutex
	cond *sync.Cond
	size int64
	done bool
	err  error
}

func newGrowingFile(f *os.File) *growingFile {
	g := &growingFile{f: f}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *growingFile) write(p []byte) error {
	g.mu.Lock()
	err := g.err
	g.mu.Unlock()
	if err != nil {
		return err
	}
	n, err := g.f.Write(p)
	g.mu.Lock()
	g.size += int64(n)
	g.cond.Broadcast()
	g.mu.Unlock()
	return err
}

func (g *growingFile) close() {
	g.mu.Lock()
	g.done = true
	g.cond.Broadcast()
	g.mu.Unlock()
}

// fail makes readers fail with err from now on; the first error stays.
func (g *growingFile) fail(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (g *growingFile) reader() io.Reader { return &growingReader{g: g} }

type growingReader struct {
	g   *growingFile
	off int64
}

func (r *growingReader) Read(p []byte) (int, error) {
	g := r.g
	g.mu.Lock()
	for r.off == g.size && !g.done && g.err == nil {
		g.cond.Wait()
	}
	size, done, err := g.size, g.done, g.err
	g.mu.Unlock()
	switch {
	case err != nil:
		return 0, err
	case r.off == size && done:
		return 0, io.EOF
	}
	n, err := g.f.ReadAt(p[:min(int64(len(p)), size-r.off)], r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}
