package objectstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// OpenArchive reads the stored archive of backupID, whose ledger entry
// says size and sha256 (lower-case hex). The stream must be closed.
//
// Component "" is the stored archive itself. Its reads are verified as
// they go, and the last 128 KiB are held back until the whole object has
// been read: if its size or SHA-256 differs from the ledger's, the read
// that would deliver them fails with an error wrapping
// domain.ErrArchiveCorrupt instead, so a client never receives a complete
// wrong archive. A missing object, or one whose recorded size or digest
// already differs, fails OpenArchive itself with such an error.
//
// A component name, e.g. "config", yields a new zip with only the entries
// under "<component>/" (copied as they are, not recompressed) and a
// manifest that lists only them. The stored archive is spooled to a
// temporary file and verified first (a mismatch is an error wrapping
// domain.ErrArchiveCorrupt), the new zip is built in another temporary
// file, and Size and SHA256 are those of the new zip; Close removes it. A
// component the archive does not have, or a malformed name, is an
// *domain.Error with CodeInvalidArgument, as is a bad backup id. Errors
// of the object store and of the temporary files are returned wrapped.
func (a *Archives) OpenArchive(ctx context.Context, backupID string, size int64, sha256Hex, component string) (domain.ArchiveStream, error) {
	if err := archive.CheckBackupID(backupID); err != nil {
		return domain.ArchiveStream{}, err
	}
	if component != "" && !archive.IsName(component) {
		return domain.ArchiveStream{}, domain.Errorf(domain.CodeInvalidArgument, "component %q must be 1 to %d characters of [a-z0-9_-]", component, MaxComponentLen)
	}
	rc, err := a.openVerified(ctx, backupID, size, sha256Hex)
	if err != nil {
		return domain.ArchiveStream{}, err
	}
	if component == "" {
		return domain.ArchiveStream{ReadCloser: rc, Size: size, SHA256: sha256Hex}, nil
	}
	defer rc.Close()
	return a.openComponent(ctx, backupID, rc, component)
}

var _ service.ArchiveChecker = (*Archives)(nil)

// CheckArchive implements service.ArchiveChecker: the object store's
// record of backupID's archive is there, decodes, and records the
// ledger's size and SHA-256 (the bytes are not read).
func (a *Archives) CheckArchive(ctx context.Context, backupID string, size int64, sha256Hex string) error {
	oi, err := a.obs.GetInfo(ctx, backupID)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return archive.Corrupt("archive missing")
	case errors.Is(err, jetstream.ErrBadObjectMeta):
		return archive.Corrupt("the object store's record of the archive is unreadable")
	case err != nil:
		return fmt.Errorf("check archive %s: %w", backupID, err)
	case int64(oi.Size) != size:
		return archive.Corrupt("archive is %d bytes, ledger has %d", oi.Size, size)
	}
	if sum, err := hexDigest(oi.Digest); err != nil || sum != sha256Hex {
		return archive.Corrupt("object store records sha256 %s, ledger has %s", sum, sha256Hex)
	}
	return nil
}

// openVerified opens the object of backupID for reading through a
// verifyingReader.
func (a *Archives) openVerified(ctx context.Context, backupID string, size int64, sha256Hex string) (io.ReadCloser, error) {
	rctx, cancel := readContext(ctx)
	res, err := a.obs.Get(rctx, backupID)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		cancel()
		return nil, archive.Corrupt("archive missing")
	}
	if errors.Is(err, jetstream.ErrBadObjectMeta) {
		// The object store's record of the archive does not decode: it
		// will not heal by trying again.
		cancel()
		return nil, archive.Corrupt("the object store's record of the archive is unreadable")
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open archive %s: %w", backupID, err)
	}
	fail := func(err error) (io.ReadCloser, error) {
		res.Close()
		cancel()
		return nil, err
	}
	oi, err := res.Info()
	if err != nil {
		return fail(fmt.Errorf("open archive %s: %w", backupID, err))
	}
	if int64(oi.Size) != size {
		return fail(archive.Corrupt("archive is %d bytes, ledger has %d", oi.Size, size))
	}
	if sum, err := hexDigest(oi.Digest); err != nil || sum != sha256Hex {
		return fail(archive.Corrupt("object store records sha256 %s, ledger has %s", sum, sha256Hex))
	}
	// The object store's reader checks the bytes against the object's
	// digest, which is the ledger's: hashing them again would only cost.
	return &verifyingReader{src: a.countRead(res), close: func() error { err := res.Close(); cancel(); return err },
		size: size, want: sha256Hex, hold: min(size, chunkSize)}, nil
}

// verifyingReader passes the bytes of src, a jetstream.ObjectResult whose
// recorded digest is want, through but the last hold of them, which it
// releases only once src has ended with io.EOF (not
// jetstream.ErrDigestMismatch) and exactly size bytes.
type verifyingReader struct {
	src   io.Reader
	close func() error
	size  int64
	want  string
	hold  int64
	read  int64
	tail  []byte // the held-back bytes, once verified
	err   error  // sticky
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if v.tail == nil {
		if free := v.size - v.hold - v.read; free > 0 {
			if int64(len(p)) > free {
				p = p[:free]
			}
			n, err := v.src.Read(p)
			v.read += int64(n)
			switch {
			case err == io.EOF || errors.Is(err, jetstream.ErrDigestMismatch):
				v.err = archive.Corrupt("archive has %d bytes, ledger has %d", v.read, v.size)
			case err != nil:
				v.err = err
			}
			if n == 0 {
				return 0, v.err
			}
			return n, nil
		}
		if err := v.readTail(); err != nil {
			v.err = err
			return 0, err
		}
	}
	if len(v.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, v.tail)
	v.tail = v.tail[n:]
	return n, nil
}

// readTail reads what is left of src, at most hold bytes, and verifies the
// whole.
func (v *verifyingReader) readTail() error {
	buf := make([]byte, v.hold+1)
	n, err := io.ReadFull(v.src, buf)
	v.read += int64(n)
	mismatch := errors.Is(err, jetstream.ErrDigestMismatch)
	switch {
	case err == nil:
		return archive.Corrupt("archive has more than the %d bytes the ledger has", v.size)
	case v.read != v.size && (err == io.EOF || err == io.ErrUnexpectedEOF || mismatch):
		return archive.Corrupt("archive has %d bytes, ledger has %d", v.read, v.size)
	case mismatch:
		return archive.Corrupt("its bytes do not have the sha256 %s the ledger has", v.want)
	case err != io.EOF && err != io.ErrUnexpectedEOF:
		return err
	}
	v.tail = buf[:n]
	return nil
}

func (v *verifyingReader) Close() error { return v.close() }

// openComponent builds the zip of one component of the verified archive
// that r yields (archive.Stored.WriteComponent) in a temporary file.
func (a *Archives) openComponent(ctx context.Context, backupID string, r io.Reader, component string) (_ domain.ArchiveStream, err error) {
	src, err := a.spool(ctx, r, "download")
	if err != nil {
		return domain.ArchiveStream{}, err
	}
	defer src.remove()
	// The archive was validated when it was stored, and matches the
	// ledger.
	st, err := archive.OpenStored(src.f, src.size, backupID)
	if err != nil {
		return domain.ArchiveStream{}, err
	}
	if m := st.Manifest; !slices.Contains(m.Components, component) {
		return domain.ArchiveStream{}, domain.Errorf(domain.CodeInvalidArgument, "backup %s has no component %q; it has %s", backupID, component, strings.Join(m.Components, ", "))
	}

	out, err := os.CreateTemp(a.cfg.TempDir, "backupledger-component-*.zip")
	if err != nil {
		return domain.ArchiveStream{}, fmt.Errorf("component zip: %w", err)
	}
	tmp := &spooled{f: out}
	defer func() {
		if err != nil {
			tmp.remove()
		}
	}()
	h := sha256.New()
	if err := st.WriteComponent(ctx, io.MultiWriter(out, h), component); err != nil {
		return domain.ArchiveStream{}, err
	}
	fi, err := out.Stat()
	if err == nil {
		_, err = out.Seek(0, io.SeekStart)
	}
	if err != nil {
		return domain.ArchiveStream{}, fmt.Errorf("component zip: %w", err)
	}
	return domain.ArchiveStream{ReadCloser: &tempFile{sp: tmp}, Size: fi.Size(), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// tempFile reads a temporary file and removes it on Close.
type tempFile struct{ sp *spooled }

func (t *tempFile) Read(p []byte) (int, error) { return t.sp.f.Read(p) }

func (t *tempFile) Close() error {
	t.sp.remove()
	return nil
}

// StageDownload verifies the stored archive of backupID (or builds the zip
// of one component of it, as OpenArchive) and copies it into the staging
// bucket under a new, unguessable name "download-<backupID>-<random>",
// where it stays until the client deletes it or Config.StagingTTL has
// passed (ExpiresAt, at the earliest). Errors are OpenArchive's; bytes
// that do not match the ledger fail it with an error wrapping
// domain.ErrArchiveCorrupt and leave nothing in the staging bucket.
// Without a staging bucket (Config.NoStaging) it returns an *domain.Error
// with CodeUnavailable.
func (a *Archives) StageDownload(ctx context.Context, backupID string, size int64, sha256Hex, component string) (domain.StagedArchive, error) {
	if a.staging.obs == nil {
		return domain.StagedArchive{}, errNoStaging
	}
	s, err := a.OpenArchive(ctx, backupID, size, sha256Hex, component)
	if err != nil {
		return domain.StagedArchive{}, err
	}
	defer s.Close()
	sum, err := hex.DecodeString(s.SHA256)
	if err != nil || len(sum) != sha256.Size {
		return domain.StagedArchive{}, domain.Errorf(domain.CodeInvalidArgument, "sha256 %q is not 64 hex digits", s.SHA256)
	}
	name := "download-" + backupID + "-" + strings.ToLower(rand.Text())
	start := time.Now()
	meta := jetstream.ObjectMeta{
		Name:        name,
		Description: "backupledger download of backup " + backupID,
		Headers:     map[string][]string{"Content-Type": {"application/zip"}},
		Metadata:    map[string]string{"backup_id": backupID, "component": component},
		Opts:        &jetstream.ObjectMetaOptions{ChunkSize: chunkSize},
	}
	// The stream is verified, or fails before its end: sum is its digest.
	obj, err := a.put(context.WithoutCancel(ctx), a.staging, meta, &ctxReader{ctx: ctx, r: s},
		func(*jetstream.ObjectMeta, *storedChunks) ([]byte, error) { return sum, nil }, true)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := a.staging.obs.Delete(cctx, name); derr != nil && !errors.Is(derr, jetstream.ErrObjectNotFound) {
			err = errors.Join(err, derr)
		}
		return domain.StagedArchive{}, fmt.Errorf("stage download of %s: %w", backupID, err)
	}
	return domain.StagedArchive{Bucket: a.staging.name, Object: name, Size: int64(obj.Size), SHA256: s.SHA256,
		ExpiresAt: start.Add(a.cfg.StagingTTL).UTC().Truncate(time.Second)}, nil
}

// spooled is a temporary file.
type spooled struct {
	f    *os.File
	size int64
}

func (s *spooled) remove() {
	s.f.Close()
	os.Remove(s.f.Name())
}

// spool copies r into a new temporary file. On an error no file is left.
func (a *Archives) spool(ctx context.Context, r io.Reader, what string) (_ *spooled, err error) {
	f, err := os.CreateTemp(a.cfg.TempDir, "backupledger-"+what+"-*.zip")
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", what, err)
	}
	sp := &spooled{f: f}
	defer func() {
		if err != nil {
			sp.remove()
		}
	}()
	// Hide the file's ReadFrom, so that the copy goes through buf.
	sp.size, err = io.CopyBuffer(struct{ io.Writer }{f}, &ctxReader{ctx: ctx, r: r}, make([]byte, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", what, err)
	}
	return sp, nil
}

// ctxReader fails its reads once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if c.ctx.Err() != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}
