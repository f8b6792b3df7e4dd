package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeServer answers the routes a test needs, checking the token.
func fakeServer(t *testing.T, routes map[string]http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"status":401,"code":"unauthenticated","detail":"no valid token"}`)
			return
		}
		h, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"status":404,"code":"not_found","detail":"no route %s %s"}`, r.Method, r.URL.Path)
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// result is what one run of backupctl printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs backupctl against srv in dir, with stdin, and a terminal or
// not.
func runCLI(t *testing.T, srv *httptest.Server, dir, stdin string, terminal bool, args ...string) result {
	t.Helper()
	if dir != "" {
		t.Chdir(dir)
	}
	var out, errOut bytes.Buffer
	c := &cli{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		env: func(k string) string {
			switch k {
			case envServer:
				return srv.URL
			case envToken:
				return "tok"
			}
			return ""
		},
		isTerminal:  func(any) bool { return terminal },
		restorePoll: time.Millisecond,
	}
	code := c.main(context.Background(), args)
	return result{code, out.String(), errOut.String()}
}

const backupJSON = `{"id":"01K3ZQ8V1C4P2M7Q9D3E6F8G0H","app":"crm","name":"before upgrade","status":"ready","sha256":%q,"size_bytes":%d}`

func TestDeleteAsksOnATerminal(t *testing.T) {
	deleted := 0
	srv := fakeServer(t, map[string]http.HandlerFunc{
		"GET /v1/apps/crm/backups/01K3ZQ8V1C4P2M7Q9D3E6F8G0H": func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, backupJSON, strings.Repeat("0", 64), 1)
		},
		"DELETE /v1/apps/crm/backups/01K3ZQ8V1C4P2M7Q9D3E6F8G0H": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Idempotency-Key") == "" {
				t.Error("delete without an Idempotency-Key")
			}
			deleted++
			w.WriteHeader(http.StatusNoContent)
		},
	})
	for _, tc := range []struct {
		answer   string
		code     int
		deletes  int
		printed  string
		complain string
	}{
		{"y\n", 0, 1, `Deleted backup "before upgrade" (01K3ZQ8V1C4P2M7Q9D3E6F8G0H) of crm.`, ""},
		{"YES\n", 0, 1, "Deleted backup", ""},
		{"n\n", 1, 0, "", "backupctl: not deleted"},
		{"\n", 1, 0, "", "backupctl: not deleted"},
		{"", 1, 0, "", "backupctl: not deleted"}, // end of input
	} {
		deleted = 0
		r := runCLI(t, srv, "", tc.answer, true, "backup", "delete", "crm", "01K3ZQ8V1C4P2M7Q9D3E6F8G0H")
		if r.code != tc.code || deleted != tc.deletes {
			t.Errorf("answer %q: exit %d with %d deletes, want %d with %d\n%s", tc.answer, r.code, deleted, tc.code, tc.deletes, r.stderr)
		}
		if !strings.HasPrefix(r.stderr, `Delete backup "before upgrade" (01K3ZQ8V1C4P2M7Q9D3E6F8G0H) of crm? [y/N] `) {
			t.Errorf("answer %q: prompt = %q", tc.answer, r.stderr)
		}
		if !strings.Contains(r.stdout, tc.printed) || !strings.Contains(r.stderr, tc.complain) {
			t.Errorf("answer %q: stdout %q, stderr %q; want %q, %q", tc.answer, r.stdout, r.stderr, tc.printed, tc.complain)
		}
	}
}

// archiveRoutes serves a backup whose recorded digest is recorded and
// whose archive answers body with the given headers.
func archiveRoutes(recorded string, body []byte, header map[string]string) map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"GET /v1/apps/crm/backups/01K3ZQ8V1C4P2M7Q9D3E6F8G0H": func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, backupJSON, recorded, len(body))
		},
		"GET /v1/apps/crm/backups/01K3ZQ8V1C4P2M7Q9D3E6F8G0H/archive": func(w http.ResponseWriter, _ *http.Request) {
			for k, v := range header {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/zip")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body)
		},
	}
}

func digestHeaders(sum [32]byte, name string) map[string]string {
	return map[string]string{
		"Content-Disposition": name,
		"Repr-Digest":         "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":",
		"ETag":                `"` + hex.EncodeToString(sum[:]) + `"`,
	}
}

func TestDownloadVerifiesAndNamesTheFile(t *testing.T) {
	body := []byte("PK fake zip bytes")
	sum := sha256.Sum256(body)
	srv := fakeServer(t, archiveRoutes(hex.EncodeToString(sum[:]), body,
		digestHeaders(sum, `attachment; filename="_t_ _2026-08-31_12-02.zip"; filename*=UTF-8''%C3%A9t%C3%A9%20%2F_2026-08-31_12-02.zip`)))
	dir := t.TempDir()
	r := runCLI(t, srv, dir, "", false, "backup", "download", "crm", "01K3ZQ8V1C4P2M7Q9D3E6F8G0H")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	// filename* wins; a "/" in it does not name a directory.
	want := "été __2026-08-31_12-02.zip"
	got, err := os.ReadFile(filepath.Join(dir, want))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %s: %v, %q", want, err, got)
	}
	if r.stdout != "Saved "+want+" (17 B), SHA-256 verified.\n" || r.stderr != "" {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only the archive", len(entries))
	}
	if st, _ := os.Stat(filepath.Join(dir, want)); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestDownloadMismatchLeavesNothing(t *testing.T) {
	body := []byte("PK fake zip bytes")
	sum := sha256.Sum256(body)
	other := sha256.Sum256([]byte("other"))
	for name, tc := range map[string]struct {
		recorded string
		header   map[string]string
		from     string
	}{
		"recorded": {hex.EncodeToString(other[:]), digestHeaders(sum, `attachment; filename="a.zip"`), "the backup's recorded sha256"},
		"repr":     {hex.EncodeToString(sum[:]), digestHeaders(other, `attachment; filename="a.zip"`), "the server's Repr-Digest"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := fakeServer(t, archiveRoutes(tc.recorded, body, tc.header))
			dir := t.TempDir()
			r := runCLI(t, srv, dir, "", false, "backup", "download", "crm", "01K3ZQ8V1C4P2M7Q9D3E6F8G0H")
			if r.code != 1 {
				t.Fatalf("exit %d, want 1: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "but "+tc.from+" is ") || !strings.Contains(r.stderr, "nothing saved") {
				t.Errorf("stderr %q does not name %s", r.stderr, tc.from)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("dir holds %v after a mismatch, want nothing", entries)
			}
		})
	}
}

func TestDownloadCutShortLeavesNothing(t *testing.T) {
	body := []byte("PK fake zip bytes")
	sum := sha256.Sum256(body)
	routes := archiveRoutes(hex.EncodeToString(sum[:]), body, nil)
	routes["GET /v1/apps/crm/backups/01K3ZQ8V1C4P2M7Q9D3E6F8G0H/archive"] = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write(body) // then the handler ends: the connection is cut
	}
	srv := fakeServer(t, routes)
	dir := t.TempDir()
	r := runCLI(t, srv, dir, "", false, "backup", "download", "crm", "01K3ZQ8V1C4P2M7Q9D3E6F8G0H", "-o", "x.zip")
	if r.code != 1 || !strings.Contains(r.stderr, "stopped after 17 B") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("dir holds %v, want nothing", entries)
	}
}

func TestProgressBarOnlyOnATerminal(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 100_000)
	sum := sha256.Sum256(body)
	srv := fakeServer(t, archiveRoutes(hex.EncodeToString(sum[:]), body, digestHeaders(sum, `attachment; filename="a.zip"`)))
	r := runCLI(t, srv, t.TempDir(), "", true, "backup", "download", "crm", "01K3ZQ8V1C4P2M7Q9D3E6F8G0H")
	if r.code != 0 || !strings.Contains(r.stderr, "downloading") || !strings.Contains(r.stderr, "98 KiB") {
		t.Errorf("on a terminal: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, srv, t.TempDir(), "", false, "backup", "download", "crm", "01K3ZQ8V1C4P2M7Q9D3E6F8G0H")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("not on a terminal: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestRetriesWhileTheServerStarts(t *testing.T) {
	calls := 0
	srv := fakeServer(t, map[string]http.HandlerFunc{
		"GET /v1/backups": func(w http.ResponseWriter, _ *http.Request) {
			calls++
			if calls < 3 {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"status":503,"code":"unavailable","detail":"starting"}`)
				return
			}
			fmt.Fprint(w, `{"backups":[]}`)
		},
	})
	r := runCLI(t, srv, "", "", false, "backup", "list")
	if r.code != 0 || calls != 3 || r.stdout != "No backups.\n" {
		t.Errorf("exit %d after %d calls, stdout %q, stderr %q", r.code, calls, r.stdout, r.stderr)
	}
}

func TestProblemWithoutJSON(t *testing.T) {
	srv := fakeServer(t, map[string]http.HandlerFunc{
		"GET /v1/backups": func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		},
	})
	r := runCLI(t, srv, "", "", false, "backup", "list")
	if r.code != 1 || r.stderr != "backupctl: server answered 502 Bad Gateway: bad gateway\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1258291: "1.2 MiB", 3 << 30: "3.0 GiB", 1 << 40: "1.0 TiB",
	} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestDigestHeaders(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	hx := hex.EncodeToString(sum[:])
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	for h, want := range map[string]string{
		"sha-256=:" + b64 + ":":                 hx,
		"sha-512=:AAAA:, SHA-256=:" + b64 + ":": hx,
		"sha-256=:" + b64 + ":;param=1":         hx,
		"sha-256=" + b64:                        "",
		"sha-256=:AAAA:":                        "",
		"":                                      "",
		"md5=:" + base64.StdEncoding.EncodeToString(sum[:16]) + ":": "",
	} {
		got, ok := reprDigest(h)
		if got != want || ok != (want != "") {
			t.Errorf("reprDigest(%q) = %q, %v; want %q", h, got, ok, want)
		}
	}
	for h, want := range map[string]string{
		`"` + hx + `"`:                         hx,
		`W/"` + hx + `"`:                       hx,
		`"sha256:` + strings.ToUpper(hx) + `"`: hx,
		`"7"`:                                  "",
		`"` + hx[:63] + `g"`:                   "",
	} {
		got, ok := etagDigest(h)
		if got != want || ok != (want != "") {
			t.Errorf("etagDigest(%q) = %q, %v; want %q", h, got, ok, want)
		}
	}
}

func TestSafeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"crm_2026-08-31_12-02.zip": "crm_2026-08-31_12-02.zip",
		"../../etc/passwd":         "_.._etc_passwd",
		`..\..\boot.ini`:           "_.._boot.ini",
		"..":                       "",
		".":                        "",
		"":                         "",
		".hidden.zip":              "hidden.zip",
		"a\x1b[31mb.zip":           "a_[31mb.zip",
		"dir/":                     "dir_",
		strings.Repeat("a", 300):   "",
	} {
		if got := safeFileName(in); got != want {
			t.Errorf("safeFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":      "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/":     "http://127.0.0.1:8080",
		"127.0.0.1:8080":             "http://127.0.0.1:8080",
		"https://backup.example/api": "https://backup.example/api",
		"ftp://x":                    "",
		"http://":                    "",
		"http://x?y=1":               "",
	} {
		got, err := serverURL(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("serverURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestAPIPathEscapes(t *testing.T) {
	if got, want := apiPath("v1/apps", "crm", "config", "a b/c?d#e"), "/v1/apps/crm/config/a%20b/c%3Fd%23e"; got != want {
		t.Errorf("apiPath = %q, want %q", got, want)
	}
}

// backup list --as-of asks for the list as it was then: an RFC 3339 time,
// or a date meaning its end in UTC; it needs an app.
func TestBackupListAsOf(t *testing.T) {
	var got []string
	srv := fakeServer(t, map[string]http.HandlerFunc{
		"GET /v1/apps/crm/backups": func(w http.ResponseWriter, r *http.Request) {
			got = append(got, r.URL.Query().Get("as_of"))
			fmt.Fprint(w, `{"backups":[]}`)
		},
	})
	for _, arg := range []string{"2026-11-22T10:15:00+01:00", "2026-11-22"} {
		if r := runCLI(t, srv, "", "", false, "backup", "list", "crm", "--as-of", arg); r.code != 0 {
			t.Fatalf("--as-of %s: exit %d, stderr %q", arg, r.code, r.stderr)
		}
	}
	if want := []string{"2026-11-22T09:15:00Z", "2026-11-22T23:59:59.999999999Z"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("as_of sent %q, want %q", got, want)
	}
	for _, args := range [][]string{{"backup", "list", "--as-of", "2026-11-22"}, {"backup", "list", "crm", "--as-of", "yesterday"}} {
		if r := runCLI(t, srv, "", "", false, args...); r.code != 2 {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
	}
}
