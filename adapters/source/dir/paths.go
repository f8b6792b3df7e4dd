package dir

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/backupledger/backupledger/domain"
)

// maxPathLen is the longest item path, in bytes: an archive entry path is at
// most 1024 bytes (docs/archive.md), "files/" included.
const maxPathLen = 1024 - len(domain.ComponentFiles) - 1

// checkPath reports why p cannot be an item path: it must be relative,
// '/'-separated, valid UTF-8, at most maxPathLen bytes, without empty, "."
// or ".." segments, backslashes or control characters; the same rules as
// an archive entry path.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > maxPathLen:
		return fmt.Errorf("longer than %d bytes", maxPathLen)
	case !utf8.ValidString(p):
		return errors.New("not valid UTF-8")
	case strings.Contains(p, `\`):
		return errors.New("contains a backslash")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return errors.New("contains a control character")
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New(`must be relative, without empty, "." or ".." segments`)
		}
	}
	return nil
}
