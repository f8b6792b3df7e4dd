package objectstore

import (
	"archive/zip"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"

	"github.com/backupledger/backupledger/domain"
)

// chunkSize is the object store chunk size, and the size of the writes
// into it.
const chunkSize = 128 << 10

// zipWriter writes one archive as a stream: the entries as the source emits
// them, then the manifest.
type zipWriter struct {
	bw       *bufio.Writer
	zw       *zip.Writer
	fw       *flate.Writer
	hash     hash.Hash
	buf      []byte
	manifest Manifest
	seen     map[string]struct{}
}

// writeZip writes the archive of h with the items that export emits to w,
// and returns its manifest. It does not close w.
func writeZip(w io.Writer, h domain.ArchiveHeader, export func(emit func(domain.Item) error) error) (Manifest, error) {
	z := &zipWriter{
		bw:   bufio.NewWriterSize(w, chunkSize),
		hash: sha256.New(),
		buf:  make([]byte, 32<<10),
		seen: map[string]struct{}{},
		manifest: Manifest{
			FormatVersion: FormatVersion,
			App:           h.App,
			BackupID:      h.BackupID,
			Name:          h.Name,
			Description:   h.Description,
			CreatedAt:     h.CreatedAt.UTC(),
			CreatedBy:     h.CreatedBy,
			Origin:        string(h.Origin),
			SchemaVersion: h.SchemaVersion,
			Source:        h.SourceKind,
			Components:    []string{ComponentConfig},
			Entries:       []ManifestEntry{},
		},
	}
	z.zw = zip.NewWriter(z.bw)
	// Entries are written one after another, so one compressor serves all:
	// zip closes an entry's compressor before it asks for the next one.
	z.zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		if z.fw == nil {
			fw, err := flate.NewWriter(out, flate.BestSpeed)
			if err != nil {
				return nil, err
			}
			z.fw = fw
		} else {
			z.fw.Reset(out)
		}
		return z.fw, nil
	})
	if err := export(z.add); err != nil {
		return Manifest{}, err
	}
	if err := z.finish(); err != nil {
		return Manifest{}, err
	}
	return z.manifest, nil
}

// add writes one item as the entry config/<item.Path>.
func (z *zipWriter) add(it domain.Item) error {
	if err := checkItemPath(it.Path); err != nil {
		return err
	}
	name := ComponentConfig + "/" + it.Path
	if _, dup := z.seen[name]; dup {
		return fmt.Errorf("item %q emitted twice", it.Path)
	}
	z.seen[name] = struct{}{}
	ew, err := z.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: z.manifest.CreatedAt})
	if err != nil {
		return fmt.Errorf("zip entry %s: %w", name, err)
	}
	z.hash.Reset()
	var n int64
	if it.Body != nil {
		// Hide a WriterTo so that the copy goes through buf in bounded
		// pieces whatever the body is.
		n, err = io.CopyBuffer(io.MultiWriter(ew, z.hash), struct{ io.Reader }{it.Body}, z.buf)
		if err != nil {
			return fmt.Errorf("item %q: %w", it.Path, err)
		}
	}
	if it.Size >= 0 && n != it.Size {
		return fmt.Errorf("item %q: announced %d bytes but read %d (changed during export?)", it.Path, it.Size, n)
	}
	z.manifest.Entries = append(z.manifest.Entries, ManifestEntry{Path: name, Size: n, SHA256: hex.EncodeToString(z.hash.Sum(nil))})
	return nil
}

// finish writes the manifest and the zip's central directory and flushes.
func (z *zipWriter) finish() error {
	z.manifest.ItemCount = len(z.manifest.Entries)
	mw, err := z.zw.CreateHeader(&zip.FileHeader{Name: ManifestPath, Method: zip.Deflate, Modified: z.manifest.CreatedAt})
	if err != nil {
		return fmt.Errorf("zip entry %s: %w", ManifestPath, err)
	}
	enc := json.NewEncoder(mw)
	enc.SetIndent("", "  ")
	if err := enc.Encode(z.manifest); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := z.zw.Close(); err != nil {
		return fmt.Errorf("close zip: %w", err)
	}
	return z.bw.Flush()
}

// checkItemPath accepts a relative slash-separated path without empty, "."
// or ".." segments, backslashes or control characters, in valid UTF-8, so
// that every entry can be extracted safely and read back by the upload
// validation.
func checkItemPath(p string) error {
	switch {
	case p == "":
		return errors.New("item with an empty path")
	case len(p) > 1024:
		return fmt.Errorf("item path %.40q...: longer than 1024 bytes", p)
	case !utf8.ValidString(p):
		return fmt.Errorf("item path %q: not valid UTF-8", p)
	case strings.ContainsAny(p, "\\"):
		return fmt.Errorf("item path %q: contains a backslash", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("item path %q: contains a control character", p)
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("item path %q: must be relative, without empty, \".\" or \"..\" segments", p)
		}
	}
	return nil
}
