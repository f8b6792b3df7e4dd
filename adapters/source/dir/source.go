package dir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/text/unicode/norm"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// Kind is the source kind recorded in archives of this source.
const Kind = "dir"

// SchemaVersion is the version of the structure this source exports.
//
//   - 1: files under their names as the file system gives them.
//   - 2: file names in Unicode normalization form C (NFC), the form most
//     systems write; a name another system wrote decomposed (NFD, as macOS
//     does) is archived and restored composed, so that the same name is
//     the same path in every archive. Migrations gives the step from 1.
const SchemaVersion = 2

// Source is the built-in source of app files in one folder per app. It is
// safe for concurrent use.
type Source struct {
	root string

	mu    sync.Mutex
	locks map[string]*sync.RWMutex // per app: exports read, imports write
}

var _ service.Source = (*Source)(nil)

// New returns a Source on cfg.Root, creating the folder (mode 0750) if it
// does not exist, and moves back the old folder of any app whose import was
// interrupted between its two renames (see the package documentation). It
// returns an error if cfg is invalid, or if the root cannot be created, is
// not a directory or cannot be read.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dir config: %w", err)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("dir root: %w", err)
	}
	if err := prepareRoot(root); err != nil {
		return nil, err
	}
	s := &Source{root: root, locks: make(map[string]*sync.RWMutex)}
	if err := s.recoverAll(); err != nil {
		return nil, err
	}
	return s, nil
}

// Kind returns "dir".
func (s *Source) Kind() string { return Kind }

// SchemaVersion returns SchemaVersion.
func (s *Source) SchemaVersion() int { return SchemaVersion }

// Components implements service.Source: files go into "files".
func (s *Source) Components() []string { return []string{domain.ComponentFiles} }

// appDir returns the folder of app's files, <root>/<app>. A bad app id
// returns an *domain.Error with CodeInvalidArgument.
func (s *Source) appDir(app string) (string, error) {
	if err := domain.ValidateAppID(app); err != nil {
		return "", err
	}
	return filepath.Join(s.root, app), nil
}

// lock returns the lock of app.
func (s *Source) lock(app string) *sync.RWMutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locks[app]
	if !ok {
		l = new(sync.RWMutex)
		s.locks[app] = l
	}
	return l
}

// Export calls emit for every regular file of app's folder, sorted by path
// (byte order), with Component "files", the '/'-separated path relative to
// the folder, the size, and the open file as Body; the file is closed when
// emit returns. A missing folder gives no items. It returns an
// *domain.Error with CodeInvalidArgument for a bad app id, for a symbolic
// link or other non-regular file under the folder, and for a file whose
// path cannot be an archive entry path, each naming the file; an error if a
// file changes type or disappears during the export, or if the folder is
// missing because an import of another process is between its renames; an
// error of emit as is; ctx's error when ctx ends (checked between files:
// emit is responsible for ctx while it reads a body). emit must not import
// app: the import waits for this export.
func (s *Source) Export(ctx context.Context, app string, emit func(domain.Item) error) error {
	dir, err := s.appDir(app)
	if err != nil {
		return err
	}
	l := s.lock(app)
	l.RLock()
	defer l.RUnlock()

	r, err := s.openApp(app, dir)
	if err != nil || r == nil {
		return err
	}
	defer r.Close()
	paths, err := list(ctx, r, dir)
	if err != nil {
		return fmt.Errorf("export app %s: %w", app, err)
	}
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emitFile(r, dir, p, emit); err != nil {
			return err
		}
	}
	return nil
}

// openApp opens the folder of app as a root, or returns nil if it does not
// exist.
func (s *Source) openApp(app, dir string) (*os.Root, error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		olds, _, err := s.leftovers(app)
		if err != nil {
			return nil, fmt.Errorf("export app %s: %w", app, err)
		}
		switch {
		case len(olds) == 1:
			return nil, fmt.Errorf("export app %s: folder %s is missing and an interrupted import left its content in %s; the next import of the app or a restart of backupd moves it back",
				app, dir, olds[0])
		case len(olds) > 1:
			return nil, fmt.Errorf("export app %s: folder %s is missing and interrupted imports left several old folders (%s): move the right one to %s by hand",
				app, dir, strings.Join(olds, ", "), dir)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("export app %s: %w", app, err)
	}
	if err := checkAppDir(dir, fi); err != nil {
		return nil, fmt.Errorf("export app %s: %w", app, err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("export app %s: %w", app, err)
	}
	return r, nil
}

// checkAppDir refuses an app folder that is not a plain directory.
func checkAppDir(dir string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return domain.Errorf(domain.CodeInvalidArgument, "app folder %s is a symbolic link; the dir source needs a directory", dir)
	case !fi.IsDir():
		return domain.Errorf(domain.CodeInvalidArgument, "app folder %s is not a directory", dir)
	}
	return nil
}

// list returns the paths of the regular files under r, sorted, and refuses
// anything else but directories.
func list(ctx context.Context, r *os.Root, dir string) ([]string, error) {
	var paths []string
	err := fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if d.IsDir() {
			return nil // an empty one is not exported; a file in it is checked
		}
		if !d.Type().IsRegular() {
			return domain.Errorf(domain.CodeInvalidArgument, "%q is %s; the dir source exports regular files only (remove it or replace it with a copy)",
				filepath.Join(dir, filepath.FromSlash(p)), describe(d.Type()))
		}
		if err := checkPath(p); err != nil {
			return badName(dir, p, err)
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	// Archived in NFC (SchemaVersion 2), two names that differ only in
	// their normalization would be one path.
	seen := make(map[string]string, len(paths))
	for _, p := range paths {
		n := norm.NFC.String(p)
		if q, ok := seen[n]; ok {
			return nil, domain.Errorf(domain.CodeInvalidArgument, "%q and %q in %s are the same name once composed (Unicode NFC); rename one",
				q, p, dir)
		}
		seen[n] = p
	}
	return paths, nil
}

func badName(dir, p string, why error) error {
	return domain.Errorf(domain.CodeInvalidArgument, "%q: its path cannot be stored in an archive: %v; rename it",
		filepath.Join(dir, filepath.FromSlash(p)), why)
}

// describe names a non-regular file type.
func describe(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return "not a regular file"
	}
}

// emitFile opens the file p of r and emits it.
func emitFile(r *os.Root, dir, p string, emit func(domain.Item) error) error {
	name := filepath.FromSlash(p)
	full := filepath.Join(dir, name)
	before, err := r.Lstat(name)
	if err != nil {
		return changed(full, err)
	}
	// O_NONBLOCK: a file replaced by a named pipe since the listing must not
	// block the open; it is refused below.
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return changed(full, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return changed(full, err)
	}
	if !fi.Mode().IsRegular() || !os.SameFile(before, fi) {
		return changed(full, errors.New("replaced by something else"))
	}
	if err := emit(domain.Item{Component: domain.ComponentFiles, Path: norm.NFC.String(p), Size: fi.Size(), Body: f}); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", full, err)
	}
	return nil
}

func changed(full string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%q disappeared during the export", full)
	}
	return fmt.Errorf("%q changed during the export: %w", full, err)
}
