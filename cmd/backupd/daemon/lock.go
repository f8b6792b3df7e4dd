package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrDataDirInUse means that another process holds the data dir's lock:
// two backupd on one data dir would each run a NATS server on the same
// store and lose each other's writes.
var ErrDataDirInUse = errors.New("data dir in use")

// lockFileName is the lock file in the data dir; it holds the pid of the
// process that holds the lock.
const lockFileName = "LOCK"

// dirLock is the exclusive lock of a data dir, held from Start to the end
// of a stop.
type dirLock struct {
	f *os.File
}

// lockDataDir takes the exclusive lock of dir (an advisory lock on
// <dir>/LOCK, which the kernel drops with the process) and writes this
// process's pid into the file. When another process holds it, the error
// wraps ErrDataDirInUse and names that process's pid if the file records
// it.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data dir %s: %w", path, err)
	}
	if held {
		pid := "its pid is not recorded"
		if b, err := os.ReadFile(path); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
				pid = "pid " + strconv.Itoa(n)
			}
		}
		f.Close()
		return nil, fmt.Errorf("%w: %s is locked by another backupd (%s; lock file %s): stop that one first, or give this one another --data-dir",
			ErrDataDirInUse, dir, pid, path)
	}
	l := &dirLock{f: f}
	if err := l.writePID(os.Getpid()); err != nil {
		l.release()
		return nil, fmt.Errorf("lock data dir %s: %w", path, err)
	}
	return l, nil
}

// writePID replaces the lock file's content with pid.
func (l *dirLock) writePID(pid int) error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0)
	return err
}

// release empties the lock file (no stale pid stays behind) and drops the
// lock. A nil lock is released already.
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	terr := l.f.Truncate(0)
	uerr := unlock(l.f)
	cerr := l.f.Close()
	l.f = nil
	if err := errors.Join(terr, uerr, cerr); err != nil {
		return fmt.Errorf("unlock data dir: %w", err)
	}
	return nil
}
