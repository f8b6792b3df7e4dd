package daemon

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// captureLog returns a logger that writes text into the returned buffer.
func captureLog() (*slog.Logger, *logBuffer) {
	var buf logBuffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// logBuffer is a log's output, safe to read while another goroutine logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAdminTokenConfiguredWins(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, buf := captureLog()
	got, err := adminToken("configured", dir, log)
	if err != nil || got != "configured" {
		t.Errorf("adminToken(configured) = %q, %v; want %q", got, err, "configured")
	}

	empty := t.TempDir()
	if _, err := adminToken("configured", empty, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(empty, "admin.token")); !os.IsNotExist(err) {
		t.Errorf("a configured token still created admin.token (stat: %v)", err)
	}
	if strings.Contains(buf.String(), "configured") {
		t.Errorf("the configured token was logged:\n%s", buf.String())
	}
}

func TestAdminTokenCreatedOnFirstStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.token")
	log, buf := captureLog()

	tok, err := adminToken("", dir, log)
	if err != nil {
		t.Fatalf("adminToken on first start: %v", err)
	}
	if len(tok) < 43 {
		t.Errorf("token %d characters long, want at least 43 (256 bits of base64url)", len(tok))
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Errorf("token is not unpadded base64url: %v", err)
	} else if len(raw) < 32 {
		t.Errorf("token carries %d bytes, want at least 32", len(raw))
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("admin.token not created: %v", err)
	}
	if mode := fi.Mode(); mode.Perm() != 0o600 || !mode.IsRegular() {
		t.Errorf("admin.token mode = %v, want -rw-------", mode)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(content)); got != tok {
		t.Errorf("admin.token holds %q, want the returned token", got)
	}

	out := buf.String()
	if !strings.Contains(out, path) {
		t.Errorf("log does not name the token file %s:\n%s", path, out)
	}
	if strings.Contains(out, tok) {
		t.Errorf("log contains the token:\n%s", out)
	}

	// The second start reads the same token, without logging it.
	buf.Reset()
	again, err := adminToken("", dir, log)
	if err != nil || again != tok {
		t.Errorf("second adminToken = %q, %v; want the first token", again, err)
	}
	if strings.Contains(buf.String(), tok) {
		t.Errorf("second start logged the token:\n%s", buf.String())
	}

	// Another data dir gets another token.
	other, err := adminToken("", t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	if other == tok {
		t.Error("two data dirs got the same token")
	}
}

func TestAdminTokenReadsExistingFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("  operator-chosen\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := adminToken("", dir, slog.New(slog.DiscardHandler))
	if err != nil || got != "operator-chosen" {
		t.Errorf("adminToken = %q, %v; want %q with the spaces trimmed", got, err, "operator-chosen")
	}
}

func TestAdminTokenErrors(t *testing.T) {
	for _, content := range []string{"", " \n\t\n"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "admin.token")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := adminToken("", dir, slog.New(slog.DiscardHandler))
		if err == nil {
			t.Errorf("adminToken with file content %q = %q, want an error", content, tok)
			continue
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "empty") {
			t.Errorf("error %q does not say that %s is empty", err, path)
		}
	}

	// admin.token that cannot be read as a file.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "admin.token"), 0o700); err != nil {
		t.Fatal(err)
	}
	if tok, err := adminToken("", dir, slog.New(slog.DiscardHandler)); err == nil {
		t.Errorf("adminToken with a directory named admin.token = %q, want an error", tok)
	}

	// A data dir that does not exist.
	missing := filepath.Join(t.TempDir(), "no", "such", "dir")
	if tok, err := adminToken("", missing, slog.New(slog.DiscardHandler)); err == nil {
		t.Errorf("adminToken in a missing dir = %q, want an error", tok)
	}
}

func TestAdminTokenConcurrentFirstStartsAgree(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	toks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = adminToken("", dir, slog.New(slog.DiscardHandler))
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("start %d: %v", i, errs[i])
		}
		if toks[i] != toks[0] {
			t.Fatalf("start %d got another token than start 0", i)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "admin.token" {
		t.Errorf("data dir holds %v, want only admin.token (no temp files left)", entries)
	}
}

// An admin.token that others may read is made private again, with a
// warning naming the file (never the token), as the NATS login files are.
func TestAdminTokenLooseModeIsRepaired(t *testing.T) {
	for _, loose := range []os.FileMode{0o644, 0o640, 0o604, 0o666} {
		dir := t.TempDir()
		path := filepath.Join(dir, "admin.token")
		if err := os.WriteFile(path, []byte("loose-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, loose); err != nil {
			t.Fatal(err)
		}
		log, buf := captureLog()
		tok, err := adminToken("", dir, log)
		if err != nil || tok != "loose-secret" {
			t.Fatalf("%v: adminToken = %q, %v", loose, tok, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%v: mode after start %v, want -rw-------", loose, fi.Mode().Perm())
		}
		out := buf.String()
		if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "readable by others") || !strings.Contains(out, path) ||
			!strings.Contains(out, loose.String()) {
			t.Errorf("%v: no warning naming the file and its mode:\n%s", loose, out)
		}
		if strings.Contains(out, "loose-secret") {
			t.Errorf("%v: the warning contains the token:\n%s", loose, out)
		}

		// Private now: the next start says nothing.
		buf.Reset()
		if _, err := adminToken("", dir, log); err != nil {
			t.Fatal(err)
		}
		if buf.String() != "" {
			t.Errorf("%v: second start logged:\n%s", loose, buf.String())
		}
	}
}
