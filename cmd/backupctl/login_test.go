package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// identityServer is a fake backupd for the login: ada's password is
// "correct horse battery", her session token "bl_s1_secret".
type identityServer struct {
	*httptest.Server
	mu       sync.Mutex
	loggedIn bool   // the session is valid
	created  string // the password of the last user created
}

// lastCreated returns the password of the last user created and forgets it.
func (s *identityServer) lastCreated() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	pw := s.created
	s.created = ""
	return pw
}

func newIdentityServer(t *testing.T) *identityServer {
	t.Helper()
	s := &identityServer{}
	problem := func(w http.ResponseWriter, status int, code string) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":%d,"code":%q,"detail":"no"}`, status, code)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Method+" "+r.URL.Path == "POST /v1/sessions" {
			if r.Header.Get("Authorization") != "" {
				t.Error("login sent a bearer token")
			}
			var req struct{ User, Password string }
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.User != "ada" || req.Password != "correct horse battery" {
				problem(w, http.StatusUnauthorized, "unauthenticated")
				return
			}
			s.loggedIn = true
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"id":"s1","name":"session","kind":"session","user":"ada","created_at":"2026-08-31T12:00:00Z","expires_at":"2999-01-01T00:00:00Z","revoked":false,"token":"bl_s1_secret"}`)
			return
		}
		switch auth := r.Header.Get("Authorization"); {
		case auth == "Bearer admin-tok":
		case auth == "Bearer bl_s1_secret" && s.loggedIn:
		default:
			problem(w, http.StatusUnauthorized, "unauthenticated")
			return
		}
		switch r.Method + " " + r.URL.Path {
		case "GET /v1/me":
			fmt.Fprint(w, `{"id":"ada","admin":false,"orgs":[],"apps":[]}`)
		case "DELETE /v1/sessions/current":
			s.loggedIn = false
			w.WriteHeader(http.StatusNoContent)
		case "POST /v1/users":
			var req struct{ ID, Name, Password string }
			json.NewDecoder(r.Body).Decode(&req)
			s.created = req.Password
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":%q,"name":%q,"email":"","disabled":false,"created_at":"2026-08-31T12:00:00Z","orgs":[]}`, req.ID, req.Name)
		default:
			problem(w, http.StatusNotFound, "not_found")
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// identityCLI runs backupctl against srv (or the URL server) with its
// config in dir and the answers typed on a terminal (terminal true; each
// password read takes the next one) or piped on stdin.
func identityCLI(t *testing.T, server, dir string, terminal bool, input []string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	typed := input
	c := &cli{
		stdout: &out, stderr: &errOut,
		env: func(k string) string {
			if k == envServer {
				return server
			}
			return ""
		},
		isTerminal: func(any) bool { return terminal },
		configDir:  func() (string, error) { return dir, nil },
		readPassword: func(context.Context, any) ([]byte, error) {
			if len(typed) == 0 {
				return nil, errors.New("nothing typed")
			}
			pw := typed[0]
			typed = typed[1:]
			return []byte(pw), nil
		},
	}
	if terminal {
		c.stdin = strings.NewReader("ada\n") // the user name, typed with echo
	} else {
		c.stdin = strings.NewReader(strings.Join(input, "\n") + "\n")
	}
	code := c.main(context.Background(), args)
	return result{code, out.String(), errOut.String()}
}

func TestLoginOnATerminal(t *testing.T) {
	srv := newIdentityServer(t)
	dir := t.TempDir()
	t.Chdir(t.TempDir()) // no ./data/admin.token
	r := identityCLI(t, srv.URL, dir, true, []string{"correct horse battery"}, "login")
	if r.code != 0 {
		t.Fatalf("login: exit %d: %s", r.code, r.stderr)
	}
	if r.stderr != "User: Password for ada: \n" {
		t.Errorf("prompts %q", r.stderr)
	}
	if want := "Logged in to " + srv.URL + " as ada until 2999-01-01 00:00:00 UTC.\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	s, err := loadSession(filepath.Join(dir, "backupctl", "session.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := session{Version: sessionVersion, Server: srv.URL, User: "ada", TokenID: "s1", Token: "bl_s1_secret",
		CreatedAt: time.Date(2026, 8, 31, 12, 0, 0, 0, time.UTC), ExpiresAt: time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)}
	if *s != want {
		t.Errorf("session %+v, want %+v", *s, want)
	}

	r = identityCLI(t, srv.URL, dir, false, nil, "whoami")
	if r.code != 0 || !strings.Contains(r.stdout, "Token:         from backupctl login, expires 2999-01-01 00:00:00 UTC") {
		t.Errorf("whoami: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestLoginRefused(t *testing.T) {
	srv := newIdentityServer(t)
	for _, tc := range []struct {
		name     string
		terminal bool
		input    []string
		args     []string
		code     int
		stderr   string
	}{
		{"wrong password", false, []string{"wrong password!"}, []string{"login", "ada"}, 1,
			"backupctl: unauthenticated: no\n"},
		{"no password piped", false, nil, []string{"login", "ada"}, 2,
			"backupctl: no password given: the line on stdin is empty\n"},
		{"nothing typed", true, []string{""}, []string{"login", "ada"}, 2,
			"Password for ada: \nbackupctl: no password given\n"},
		{"no user name", false, nil, []string{"login"}, 2,
			"backupctl: no user name: give USER, or type it when asked\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := identityCLI(t, srv.URL, dir, tc.terminal, tc.input, tc.args...)
			if r.code != tc.code || !strings.HasPrefix(r.stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d, %q", r.code, r.stderr, tc.code, tc.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "backupctl", "session.json")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused login left a session file: %v", err)
			}
		})
	}
}

func TestUserCreateAsksTwiceOnATerminal(t *testing.T) {
	srv := newIdentityServer(t)
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		name     string
		terminal bool
		input    []string
		code     int
		created  string
	}{
		{"same twice", true, []string{"a long password", "a long password"}, 0, "a long password"},
		{"typo", true, []string{"a long password", "a long passwrod"}, 1, ""},
		{"piped once", false, []string{"a piped password"}, 0, "a piped password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := identityCLI(t, srv.URL, t.TempDir(), tc.terminal, tc.input,
				"user", "create", "bob", "--name", "Bob", "--token", "admin-tok")
			if created := srv.lastCreated(); r.code != tc.code || created != tc.created {
				t.Errorf("exit %d, created with %q; want %d, %q\n%s", r.code, created, tc.code, tc.created, r.stderr)
			}
			if tc.code == 1 && !strings.Contains(r.stderr, "the passwords do not match; nothing changed") {
				t.Errorf("stderr %q", r.stderr)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	srv := newIdentityServer(t)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tc := range []struct {
		name     string
		server   string
		loggedIn bool // on the server
		expires  time.Time
		code     int
		stdout   string
		kept     bool
	}{
		{"valid", srv.URL, true, time.Now().Add(time.Hour), 0, "Logged out ada from " + srv.URL + ".\n", false},
		{"revoked on the server", srv.URL, false, time.Now().Add(time.Hour), 0,
			"The server no longer accepted the session of ada (unauthenticated: no); removed it anyway.\n", false},
		{"expired", gone.URL, false, time.Now().Add(-time.Hour), 0, "The session of ada at " + gone.URL + " had expired", false},
		{"server unreachable", gone.URL, false, time.Now().Add(time.Hour), 1, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "backupctl", "session.json")
			if err := saveSession(path, &session{Version: sessionVersion, Server: tc.server, User: "ada", Token: "bl_s1_secret", ExpiresAt: tc.expires}); err != nil {
				t.Fatal(err)
			}
			srv.mu.Lock()
			srv.loggedIn = tc.loggedIn
			srv.mu.Unlock()
			// --server does not matter: the session's own server is used.
			r := identityCLI(t, "http://127.0.0.1:1", dir, false, nil, "logout")
			if r.code != tc.code || !strings.HasPrefix(r.stdout, tc.stdout) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q", r.code, r.stdout, r.stderr, tc.code, tc.stdout)
			}
			_, err := os.Stat(path)
			if kept := err == nil; kept != tc.kept {
				t.Errorf("session file kept: %v, want %v", kept, tc.kept)
			}
			if tc.kept && !strings.Contains(r.stderr, "the session is kept, try again") {
				t.Errorf("stderr %q", r.stderr)
			}
		})
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.loggedIn {
		t.Error("the valid session was not revoked on the server")
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 8, 31, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time // zero: an error
	}{
		{"720h", now.Add(720 * time.Hour)},
		{"90m", now.Add(90 * time.Minute)},
		{"90d", now.AddDate(0, 0, 90)},
		{"2026-12-31T23:00:00Z", time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)},
		{"2026-12-31T23:00:00+02:00", time.Date(2026, 12, 31, 21, 0, 0, 0, time.UTC)},
		{"0d", time.Time{}},
		{"-1h", time.Time{}},
		{"2020-01-01T00:00:00Z", time.Time{}},
		{"soon", time.Time{}},
		{"", time.Time{}},
	} {
		got, err := parseExpiry(tc.in, now)
		if !got.Equal(tc.want) || (err != nil) != tc.want.IsZero() {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
