package objectstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

var _ service.ArchiveTransfer = (*Archives)(nil)

// ImportArchive reads a zip from r, validates it as ValidateArchive does
// with the limits of Config, and stores it unchanged under backupID; it
// holds a few MiB of it at a time, whatever its size. It returns the stored archive's
// size, SHA-256 and entry count with the manifest's header.
//
// A refused archive returns an *domain.Error with CodeArchiveTooLarge (as
// soon as r yields more than Config.MaxUploadBytes), CodeArchiveVersion or
// CodeArchiveInvalid, and nothing is stored. A bad backup id returns one
// with CodeInvalidArgument. An error reading r, the end of ctx, and the
// object store's errors are returned wrapped; then too nothing is left
// under backupID.
func (a *Archives) ImportArchive(ctx context.Context, app, backupID string, r io.Reader) (domain.ImportedArchive, error) {
	if err := archive.CheckBackupID(backupID); err != nil {
		return domain.ImportedArchive{}, err
	}
	if r == nil {
		r = strings.NewReader("") // refused as not a zip
	}
	return a.importFrom(ctx, app, backupID, r, func(err error) error { return err })
}

// ImportStaged is ImportArchive of the object named object in the staging
// bucket (Config.StagingBucket). The staging object is deleted whatever the
// outcome; should that fail, the bucket's TTL removes it. A missing object
// returns an *domain.Error with CodeNotFound, an empty or overlong name one
// with CodeInvalidArgument; a staging object whose bytes do not match its
// own digest is CodeArchiveInvalid. Without a staging bucket
// (Config.NoStaging) it returns one with CodeUnavailable.
func (a *Archives) ImportStaged(ctx context.Context, app, backupID, object string) (domain.ImportedArchive, error) {
	if object == "" || len(object) > 1024 {
		return domain.ImportedArchive{}, domain.Errorf(domain.CodeInvalidArgument, "staging object name must be 1 to 1024 bytes")
	}
	if a.staging.obs == nil {
		return domain.ImportedArchive{}, errNoStaging
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
	if err := archive.CheckBackupID(backupID); err != nil {
		return domain.ImportedArchive{}, err
	}
	if int64(oi.Size) > a.cfg.MaxUploadBytes {
		return domain.ImportedArchive{}, archive.TooLarge(int64(oi.Size), a.cfg.MaxUploadBytes)
	}
	rctx, cancel := readContext(ctx)
	defer cancel()
	res, err := openStaged(rctx, a.staging, oi)
	if err != nil {
		return domain.ImportedArchive{}, fmt.Errorf("staging object %s: %w", object, err)
	}
	defer res.Close()
	return a.importFrom(ctx, app, backupID, res, func(err error) error {
		if errors.Is(err, jetstream.ErrDigestMismatch) {
			return domain.Errorf(domain.CodeArchiveInvalid, "staging object %q does not match its own digest (damaged, or replaced while it was read)", object)
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

// importFrom checks r as it arrives (the streamed pass, archive.StreamCheck)
// while a put stores its bytes; the object is committed (its meta record
// published, which is what makes it exist) only once the archive is
// valid, else its chunks are purged. Neither the upload nor any part of it
// is written elsewhere or held in memory. When the streamed pass cannot
// decide, ValidateArchive reads the stored chunks back and decides.
func (a *Archives) importFrom(ctx context.Context, app, backupID string, r io.Reader, mapErr func(error) error) (domain.ImportedArchive, error) {
	up := &upload{app: app, lim: a.cfg.Limits(), mapErr: mapErr, done: make(chan checked, 1)}
	fan := newFanout(3, fanBlocks, fanBlockSize)
	stop := context.AfterFunc(ctx, func() { fan.abort(context.Cause(ctx)) })
	defer stop()
	go func() { up.done <- a.checkUpload(ctx, fan, r, up) }()
	meta := jetstream.ObjectMeta{
		Name:    backupID,
		Headers: map[string][]string{"Content-Type": {"application/zip"}},
		Opts:    &jetstream.ObjectMetaOptions{ChunkSize: chunkSize},
	}
	obj, err := a.put(context.WithoutCancel(ctx), a.arch, meta, fan.reader(2), up.commit(ctx), true)
	if !up.received {
		fan.abort(errPutEnded)
		up.res = <-up.done
		if errors.Is(up.res.err, errPutEnded) {
			up.res.err = nil // the put's error tells what happened
		}
	}
	res := up.res
	if res.err != nil {
		err = res.err
	}
	if err == nil && int64(obj.Size) != res.size {
		err = fmt.Errorf("stored %d bytes of %d", obj.Size, res.size)
	}
	if err != nil {
		return domain.ImportedArchive{}, a.importFailed(ctx, backupID, err)
	}
	a.countWritten(res.size)
	m := res.m
	return domain.ImportedArchive{
		ArchiveInfo: domain.ArchiveInfo{SizeBytes: res.size, SHA256: hex.EncodeToString(res.sum), ItemCount: m.ItemCount},
		App:         m.App, BackupID: m.BackupID, Name: m.Name, Description: m.Description, CreatedAt: m.CreatedAt.UTC(),
		SchemaVersion: m.SchemaVersion, Source: m.Source, Components: m.Components,
	}, nil
}

// upload is one import's check, which its put waits for before it
// commits the object.
type upload struct {
	app    string
	lim    Limits
	mapErr func(error) error
	done   chan checked // the check's verdict
	// set by commit, or by importFrom when the put ended without
	// committing
	res      checked
	received bool
}

// checked is the verdict of an import's check: the upload's size and
// SHA-256, and, if the streamed pass decided, its manifest.
type checked struct {
	m       Manifest
	size    int64
	sum     []byte
	err     error
	decided bool
}

// checkUpload reads r into fan (consumer 2 is the put), at most
// Config.MaxUploadBytes of it, while consumer 0 hashes it and consumer 1
// is the streamed pass. An error is mapped by up.mapErr.
func (a *Archives) checkUpload(ctx context.Context, fan *fanout, r io.Reader, up *upload) checked {
	var (
		c      checked
		hashed = make(chan []byte, 1)
		sc     = archive.NewStreamCheck(fan.reader(1), up.lim)
		walked = make(chan struct{})
	)
	go func() {
		h := sha256.New()
		_, _ = io.Copy(h, fan.reader(0)) // the fanout's error is the producer's
		hashed <- h.Sum(nil)
	}()
	go func() {
		defer close(walked)
		sc.Run()
	}()
	c.size, c.err = fan.fill(r, a.cfg.MaxUploadBytes)
	c.sum = <-hashed
	<-walked
	if c.err == nil {
		c.m, c.err = sc.Verdict(ctx, c.size)
		c.decided = c.err == nil
		if errors.Is(c.err, archive.ErrUndecided) {
			c.err = nil
		}
	}
	if c.err != nil {
		c.err = up.mapErr(c.err)
	}
	return c
}

// commit returns the import's commitFunc: it waits for the check and, if
// the streamed pass did not decide, validates the stored chunks; a valid
// archive's object gets its description and metadata, and the upload's
// SHA-256.
func (up *upload) commit(ctx context.Context) commitFunc {
	return func(meta *jetstream.ObjectMeta, stored *storedChunks) ([]byte, error) {
		up.res, up.received = <-up.done, true
		res := &up.res
		if res.err != nil {
			return nil, res.err
		}
		if !res.decided {
			rd, err := stored.reader(ctx)
			if err != nil {
				return nil, err
			}
			if res.m, err = archive.Validate(ctx, rd, res.size, up.lim); err != nil {
				res.err = up.mapErr(err)
				return nil, res.err
			}
		}
		meta.Description = "backupledger archive uploaded to app " + up.app + ", made of app " + res.m.App
		meta.Metadata = map[string]string{"app": up.app, "manifest_app": res.m.App, "format_version": fmt.Sprint(res.m.FormatVersion), "uploaded": "true"}
		return res.sum, nil
	}
}

// importFailed returns the error of a failed import of backupID: a
// refusal as it is (the put stored nothing), else err (or ctx's cause)
// wrapped, once whatever may be stored under backupID is removed.
func (a *Archives) importFailed(ctx context.Context, backupID string, err error) error {
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	err = fmt.Errorf("import archive as %s: %w", backupID, err)
	a.removeFailed(ctx, backupID, &err)
	return err
}
