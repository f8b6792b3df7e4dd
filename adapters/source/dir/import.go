package dir

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// Prefixes of the folders an import leaves beside the app folders while it
// runs: <root>/.tmp-<app>.<random> and <root>/.old-<app>.<random>.
const (
	tmpPrefix = ".tmp-"
	oldPrefix = ".old-"
)

// copyBufSize is the size of the buffer an import copies a body through.
const copyBufSize = 256 << 10

// Import replaces the folder of app entirely with the items that items
// emits: afterwards it holds exactly those files, and nothing else (no empty
// folders either; with no items it is an empty folder). items is called
// once and calls emit for each item, one at a time; emit reads the item's
// Body to its end before it returns, so the caller may close it then.
// Item.Component must be "files" or empty, Item.Path a path as Export emits
// it, and Item.Size the body's length (negative: not checked).
//
// Import is atomic: it writes into a temporary folder beside the app's,
// syncs it and then swaps the two (see the package documentation). On any
// error the app folder is unchanged and the temporary folder removed, with
// two exceptions that the error spells out: when the root folder cannot be
// synced after the swap, the new content is in place; when the swap's
// second rename fails and so does moving the old folder back, the old
// content waits in .old-<app>.* for the next import or start to move it
// back. Importing again is safe in both cases, and importing the same items
// twice gives the same folder. Do not call Export of the same app from
// items: it waits for this import.
//
// It returns an *domain.Error with CodeInvalidArgument for a bad app id and
// for an item with another component, a bad path (absolute, with empty, "."
// or ".." segments, a backslash, a control character, not UTF-8, too long),
// a path emitted twice or that is both a file and a folder, or a body whose
// length differs from its Size; the error of items, or of emit that items
// dropped; ctx's error when ctx ends (also checked while a body is copied);
// and file system errors.
func (s *Source) Import(ctx context.Context, app string, items func(emit func(domain.Item) error) error) (err error) {
	dir, err := s.appDir(app)
	if err != nil {
		return err
	}
	l := s.lock(app)
	l.Lock()
	defer l.Unlock()

	if err := s.recoverApp(app, true); err != nil {
		return fmt.Errorf("import app %s: %w", app, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp := filepath.Join(s.root, tmpPrefix+app+"."+rand.Text())
	if err := os.Mkdir(tmp, rootPerm); err != nil {
		return fmt.Errorf("import app %s: %w", app, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp) // also a leftover of the next import
		}
	}()
	w, err := newWriter(ctx, tmp)
	if err != nil {
		return fmt.Errorf("import app %s: %w", app, err)
	}
	err = items(w.emit)
	w.done = true
	if err == nil {
		err = w.err // dropped by items
	}
	if err == nil {
		err = w.sync()
	}
	if cerr := w.root.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("import app %s: %w", app, cerr)
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.swap(app, dir, tmp)
}

var _ service.Replacer = (*Source)(nil)

// Replace implements service.Replacer: it is [Source.Import], an atomic
// replacement of the app folder with the items that items emits, and
// returns the same errors.
func (s *Source) Replace(ctx context.Context, app string, items func(emit func(domain.Item) error) error) error {
	return s.Import(ctx, app, items)
}

// swap puts the folder tmp in place of dir, the folder of app.
func (s *Source) swap(app, dir, tmp string) error {
	old := ""
	fi, err := os.Lstat(dir)
	switch {
	case err == nil:
		if err := checkAppDir(dir, fi); err != nil {
			return fmt.Errorf("import app %s: %w", app, err)
		}
		old = filepath.Join(s.root, oldPrefix+app+"."+rand.Text())
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("import app %s: move the current folder away: %w", app, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("import app %s: %w", app, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		err = fmt.Errorf("import app %s: move the new folder into place: %w", app, err)
		if old != "" {
			if rerr := os.Rename(old, dir); rerr != nil {
				return errors.Join(err, fmt.Errorf("move the current folder back from %s (the next import or a restart does it): %w", old, rerr))
			}
		}
		return err
	}
	if err := syncDir(s.root); err != nil {
		return fmt.Errorf("import app %s: the new files are in place, but syncing %s failed, so they may not survive a crash: %w", app, s.root, err)
	}
	if old != "" {
		_ = os.RemoveAll(old) // else removed by the next import of app
	}
	return nil
}

// writer writes imported items into a temporary folder.
type writer struct {
	ctx   context.Context
	dir   string
	root  *os.Root
	buf   []byte
	files map[string]struct{}
	dirs  map[string]struct{}
	err   error // the first error of emit; every later call returns it
	done  bool
}

func newWriter(ctx context.Context, dir string) (*writer, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &writer{ctx: ctx, dir: dir, root: r, buf: make([]byte, copyBufSize),
		files: make(map[string]struct{}), dirs: make(map[string]struct{})}, nil
}

func (w *writer) emit(it domain.Item) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return errors.New("dir import: emit called after items returned")
	}
	w.err = w.write(it)
	return w.err
}

func (w *writer) write(it domain.Item) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if it.Component != "" && it.Component != domain.ComponentFiles {
		return domain.Errorf(domain.CodeInvalidArgument, "item %q: component %q; the dir source imports %q only", it.Path, it.Component, domain.ComponentFiles)
	}
	if err := w.checkNew(it.Path); err != nil {
		return err
	}
	name := filepath.FromSlash(it.Path)
	if parent := filepath.Dir(name); parent != "." {
		if err := w.root.MkdirAll(parent, rootPerm); err != nil {
			return fmt.Errorf("item %q: %w", it.Path, err)
		}
	}
	f, err := w.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if errors.Is(err, fs.ErrExist) {
		return domain.Errorf(domain.CodeInvalidArgument, "item %q: a file of that name exists already (a path that differs only in case on a case-insensitive file system?)", it.Path)
	}
	if err != nil {
		return fmt.Errorf("item %q: %w", it.Path, err)
	}
	defer f.Close()
	var n int64
	if it.Body != nil {
		// Hide WriterTo and ReaderFrom so that the copy goes through buf in
		// pieces, with ctx checked before each.
		n, err = io.CopyBuffer(struct{ io.Writer }{f}, ctxReader{w.ctx, it.Body}, w.buf)
		if err != nil {
			return fmt.Errorf("item %q: %w", it.Path, err)
		}
	}
	if it.Size >= 0 && n != it.Size {
		return domain.Errorf(domain.CodeInvalidArgument, "item %q: announced %d bytes but its body has %d", it.Path, it.Size, n)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("item %q: %w", it.Path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("item %q: %w", it.Path, err)
	}
	return nil
}

// checkNew checks an item path and that it is neither a file nor a folder
// of an earlier item, and records it and its folders.
func (w *writer) checkNew(p string) error {
	if err := checkPath(p); err != nil {
		return domain.Errorf(domain.CodeInvalidArgument, "item path %q: %v", p, err)
	}
	// checkPath already implies both; kept as a second line of defence.
	name := filepath.FromSlash(p)
	if !filepath.IsLocal(name) || !strings.HasPrefix(filepath.Join(w.dir, name), w.dir+string(filepath.Separator)) {
		return domain.Errorf(domain.CodeInvalidArgument, "item path %q: not inside the app folder", p)
	}
	if _, dup := w.files[p]; dup {
		return domain.Errorf(domain.CodeInvalidArgument, "item path %q: emitted twice", p)
	}
	if _, isDir := w.dirs[p]; isDir {
		return domain.Errorf(domain.CodeInvalidArgument, "item path %q: also a folder of an earlier item", p)
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if _, isFile := w.files[d]; isFile {
			return domain.Errorf(domain.CodeInvalidArgument, "item path %q: its folder %q is also a file", p, d)
		}
	}
	w.files[p] = struct{}{}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if _, seen := w.dirs[d]; seen {
			break
		}
		w.dirs[d] = struct{}{}
	}
	return nil
}

// sync syncs every folder written, and the temporary folder itself, so that
// their entries are on disk before the swap.
func (w *writer) sync() error {
	for d := range w.dirs {
		if err := syncRootDir(w.root, filepath.FromSlash(d)); err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
	}
	if err := syncRootDir(w.root, "."); err != nil {
		return fmt.Errorf("sync %s: %w", w.dir, err)
	}
	return nil
}

func syncRootDir(r *os.Root, name string) error {
	f, err := r.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return ignoreDirSyncErr(f.Sync())
}

func syncDir(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return ignoreDirSyncErr(f.Sync())
}

// ignoreDirSyncErr drops the error of syncing a folder where the platform
// cannot (Windows).
func ignoreDirSyncErr(err error) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	return err
}

// ctxReader reads from r until ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// leftovers returns the .old-<app>.* and .tmp-<app>.* folders in the root,
// as full paths.
func (s *Source) leftovers(app string) (olds, tmps []string, err error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		switch n := e.Name(); {
		case strings.HasPrefix(n, oldPrefix+app+"."):
			olds = append(olds, filepath.Join(s.root, n))
		case strings.HasPrefix(n, tmpPrefix+app+"."):
			tmps = append(tmps, filepath.Join(s.root, n))
		}
	}
	return olds, tmps, nil
}

// recoverApp moves the old folder of app back into place if an import was
// interrupted between its two renames and, if clean, removes the leftovers
// of earlier imports of app.
func (s *Source) recoverApp(app string, clean bool) error {
	olds, tmps, err := s.leftovers(app)
	if err != nil {
		return err
	}
	if len(olds) > 0 {
		dir := filepath.Join(s.root, app)
		_, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist) && len(olds) > 1:
			return fmt.Errorf("folder %s is missing and interrupted imports left several old folders (%s): move the right one to %s by hand",
				dir, strings.Join(olds, ", "), dir)
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Rename(olds[0], dir); err != nil {
				return fmt.Errorf("move %s back to %s: %w", olds[0], dir, err)
			}
			if err := syncDir(s.root); err != nil {
				return fmt.Errorf("sync %s: %w", s.root, err)
			}
			olds = nil
		case err != nil:
			return err
		}
	}
	if !clean {
		return nil
	}
	for _, p := range append(olds, tmps...) {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove leftover %s: %w", p, err)
		}
	}
	return nil
}

// recoverAll moves back the old folder of every app whose import was
// interrupted between its two renames. It removes no leftovers: only an
// import of their app does, which cannot run at the same time as another
// import of the app (the restore saga), whereas this process may start while
// another one imports. An app whose folder cannot be moved back is left as
// it is; its exports and imports report why.
func (s *Source) recoverAll() error {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("dir root: %w", err)
	}
	seen := make(map[string]bool)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), oldPrefix)
		if !ok {
			continue
		}
		app, _, ok := strings.Cut(rest, ".")
		if !ok || seen[app] || domain.ValidateAppID(app) != nil {
			continue
		}
		seen[app] = true
		_ = s.recoverApp(app, false)
	}
	return nil
}
