package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// sessionVersion is the version of the session file's format.
const sessionVersion = 1

// session is what backupctl login keeps in the user's config dir
// (sessionPath): the session token of one server, with its expiry.
type session struct {
	Version   int       `json:"version"`
	Server    string    `json:"server"` // as serverURL returns it
	User      string    `json:"user"`
	TokenID   string    `json:"token_id"`
	Token     string    `json:"token"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the server stops accepting the token; zero for
	// never.
	ExpiresAt time.Time `json:"expires_at"`
}

// expired reports whether the session's token has expired at now.
func (s *session) expired(now time.Time) bool {
	return !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

// sessionPath is the session file: backupctl/session.json in the user's
// config dir (os.UserConfigDir, unless the cli's configDir hook says
// otherwise).
func (c *cli) sessionPath() (string, error) {
	dirOf := os.UserConfigDir
	if c.configDir != nil {
		dirOf = c.configDir
	}
	dir, err := dirOf()
	if err != nil {
		return "", fmt.Errorf("find the config dir: %w", err)
	}
	return filepath.Join(dir, "backupctl", "session.json"), nil
}

// loadSession reads the session file at path. It returns an error
// matching fs.ErrNotExist when there is none.
func loadSession(path string) (*session, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("session file %s is not valid: %w", path, err)
	}
	if s.Token == "" || s.Server == "" {
		return nil, fmt.Errorf("session file %s has no token or server", path)
	}
	return &s, nil
}

// saveSession writes s to path atomically: into a temporary file (mode
// 0600) beside it, which is then renamed over it, so a reader sees the old
// session or the new one, never a part. The directory is made (mode 0700)
// if need be.
func saveSession(path string, s *session) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make session dir: %w", err)
	}
	// The dir is backupctl's own: keep others out even if it was made
	// with a wider mode.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict session dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".session-*.tmp")
	if err != nil {
		return fmt.Errorf("create session file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("restrict session file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("write session file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync session file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close session file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		done = true
		return fmt.Errorf("store session file: %w", err)
	}
	done = true
	return nil
}

// removeSession removes the session file at path; none is fine.
func removeSession(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove session file: %w", err)
	}
	return nil
}
