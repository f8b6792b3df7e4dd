package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sessionCLI is a cli whose config dir is dir and whose environment is env.
func sessionCLI(dir string, env map[string]string) (*cli, *bytes.Buffer) {
	var errOut bytes.Buffer
	return &cli{
		stdout: &bytes.Buffer{}, stderr: &errOut,
		env:        func(k string) string { return env[k] },
		isTerminal: func(any) bool { return false },
		configDir:  func() (string, error) { return dir, nil },
	}, &errOut
}

func TestFindTokenOrder(t *testing.T) {
	const (
		here  = "http://127.0.0.1:8080"
		there = "https://backup.example"
	)
	future := time.Now().Add(time.Hour)
	valid := &session{Version: sessionVersion, Server: here, User: "ada", Token: "session-tok", ExpiresAt: future}
	otherServer := &session{Version: sessionVersion, Server: there, User: "ada", Token: "session-tok", ExpiresAt: future}
	expired := &session{Version: sessionVersion, Server: here, User: "ada", Token: "session-tok", ExpiresAt: time.Now().Add(-time.Minute)}
	forever := &session{Version: sessionVersion, Server: here, User: "ada", Token: "session-tok"}
	for _, tc := range []struct {
		name      string
		flag, env string
		session   *session // nil: no session file
		adminFile bool
		wantToken string
		wantFrom  string
		wantErr   string // a usage error containing this
	}{
		{name: "flag first", flag: "flag-tok", env: "env-tok", session: valid, adminFile: true,
			wantToken: "flag-tok", wantFrom: "--token"},
		{name: "env before the session", env: "env-tok", session: valid, adminFile: true,
			wantToken: "env-tok", wantFrom: "$BACKUPCTL_TOKEN"},
		{name: "session before the admin file", session: valid, adminFile: true,
			wantToken: "session-tok", wantFrom: "backupctl login"},
		{name: "session without expiry", session: forever,
			wantToken: "session-tok", wantFrom: "backupctl login"},
		{name: "admin file last", adminFile: true,
			wantToken: "admin-tok", wantFrom: "./data/admin.token"},
		{name: "other server's session ignored", session: otherServer, adminFile: true,
			wantToken: "admin-tok", wantFrom: "./data/admin.token"},
		{name: "expired session ignored", session: expired, adminFile: true,
			wantToken: "admin-tok", wantFrom: "./data/admin.token"},
		{name: "nothing", wantErr: "no token: pass --token"},
		{name: "other server's session, nothing else", session: otherServer,
			wantErr: "no token (the session of backupctl login is for " + there + "): pass --token"},
		{name: "expired session, nothing else", session: expired,
			wantErr: "no token (the session of backupctl login expired at "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			t.Chdir(work)
			if tc.adminFile {
				if err := os.MkdirAll("data", 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(tokenFile, []byte("admin-tok\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, errOut := sessionCLI(filepath.Join(work, "config"), map[string]string{envToken: tc.env})
			c.g.token = tc.flag
			if tc.session != nil {
				path, err := c.sessionPath()
				if err != nil {
					t.Fatal(err)
				}
				if err := saveSession(path, tc.session); err != nil {
					t.Fatal(err)
				}
			}
			cred, err := c.findToken(here)
			if tc.wantErr != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(ue.msg, tc.wantErr) {
					t.Fatalf("findToken = %+v, %v; want a usage error with %q", cred, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("findToken: %v", err)
			}
			if cred.token != tc.wantToken || cred.from != tc.wantFrom {
				t.Errorf("findToken = %q from %q, want %q from %q", cred.token, cred.from, tc.wantToken, tc.wantFrom)
			}
			if (cred.session != nil) != (tc.wantFrom == fromSession) {
				t.Errorf("session = %v, want one only from the login", cred.session)
			}
			// Falling back from a login to the admin token is said.
			noted := strings.Contains(errOut.String(), "acting as the server administrator")
			if want := tc.session != nil && tc.wantFrom == "./data/admin.token"; noted != want {
				t.Errorf("stderr %q: note of the fallback = %v, want %v", errOut.String(), noted, want)
			}
		})
	}
}

func TestFindTokenWarnsOfABadSessionFile(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	c, errOut := sessionCLI(work, nil)
	path, _ := c.sessionPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := c.findToken("http://127.0.0.1:8080")
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(ue.msg, "the session file is unusable; log in again") {
		t.Errorf("findToken: %v", err)
	}
	if !strings.Contains(errOut.String(), "ignoring the session of backupctl login: session file ") {
		t.Errorf("stderr %q does not warn", errOut.String())
	}
}

func TestSessionFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	c, _ := sessionCLI(dir, nil)
	path, err := c.sessionPath()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "backupctl", "session.json"); path != want {
		t.Fatalf("sessionPath = %s, want %s", path, want)
	}
	if _, err := loadSession(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("loadSession of nothing: %v, want fs.ErrNotExist", err)
	}

	exp := time.Date(2026, 9, 1, 0, 2, 0, 0, time.UTC)
	first := &session{Version: sessionVersion, Server: "http://127.0.0.1:8080", User: "ada", TokenID: "t1", Token: "bl_t1_x", ExpiresAt: exp}
	if err := saveSession(path, first); err != nil {
		t.Fatalf("saveSession: %v", err)
	}
	second := &session{Version: sessionVersion, Server: "https://backup.example", User: "bob", TokenID: "t2", Token: "bl_t2_y", ExpiresAt: exp}
	if err := saveSession(path, second); err != nil {
		t.Fatalf("saveSession over the first: %v", err)
	}
	got, err := loadSession(path)
	if err != nil {
		t.Fatalf("loadSession: %v", err)
	}
	if *got != *second {
		t.Errorf("loadSession = %+v, want %+v", got, second)
	}
	for p, want := range map[string]fs.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("session dir holds %v, want only session.json (no temporary files)", entries)
	}

	if err := removeSession(path); err != nil {
		t.Fatalf("removeSession: %v", err)
	}
	if err := removeSession(path); err != nil {
		t.Errorf("removeSession of nothing: %v", err)
	}
}

func TestSessionDirIsRestricted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "backupctl")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := saveSession(filepath.Join(dir, "session.json"), &session{Server: "http://x", Token: "t"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
}

func TestSaveSessionFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "session.json")
	// A directory where the file should go: the rename fails.
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := saveSession(path, &session{Server: "http://x", Token: "t"}); err == nil {
		t.Fatal("saveSession over a directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "session.json" {
		t.Errorf("dir holds %v, want only what was there", entries)
	}
}

func TestLoadSessionRefusesIncompleteFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not json":  "{",
		"no token":  `{"server":"http://x"}`,
		"no server": `{"token":"t"}`,
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := loadSession(path); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: loadSession = %+v, %v; want an error", name, s, err)
		}
	}
}
