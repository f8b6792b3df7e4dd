package archive

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/flate"

	"github.com/backupledger/backupledger/domain"
)

// invalid returns the *domain.Error of an archive that breaks a rule.
func invalid(format string, args ...any) error {
	return domain.Errorf(domain.CodeArchiveInvalid, format, args...)
}

// TooLarge returns the *domain.Error, with CodeArchiveTooLarge, of an
// archive of size bytes (or more) where limit are allowed.
func TooLarge(size, limit int64) error {
	return domain.Errorf(domain.CodeArchiveTooLarge, "archive is larger than the %d bytes allowed (%d bytes or more)", limit, size)
}

// Corrupt returns an error wrapping domain.ErrArchiveCorrupt whose text
// before the sentinel's says what does not match: the bytes of a stored
// archive that differ from what the ledger or the manifest says.
func Corrupt(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, domain.ErrArchiveCorrupt)...)
}

// entryErr describes an error reading an entry; an error of the
// underlying file is returned as it is.
func entryErr(f *zip.File, err error) error {
	var re *readError
	if errors.As(err, &re) {
		return re.err
	}
	return invalid("entry %q is unreadable (%s)", f.Name, zipDetail(err))
}

// zipDetail describes an error of archive/zip or of the inflater without
// Go's words.
func zipDetail(err error) string {
	switch {
	case errors.Is(err, zip.ErrChecksum):
		return "CRC-32 mismatch"
	case errors.Is(err, zip.ErrFormat):
		return "malformed zip structure"
	case errors.Is(err, zip.ErrAlgorithm):
		return "unsupported compression method"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of data"
	}
	var ce flate.CorruptInputError
	if errors.As(err, &ce) {
		return fmt.Sprintf("corrupt deflate data at byte %d", int64(ce))
	}
	return strings.TrimPrefix(err.Error(), "zip: ")
}

// readError marks an error of the io.ReaderAt under the zip, which is not
// the archive's fault.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }
