package archive

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
)

// readManifest reads the content of f, the manifest, of at most limit
// bytes.
func readManifest(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, entryErr(f, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, entryErr(f, err)
	}
	if int64(len(raw)) > limit {
		return nil, invalid("%s is more than the %d bytes allowed", ManifestPath, limit)
	}
	return raw, nil
}

// verifyJob is one entry to check against its manifest entry.
type verifyJob struct {
	f    *zip.File
	want ManifestEntry
}

// verifyAll reads every job's entry and compares it with the manifest, on
// up to GOMAXPROCS goroutines. Of several bad entries it reports the
// first in file order.
func verifyAll(ctx context.Context, jobs []verifyJob) error {
	workers := min(runtime.GOMAXPROCS(0), 4, len(jobs))
	var (
		next     atomic.Int64
		firstBad atomic.Int64
		errs     = make([]error, len(jobs))
		wg       sync.WaitGroup
	)
	firstBad.Store(int64(len(jobs)))
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(jobs)) || i > firstBad.Load() {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = verifyEntry(jobs[i], buf)
				}
				if err != nil {
					errs[i] = err
					for {
						cur := firstBad.Load()
						if i >= cur || firstBad.CompareAndSwap(cur, i) {
							break
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if i := firstBad.Load(); i < int64(len(jobs)) {
		return errs[i]
	}
	return nil
}

// verifyEntry inflates j's entry through buf, and checks its size and
// SHA-256 against the manifest; inflating stops one byte past the size
// the manifest lists.
func verifyEntry(j verifyJob, buf []byte) error {
	f, want := j.f, j.want
	rc, err := f.Open()
	if err != nil {
		return entryErr(f, err)
	}
	defer rc.Close()
	h := sha256.New()
	// One byte more than the manifest lists: inflating stops right there.
	n, err := io.CopyBuffer(h, io.LimitReader(rc, want.Size+1), buf)
	switch {
	case n > want.Size || errors.Is(err, zip.ErrFormat): // the zip reader's word for "more than the header says"
		return invalid("entry %q inflates to more than the %d bytes %s lists", f.Name, want.Size, ManifestPath)
	case err != nil:
		return entryErr(f, err)
	case n < want.Size:
		return invalid("entry %q has %d bytes, %s lists %d", f.Name, n, ManifestPath, want.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return invalid("entry %q has sha256 %s, %s lists %s", f.Name, got, ManifestPath, want.SHA256)
	}
	return nil
}

// inflaters recycles klauspost deflate readers (faster than the standard
// library's) across entries.
var inflaters sync.Pool

type inflater struct{ rc io.ReadCloser }

func newInflater(r io.Reader) io.ReadCloser {
	if rc, ok := inflaters.Get().(io.ReadCloser); ok {
		if err := rc.(flate.Resetter).Reset(r, nil); err == nil {
			return &inflater{rc}
		}
	}
	return &inflater{flate.NewReader(r)}
}

func (i *inflater) Read(p []byte) (int, error) {
	if i.rc == nil {
		return 0, errors.New("read of a closed inflater")
	}
	return i.rc.Read(p)
}

func (i *inflater) Close() error {
	if i.rc == nil {
		return nil
	}
	err := i.rc.Close()
	inflaters.Put(i.rc)
	i.rc = nil
	return err
}
