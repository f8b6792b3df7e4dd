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

	"github.com/backupledger/backupledger/domain"
)

var _ domain.ArchiveTransfer = (*Archives)(nil)

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
	if err := checkBackupID(backupID); err != nil {
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
	if err := checkBackupID(backupID); err != nil {
		return domain.ImportedArchive{}, err
	}
	if int64(oi.Size) > a.cfg.MaxUploadBytes {
		return domain.ImportedArchive{}, tooLarge(int64(oi.Size), a.cfg.MaxUploadBytes)
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

// importFrom checks r as it arrives (the streamed pass, stream.go) while a
// put stores its bytes; the object is committed (its meta record
// published, which is what makes it exist) only once the archive is
// valid, else its chunks are purged. Neither the upload nor any part of it
// is written elsewhere or held in memory. When the streamed pass cannot
// decide, ValidateArchive reads the stored chunks back and decides.
func (a *Archives) importFrom(ctx context.Context, app, backupID string, r io.Reader, mapErr func(error) error) (domain.ImportedArchive, error) {
	lim := a.cfg.Limits()
	fan := newFanout(3, fanBlocks, fanBlockSize)
	stop := context.AfterFunc(ctx, func() { fan.abort(context.Cause(ctx)) })
	defer stop()

	type checked struct {
		m       Manifest
		size    int64
		sum     []byte
		err     error
		decided bool
	}
	done := make(chan checked, 1)
	go func() {
		var (
			c      checked
			hashed = make(chan []byte, 1)
			sc     = newStreamCheck(fan.reader(1), lim)
			walked = make(chan struct{})
		)
		go func() {
			h := sha256.New()
			_, _ = io.Copy(h, fan.reader(0)) // the fanout's error is the producer's
			hashed <- h.Sum(nil)
		}()
		go func() {
			defer close(walked)
			sc.run()
		}()
		c.size, c.err = fan.fill(r, a.cfg.MaxUploadBytes)
		c.sum = <-hashed
		<-walked
		if c.err == nil {
			c.m, c.err = sc.verdict(ctx, c.size)
			c.decided = c.err == nil
			if errors.Is(c.err, errUndecided) {
				c.err = nil
			}
		}
		if c.err != nil {
			c.err = mapErr(c.err)
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
	obj, err := a.put(context.WithoutCancel(ctx), a.arch, meta, fan.reader(2), func(meta *jetstream.ObjectMeta, stored *storedChunks) ([]byte, error) {
		res, received = <-done, true
		if res.err != nil {
			return nil, res.err
		}
		if !res.decided {
			rd, err := stored.reader(ctx)
			if err != nil {
				return nil, err
			}
			if res.m, err = ValidateArchive(ctx, rd, res.size, lim); err != nil {
				res.err = mapErr(err)
				return nil, res.err
			}
		}
		meta.Description = "backupledger archive uploaded to app " + app + ", made of app " + res.m.App
		meta.Metadata = map[string]string{"app": app, "manifest_app": res.m.App, "format_version": fmt.Sprint(res.m.FormatVersion), "uploaded": "true"}
		return res.sum, nil
	}, true)
	if !received {
		fan.abort(errPutEnded)
		res = <-done
		if errors.Is(res.err, errPutEnded) {
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
	a.countWritten(res.size)
	return domain.ImportedArchive{
		ArchiveInfo: domain.ArchiveInfo{SizeBytes: res.size, SHA256: hex.EncodeToString(res.sum), ItemCount: m.ItemCount},
		App:         m.App, BackupID: m.BackupID, Name: m.Name, Description: m.Description, CreatedAt: m.CreatedAt.UTC(),
		SchemaVersion: m.SchemaVersion, Source: m.Source, Components: m.Components,
	}, nil
}
