package daemon

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// adminToken returns the configured admin token, or the one stored in
// <dataDir>/admin.token, creating it (mode 0600) on the first start. A
// stored file that others may read is made private again, with a warning
// (as the NATS login files are). The token itself is never logged, only
// the file's path.
func adminToken(configured, dataDir string, log *slog.Logger) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dataDir, "admin.token")
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("admin token file %s is empty", path)
		}
		if err := tightenTokenMode(path, log); err != nil {
			return "", err
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("make admin token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw)
	// Write a temp file, sync it, then link it into place: a crash leaves
	// no empty or partial token, and of two processes starting at once the
	// second reads the first one's token.
	tmp, err := os.CreateTemp(dataDir, ".admin.token-*")
	if err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if _, err := tmp.WriteString(tok + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return adminToken("", dataDir, log)
		}
		return "", fmt.Errorf("write admin token: %w", err)
	}
	log.Info("created admin token; use it as the bearer token of the API", "path", path)
	return tok, nil
}

// tightenTokenMode makes an admin token file that others may read private
// again (0600) and warns: whoever could read it may hold the token.
func tightenTokenMode(path string, log *slog.Logger) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	was := fi.Mode().Perm()
	if was&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("admin token file %s is readable by others (%s) and could not be made private: %w", path, was, err)
	}
	log.Warn("admin token file was readable by others; made private. Whoever read it holds the server administrator's token: "+
		"to replace it, stop backupd, delete the file and start again", "path", path, "was", was.String())
	return nil
}
