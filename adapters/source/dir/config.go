package dir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Config configures the dir source.
type Config struct {
	// Root is the folder that holds one folder per app; it is created (mode
	// 0750) if it does not exist. Required.
	Root string
}

// Validate reports every invalid field of c, joined.
func (c Config) Validate() error {
	var errs []error
	if c.Root == "" {
		errs = append(errs, errors.New("root: must be set"))
	}
	return errors.Join(errs...)
}

// rootPerm is the mode of the folders this package creates.
const rootPerm fs.FileMode = 0o750

// filePerm is the mode of the files this package creates.
const filePerm fs.FileMode = 0o640

// prepareRoot creates root if needed and checks that it is a directory.
func prepareRoot(root string) error {
	if err := os.MkdirAll(root, rootPerm); err != nil {
		return fmt.Errorf("create dir root: %w", err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("dir root: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("dir root %s: not a directory", root)
	}
	return nil
}
