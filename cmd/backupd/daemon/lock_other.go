//go:build !unix

package daemon

import "os"

// tryLock does not lock on systems without flock: the lock file only
// records the pid there.
func tryLock(*os.File) (held bool, err error) { return false, nil }

// unlock has nothing to drop.
func unlock(*os.File) error { return nil }
