package apitest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// This file is an in-memory service.ArchiveTransfer under the real
// service.Transfers, for these transport tests only: it does not read zips.
// An archive is valid when it starts with "PK\x03\x04"; one that holds
// "format:9" has an unsupported format version, one that holds "TOOBIG" is
// over the store's limit. The end-to-end tests run the real object store.

// ZipMagic starts every archive the fake accepts.
const ZipMagic = "PK\x03\x04"

// StagingBucket is the bucket the fake stages downloads in.
const StagingBucket = "ledger_staging"

// MemArchives is a service.ArchiveTransfer in memory.
type MemArchives struct {
	clock *FakeClock

	mu      sync.Mutex
	objects map[string][]byte // by backup id
	staged  map[string][]byte // the staging bucket, by object name
	// failAfter makes reads of a backup's archive fail as corrupt after
	// that many bytes.
	failAfter map[string]int
	// slow makes every read of an archive wait that long first; settle
	// makes an import work that long after reading its body, then check
	// its context.
	slow, settle time.Duration
	// imports counts ImportArchive calls; deadlines those whose context
	// had a deadline.
	imports, deadlines int
}

var _ service.ArchiveTransfer = (*MemArchives)(nil)

func NewMemArchives(clock *FakeClock) *MemArchives {
	return &MemArchives{clock: clock, objects: map[string][]byte{}, staged: map[string][]byte{}, failAfter: map[string]int{}}
}

// ImportArchive reads r to the end and keeps it under backupID.
func (m *MemArchives) ImportArchive(ctx context.Context, app, backupID string, r io.Reader) (domain.ImportedArchive, error) {
	m.mu.Lock()
	m.imports++
	if _, ok := ctx.Deadline(); ok {
		m.deadlines++
	}
	settle := m.settle
	m.mu.Unlock()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return domain.ImportedArchive{}, fmt.Errorf("read archive %s: %w", backupID, err)
	}
	if settle > 0 {
		// Keep working, reading once more past the end midway, as a
		// reader looking for trailing bytes might.
		time.Sleep(settle / 2)
		_, _ = r.Read(make([]byte, 1))
		time.Sleep(settle / 2)
		if err := ctx.Err(); err != nil {
			return domain.ImportedArchive{}, fmt.Errorf("store archive %s: %w", backupID, err)
		}
	}
	data := buf.Bytes()
	switch {
	case !bytes.HasPrefix(data, []byte(ZipMagic)):
		return domain.ImportedArchive{}, domain.Errorf(domain.CodeArchiveInvalid, "not a zip archive: no local file header at offset 0")
	case bytes.Contains(data, []byte("format:9")):
		return domain.ImportedArchive{}, domain.Errorf(domain.CodeArchiveVersion, "manifest format version 9 is not supported (this server reads 1)")
	case bytes.Contains(data, []byte("TOOBIG")):
		return domain.ImportedArchive{}, domain.Errorf(domain.CodeArchiveTooLarge, "the archive's entries uncompress to more than 8 GiB")
	}
	m.mu.Lock()
	m.objects[backupID] = bytes.Clone(data)
	m.mu.Unlock()
	return domain.ImportedArchive{
		ArchiveInfo: domain.ArchiveInfo{SizeBytes: int64(len(data)), SHA256: HexSHA(data), ItemCount: 2},
		App:         "origin", BackupID: "01K3ZQ8V1C4P2M7Q9D3E6F8G0H", Name: "the original",
		CreatedAt: Start.Add(-time.Hour), SchemaVersion: 3, Source: "kv", Components: []string{"config"},
	}, nil
}

// ImportStaged imports an object of the staging bucket and removes it.
func (m *MemArchives) ImportStaged(ctx context.Context, app, backupID, object string) (domain.ImportedArchive, error) {
	m.mu.Lock()
	data, ok := m.staged[object]
	delete(m.staged, object)
	m.mu.Unlock()
	if !ok {
		return domain.ImportedArchive{}, domain.Errorf(domain.CodeNotFound, "staging object %s not found", object)
	}
	return m.ImportArchive(ctx, app, backupID, bytes.NewReader(data))
}

// OpenArchive reads a stored archive; component "config" is the archive
// with a prefix.
func (m *MemArchives) OpenArchive(ctx context.Context, backupID string, _ int64, _, component string) (domain.ArchiveStream, error) {
	data, failAfter, err := m.archive(backupID, component)
	if err != nil {
		return domain.ArchiveStream{}, err
	}
	if component != "" && failAfter >= 0 {
		// A component is made after the whole archive was verified.
		return domain.ArchiveStream{}, fmt.Errorf("verify archive %s: sha256 differs: %w", backupID, domain.ErrArchiveCorrupt)
	}
	m.mu.Lock()
	slow := m.slow
	m.mu.Unlock()
	r := &fakeReader{ctx: ctx, data: data, failAfter: failAfter, id: backupID, slow: slow}
	return domain.ArchiveStream{ReadCloser: r, Size: int64(len(data)), SHA256: HexSHA(data)}, nil
}

// StageDownload copies an archive into the staging bucket; a corrupt one
// fails verification.
func (m *MemArchives) StageDownload(_ context.Context, backupID string, _ int64, _, component string) (domain.StagedArchive, error) {
	data, failAfter, err := m.archive(backupID, component)
	if err != nil {
		return domain.StagedArchive{}, err
	}
	if failAfter >= 0 {
		return domain.StagedArchive{}, fmt.Errorf("verify archive %s: sha256 differs: %w", backupID, domain.ErrArchiveCorrupt)
	}
	object := "download/" + backupID
	if component != "" {
		object += "/" + component
	}
	m.mu.Lock()
	m.staged[object] = data
	m.mu.Unlock()
	return domain.StagedArchive{Bucket: StagingBucket, Object: object, Size: int64(len(data)), SHA256: HexSHA(data),
		ExpiresAt: m.clock.Now().Add(time.Hour)}, nil
}

// archive returns the bytes of a backup's archive or component, and after
// how many bytes reads fail (-1: never).
func (m *MemArchives) archive(backupID, component string) ([]byte, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[backupID]
	if !ok {
		return nil, 0, fmt.Errorf("archive %s is missing", backupID)
	}
	failAfter, ok := m.failAfter[backupID]
	if !ok {
		failAfter = -1
	}
	switch component {
	case "":
	case "config":
		data = ComponentZip(data)
	default:
		return nil, 0, domain.Errorf(domain.CodeInvalidArgument, "the archive has no component %q", component)
	}
	return data, failAfter, nil
}

// DeleteArchive removes a stored archive.
func (m *MemArchives) DeleteArchive(_ context.Context, backupID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, backupID)
	return nil
}

// Stored returns how many archives are stored and staged.
func (m *MemArchives) Stored() (objects, staged int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.objects), len(m.staged)
}

// Stage puts an object into the staging bucket, as a NATS client does.
func (m *MemArchives) Stage(object string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.staged[object] = bytes.Clone(data)
}

// StagedObject returns an object of the staging bucket.
func (m *MemArchives) StagedObject(object string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.staged[object]
	return data, ok
}

// SetSlow sets slow and settle.
func (m *MemArchives) SetSlow(slow, settle time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.slow, m.settle = slow, settle
}

// Imported returns how many imports ran and how many of them under a
// deadline.
func (m *MemArchives) Imported() (imports, deadlines int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.imports, m.deadlines
}

// Corrupt makes reads of a backup's archive fail after n bytes.
func (m *MemArchives) Corrupt(backupID string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failAfter[backupID] = n
}

// ComponentZip is what the fake serves as the "config" component.
func ComponentZip(data []byte) []byte {
	return append([]byte(ZipMagic+"component:config;"), data...)
}

// fakeReader yields data in chunks of at most 1000 bytes, fails as
// Corrupt after failAfter bytes (if not negative), and fails once its
// context ends.
type fakeReader struct {
	ctx       context.Context
	data      []byte
	off       int
	failAfter int
	id        string
	slow      time.Duration
}

func (r *fakeReader) Read(p []byte) (int, error) {
	if r.slow > 0 {
		time.Sleep(r.slow)
	}
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("read archive %s: %w", r.id, err)
	}
	if r.failAfter >= 0 && r.off >= r.failAfter {
		return 0, fmt.Errorf("read archive %s: sha256 differs: %w", r.id, domain.ErrArchiveCorrupt)
	}
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	end := min(len(r.data), r.off+1000, r.off+len(p))
	if r.failAfter >= 0 {
		end = min(end, r.failAfter)
	}
	n := copy(p, r.data[r.off:end])
	r.off += n
	return n, nil
}

func (r *fakeReader) Close() error { return nil }

func HexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
