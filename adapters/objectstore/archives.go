// Package objectstore keeps backup archives in a JetStream object store
// bucket, one object per backup, named by the backup id.
//
// An archive is a zip written as a stream straight into the object store:
// one entry per exported item under "<component>/", then manifest.json
// with the size and SHA-256 of every entry. The format is package archive
// (docs/archive.md specifies it); this package keeps the bytes. An archive
// is never held whole in memory: archive.Write feeds an io.Pipe that is
// stored chunk by chunk, with a bounded number of chunks awaiting the
// server's acknowledgement (put.go). The archive's size and SHA-256 are
// computed once, while storing, and recorded as the object's digest
// exactly as jetstream.ObjectStore.Put does, so any object store client
// (nats CLI, nats.go) reads and verifies the archives.
//
// Uploads (import.go) are checked as they arrive by archive.StreamCheck
// while their chunks are stored, or else by archive.Validate reading the
// chunks back (chunks.go), and become an object only once they pass;
// downloads (open.go) are verified against the ledger's size and SHA-256
// as they stream, and restores (read.go) read a spooled copy. NATS
// clients hand in and fetch archives through a second, staging bucket
// whose objects expire (staged.go).
package objectstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
	"github.com/backupledger/backupledger/adapters/internal/natserr"
	"github.com/backupledger/backupledger/adapters/objectstore/archive"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// Archives is the archive store on a JetStream object store bucket. It is
// safe for concurrent use.
type Archives struct {
	js   jetstream.JetStream
	pub  jetstream.JetStream // for chunk publishes, with its own ack timeout
	obs  jetstream.ObjectStore
	arch bucket
	// staging is the staging bucket; its obs is nil with Config.NoStaging.
	staging bucket
	cfg     Config
}

var _ service.ArchiveStore = (*Archives)(nil)

// countWritten tells Config.Written about n bytes stored.
func (a *Archives) countWritten(n int64) {
	if a.cfg.Written != nil {
		a.cfg.Written(n)
	}
}

// countRead wraps r so that the bytes read from it are counted.
func (a *Archives) countRead(r io.Reader) io.Reader {
	if a.cfg.Read == nil {
		return r
	}
	return &countingReader{r: r, add: a.cfg.Read}
}

// countingReader tells add how many bytes each Read returned.
type countingReader struct {
	r   io.Reader
	add func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.add(int64(n))
	}
	return n, err
}

// Info describes a stored archive.
type Info struct {
	BackupID string
	// App is the app the archive was written for.
	App       string
	SizeBytes int64
	// SHA256 is the lower-case hex SHA-256 of the whole object.
	SHA256  string
	ModTime time.Time
}

// cleanupTimeout bounds the removal of a failed archive, which runs even
// when the caller's context has ended.
const cleanupTimeout = 30 * time.Second

// readTimeout bounds an Open whose context has no deadline; nats.go would
// otherwise stop the read after its default API timeout (5 s).
const readTimeout = 24 * time.Hour

// New creates the archives' bucket (with js) and the staging bucket of cfg
// (with Config.Staging, if set, unless Config.NoStaging), or updates them
// to cfg if they exist, and returns an Archives on them. It
// is idempotent and safe to call at every start. It returns an error if
// cfg is invalid or a bucket cannot be created or updated.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Archives, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("object store config: %w", err)
	}
	cfg = cfg.withDefaults()
	obs, err := ensure.ObjectStore(ctx, js, jetstream.ObjectStoreConfig{
		Bucket:      cfg.Bucket,
		Description: "backupledger: backup archives (zip), object name = backup id",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create or update object store %s: %w", cfg.Bucket, err)
	}
	a := &Archives{js: js, obs: obs, arch: newBucket(js, obs, cfg.Bucket), cfg: cfg}
	if !cfg.NoStaging {
		sjs := cfg.Staging
		if sjs == nil {
			sjs = js
		}
		stg, err := ensure.ObjectStore(ctx, sjs, jetstream.ObjectStoreConfig{
			Bucket:      cfg.StagingBucket,
			Description: "backupledger: archives handed in and out by NATS clients; objects expire",
			TTL:         cfg.StagingTTL,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("create or update object store %s: %w", cfg.StagingBucket, err)
		}
		a.staging = newBucket(sjs, stg, cfg.StagingBucket)
	}
	if cfg.TempDir != "" {
		if fi, err := os.Stat(cfg.TempDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("temp dir %s: not a directory", cfg.TempDir)
		}
	}
	if a.pub, err = jetstream.New(js.Conn(), jetstream.WithPublishAsyncTimeout(cfg.CallTimeout)); err != nil {
		return nil, fmt.Errorf("object store publisher: %w", err)
	}
	return a, nil
}

// WriteArchive streams a zip of the items that export emits, with the
// manifest of h, into the object named h.BackupID, replacing an object of
// that name, and returns the archive's size, SHA-256 and item count.
//
// export is called once, in another goroutine; emit must be called from
// that goroutine. An error of export (or of emit, which it should return)
// is returned wrapped; so are errors of the object store, and the cause of
// ctx when it ends first. On any error no object is left under
// h.BackupID. A panic of export is raised again in the caller, also after
// that clean-up. A bad backup id or app id returns an *domain.Error with
// CodeInvalidArgument.
func (a *Archives) WriteArchive(ctx context.Context, h domain.ArchiveHeader, export func(emit func(domain.Item) error) error) (info domain.ArchiveInfo, err error) {
	if err := archive.CheckBackupID(h.BackupID); err != nil {
		return domain.ArchiveInfo{}, err
	}
	if err := domain.ValidateAppID(h.App); err != nil {
		return domain.ArchiveInfo{}, err
	}
	ok := false
	defer func() {
		if !ok { // an error, or a panic of export on its way up
			a.removeFailed(ctx, h.BackupID, &err)
		}
	}()
	info, err = a.write(ctx, h, export)
	if err != nil {
		return domain.ArchiveInfo{}, fmt.Errorf("write archive %s: %w", h.BackupID, natserr.Write(err, true))
	}
	ok = true
	a.countWritten(info.SizeBytes)
	return info, nil
}

// removeFailed deletes whatever is stored under backupID after a failed
// write and joins a failure to do so to *err. put purges its own chunks;
// this removes an older object under the same name (a previous attempt's)
// and a meta record that a failed put may have stored, so nothing is left.
// It runs even when ctx has ended.
func (a *Archives) removeFailed(ctx context.Context, backupID string, err *error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if derr := a.DeleteArchive(cctx, backupID); derr != nil {
		*err = errors.Join(*err, derr)
	}
}

// errPutEnded breaks the pipe when the put stops reading early.
var errPutEnded = errors.New("object store put ended")

type zipResult struct {
	manifest Manifest
	err      error
	panicked any
}

func (a *Archives) write(ctx context.Context, h domain.ArchiveHeader, export func(emit func(domain.Item) error) error) (domain.ArchiveInfo, error) {
	pr, pw := io.Pipe()
	// The put runs on a context that the caller's end does not cancel, so
	// that it always reaches its own clean-up; the caller's end breaks the
	// pipe instead, which fails both sides.
	stop := context.AfterFunc(ctx, func() { pr.CloseWithError(context.Cause(ctx)) })
	defer stop()

	done := make(chan zipResult, 1)
	go func() {
		var res zipResult
		defer func() {
			if p := recover(); p != nil {
				res.panicked = p
				pw.CloseWithError(fmt.Errorf("export panicked: %v", p))
			}
			done <- res
		}()
		res.manifest, res.err = archive.Write(pw, h, export)
		pw.CloseWithError(res.err) // nil: the reader sees EOF
	}()

	obj, putErr := a.put(context.WithoutCancel(ctx), a.arch, jetstream.ObjectMeta{
		Name:        h.BackupID,
		Description: "backupledger archive of app " + h.App,
		Headers:     map[string][]string{"Content-Type": {"application/zip"}},
		Metadata:    map[string]string{"app": h.App, "format_version": fmt.Sprint(FormatVersion)},
		Opts:        &jetstream.ObjectMetaOptions{ChunkSize: chunkSize},
	}, pr, nil, false)
	// Unblock the writer if the put stopped reading early.
	pr.CloseWithError(errPutEnded)
	res := <-done
	if res.panicked != nil {
		panic(res.panicked)
	}
	switch {
	case res.err != nil && !(putErr != nil && errors.Is(res.err, errPutEnded)):
		return domain.ArchiveInfo{}, res.err
	case putErr != nil:
		if err := ctx.Err(); err != nil {
			return domain.ArchiveInfo{}, fmt.Errorf("put: %w", context.Cause(ctx))
		}
		return domain.ArchiveInfo{}, fmt.Errorf("put: %w", putErr)
	}
	sum, err := hexDigest(obj.Digest)
	if err != nil {
		return domain.ArchiveInfo{}, err
	}
	return domain.ArchiveInfo{SizeBytes: int64(obj.Size), SHA256: sum, ItemCount: res.manifest.ItemCount}, nil
}

// DeleteArchive removes the archive of backupID. Deleting a missing archive
// is not an error. A bad backup id returns an *domain.Error with
// CodeInvalidArgument; other errors are the object store's.
func (a *Archives) DeleteArchive(ctx context.Context, backupID string) error {
	if err := archive.CheckBackupID(backupID); err != nil {
		return err
	}
	// Look first, so that deleting a missing archive writes nothing (every
	// process forgets every deleted backup).
	cctx, cancel := a.call(ctx)
	_, err := a.obs.GetInfo(cctx, backupID)
	cancel()
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("delete archive %s: %w", backupID, err)
	}
	cctx, cancel = a.call(ctx)
	defer cancel()
	if err := a.obs.Delete(cctx, backupID); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete archive %s: %w", backupID, err)
	}
	return nil
}

// call returns ctx bounded by Config.CallTimeout, for one call to a
// bucket's stream.
func (a *Archives) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.CallTimeout)
}

// Stat describes the archive of backupID. A missing archive returns an
// *domain.Error with CodeNotFound, a bad backup id one with
// CodeInvalidArgument; other errors are the object store's.
func (a *Archives) Stat(ctx context.Context, backupID string) (Info, error) {
	if err := archive.CheckBackupID(backupID); err != nil {
		return Info{}, err
	}
	oi, err := a.obs.GetInfo(ctx, backupID)
	if err != nil {
		return Info{}, a.mapErr(backupID, err)
	}
	return infoOf(oi)
}

// Open returns a reader of the archive of backupID and its Info. The reader
// is valid until ctx ends (or, when ctx has no deadline, for at most 24
// hours) and must be closed; at the end of the object it returns
// jetstream.ErrDigestMismatch instead of io.EOF if the bytes read do not
// match the object's digest. A missing archive returns an *domain.Error
// with CodeNotFound, a bad backup id one with CodeInvalidArgument; other
// errors are the object store's.
func (a *Archives) Open(ctx context.Context, backupID string) (io.ReadCloser, Info, error) {
	if err := archive.CheckBackupID(backupID); err != nil {
		return nil, Info{}, err
	}
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, readTimeout)
	}
	res, err := a.obs.Get(ctx, backupID)
	if err != nil {
		cancel()
		return nil, Info{}, a.mapErr(backupID, err)
	}
	oi, err := res.Info()
	if err == nil {
		var info Info
		if info, err = infoOf(oi); err == nil {
			return &objectReader{ObjectResult: res, r: a.countRead(res), cancel: cancel}, info, nil
		}
	}
	res.Close()
	cancel()
	return nil, Info{}, fmt.Errorf("open archive %s: %w", backupID, err)
}

type objectReader struct {
	jetstream.ObjectResult
	r      io.Reader
	cancel context.CancelFunc
}

func (r *objectReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func (r *objectReader) Close() error {
	err := r.ObjectResult.Close()
	r.cancel()
	return err
}

// List returns the names (backup ids) of all archives in the bucket,
// sorted. Errors are the object store's.
func (a *Archives) List(ctx context.Context) ([]string, error) {
	objs, err := a.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list archives: %w", err)
	}
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		names = append(names, o.Name)
	}
	slices.Sort(names)
	return names, nil
}

// ListArchives returns every archive object with the app its metadata
// names and when it was stored, for the orphan sweep. Errors are the
// object store's.
func (a *Archives) ListArchives(ctx context.Context) ([]domain.ArchiveObject, error) {
	objs, err := a.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list archives: %w", err)
	}
	out := make([]domain.ArchiveObject, 0, len(objs))
	for _, o := range objs {
		out = append(out, domain.ArchiveObject{BackupID: o.Name, App: o.Metadata["app"], SizeBytes: int64(o.Size), StoredAt: o.ModTime.UTC()})
	}
	return out, nil
}

// HasArchive reports whether the archive of backupID is stored. Errors are
// the object store's.
func (a *Archives) HasArchive(ctx context.Context, backupID string) (bool, error) {
	if err := archive.CheckBackupID(backupID); err != nil {
		return false, err
	}
	_, err := a.obs.GetInfo(ctx, backupID)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("archive %s: %w", backupID, err)
	}
	return true, nil
}

// RemoveUnfinished purges the chunks of archives whose upload or backup
// never completed (its process was killed, or its purge failed): chunk
// subjects of the archive bucket that no object refers to, whose newest
// chunk was stored before before (an archive being written now has recent
// chunks). It returns how many it removed.
func (a *Archives) RemoveUnfinished(ctx context.Context, before time.Time) (int, error) {
	b := a.arch
	// Objects first: an archive completed meanwhile has recent chunks.
	live := map[string]bool{}
	objs, err := a.obs.List(ctx, jetstream.ListObjectsShowDeleted())
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, fmt.Errorf("list archives: %w", err)
	}
	for _, o := range objs {
		if !o.Deleted {
			live[o.NUID] = true
		}
	}
	st, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		return 0, fmt.Errorf("archive stream: %w", err)
	}
	prefix := chunkSubject(b.name, "")
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return 0, fmt.Errorf("archive chunk subjects: %w", err)
	}
	removed := 0
	for subject := range info.State.Subjects {
		if live[strings.TrimPrefix(subject, prefix)] {
			continue
		}
		last, err := st.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // purged meanwhile
		}
		if err != nil {
			return removed, fmt.Errorf("newest chunk of %s: %w", subject, err)
		}
		if !last.Time.Before(before) {
			continue // perhaps still being written
		}
		if err := a.purge(ctx, b, subject); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

var _ service.ArchiveLister = (*Archives)(nil)

func (a *Archives) mapErr(backupID string, err error) error {
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return domain.Errorf(domain.CodeNotFound, "archive of backup %q not found", backupID)
	}
	return fmt.Errorf("archive %s: %w", backupID, err)
}

func infoOf(oi *jetstream.ObjectInfo) (Info, error) {
	sum, err := hexDigest(oi.Digest)
	if err != nil {
		return Info{}, err
	}
	return Info{BackupID: oi.Name, App: oi.Metadata["app"], SizeBytes: int64(oi.Size), SHA256: sum, ModTime: oi.ModTime.UTC()}, nil
}

// hexDigest turns the object store's "SHA-256=<base64url>" digest into
// lower-case hex.
func hexDigest(d string) (string, error) {
	if !strings.HasPrefix(d, "SHA-256=") {
		return "", fmt.Errorf("object digest %q is not SHA-256", d)
	}
	sum, err := jetstream.DecodeObjectDigest(d)
	if err != nil || len(sum) != 32 {
		return "", fmt.Errorf("object digest %q: malformed", d)
	}
	return hex.EncodeToString(sum), nil
}
