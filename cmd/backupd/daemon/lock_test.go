package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// One process holds a data dir's lock at a time (another open of the same
// process too, as a second daemon in a test would); the refusal names the
// holder's pid; after a release the next one takes it.
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	first, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	lockFile := filepath.Join(dir, lockFileName)
	b, err := os.ReadFile(lockFile)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("LOCK holds %q (%v), want this pid %d", b, err, os.Getpid())
	}
	if fi, err := os.Stat(lockFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("LOCK mode: %v %v", fi, err)
	}

	second, err := lockDataDir(dir)
	if err == nil {
		second.release()
		t.Fatal("a second lock of the same data dir was taken")
	}
	if !errors.Is(err, ErrDataDirInUse) {
		t.Errorf("error %v is not ErrDataDirInUse", err)
	}
	for _, want := range []string{dir, "pid " + strconv.Itoa(os.Getpid()), "--data-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	// A holder whose pid is not recorded (written by hand, or a start cut
	// short) is still a holder.
	if err := os.WriteFile(lockFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), "pid is not recorded") {
		t.Errorf("lock held, pid unknown: %v", err)
	}

	if err := first.release(); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := first.release(); err != nil {
		t.Errorf("second release: %v", err)
	}
	if b, _ := os.ReadFile(lockFile); len(b) != 0 {
		t.Errorf("LOCK still holds %q after the release", b)
	}
	third, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after the release: %v", err)
	}
	defer third.release()

	// Another data dir is another lock.
	other, err := lockDataDir(t.TempDir())
	if err != nil {
		t.Fatalf("lock of another dir: %v", err)
	}
	other.release()

	// A data dir that cannot hold the lock file.
	if _, err := lockDataDir(filepath.Join(t.TempDir(), "missing")); err == nil || errors.Is(err, ErrDataDirInUse) {
		t.Errorf("lock in a missing dir: %v", err)
	}
}
