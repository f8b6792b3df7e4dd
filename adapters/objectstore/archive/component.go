package archive

import (
	"archive/zip"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/flate"
)

// Stored is an archive read back from where it is kept, which Validate
// accepted when it was stored and whose bytes were verified since: its
// manifest is decoded, not checked again.
type Stored struct {
	// Manifest is the archive's manifest.
	Manifest Manifest
	zr       *zip.Reader
}

// OpenStored opens the archive of r, of size bytes, and reads its
// manifest. name names the archive in errors. A malformed zip or
// manifest is an error (an *domain.Error with CodeArchiveInvalid for the
// manifest), which Validate would have refused.
func OpenStored(r io.ReaderAt, size int64, name string) (*Stored, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("archive %s: %w", name, err)
	}
	var mf *zip.File
	for _, f := range zr.File {
		if f.Name == ManifestPath {
			mf = f
		}
	}
	if mf == nil {
		return nil, fmt.Errorf("archive %s has no %s", name, ManifestPath)
	}
	raw, err := readManifest(mf, DefaultMaxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", name, err)
	}
	// Only what is needed here is read from the manifest.
	m, err := DecodeManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", name, err)
	}
	return &Stored{Manifest: m, zr: zr}, nil
}

// WriteComponent writes to w a new archive with only the entries of s
// under "<component>/" (and its directory entries), copied as they are
// (not recompressed), and a manifest with the same header whose
// components, entries and item count describe only them: itself a valid
// archive. The caller checks that the manifest lists component. It
// returns ctx's cause when ctx ends, and errors of w or of reading s
// wrapped.
func (s *Stored) WriteComponent(ctx context.Context, w io.Writer, component string) error {
	bw := bufio.NewWriterSize(w, writeSize)
	zw := zip.NewWriter(bw)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	prefix := component + "/"
	for _, f := range s.zr.File {
		if !strings.HasPrefix(f.Name, prefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if err := zw.Copy(f); err != nil {
			return fmt.Errorf("component zip: copy %s: %w", f.Name, err)
		}
	}
	m := s.Manifest
	cm := m
	cm.Components = []string{component}
	cm.Entries = []ManifestEntry{}
	for _, e := range m.Entries {
		if strings.HasPrefix(e.Path, prefix) {
			cm.Entries = append(cm.Entries, e)
		}
	}
	cm.ItemCount = len(cm.Entries)
	if err := writeManifestAndClose(zw, bw, cm, m.CreatedAt.UTC()); err != nil {
		return fmt.Errorf("component zip: %w", err)
	}
	return nil
}
