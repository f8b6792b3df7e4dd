package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// The bounds of docs/security.md ("Bounded resources") hold for strangers:
// these tests open slow and idle connections to a real backupd and see
// them closed in time. slack is what a loaded machine may add to a bound.
const slack = 1500 * time.Millisecond

// rawConn is a TCP connection to a node's HTTP API, spoken to by hand.
type rawConn struct {
	t     *testing.T
	c     net.Conn
	rd    *bufio.Reader
	start time.Time // when it was dialled
}

// dialRaw connects to addr and writes first on the connection.
func dialRaw(t *testing.T, addr, first string) *rawConn {
	t.Helper()
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, first); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, c: c, rd: bufio.NewReader(c), start: start}
}

// drip writes s every 100ms until the connection fails or the test ends:
// a client that trickles its request to hold the connection.
func (r *rawConn) drip(s string) {
	stop := make(chan struct{})
	r.t.Cleanup(func() { close(stop) })
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := io.WriteString(r.c, s); err != nil {
					return
				}
			}
		}
	}()
}

// answer reads a response within d and returns it with its body.
func (r *rawConn) answer(d time.Duration) (*http.Response, string) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(r.rd, nil)
	if err != nil {
		r.t.Fatalf("no answer within %s: %v", d, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("answer's body: %v", err)
	}
	return resp, string(b)
}

// closedWithin checks that the server closes the connection within d of
// since, and returns what it still sent.
func (r *rawConn) closedWithin(since time.Time, d time.Duration) string {
	r.t.Helper()
	_ = r.c.SetReadDeadline(since.Add(d))
	var got strings.Builder
	_, err := io.Copy(&got, r.rd)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		r.t.Fatalf("connection still open %s after %s (bound %s): %v; read %q", time.Since(since).Round(time.Millisecond),
			since.Format("15:04:05.000"), d, err, got.String())
	}
	return got.String()
}

// Slow headers, slow bodies (with and without a token, and the login's)
// and idle kept-alive connections are closed within the configured
// timeouts; a request without a token is answered at once, its body
// unread.
func TestHTTPTimeoutsCloseSlowConnections(t *testing.T) {
	const header, read, idle = 500 * time.Millisecond, 2 * time.Second, time.Second
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		c.HTTP.ReadHeaderTimeout, c.HTTP.ReadTimeout, c.HTTP.IdleTimeout = header, read, idle
	}, nil)
	n.ensureApp("crm")
	addr := n.d.HTTPAddr()

	t.Run("slowloris headers", func(t *testing.T) {
		r := dialRaw(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		r.drip("X-Slow: 1\r\n")
		if got := r.closedWithin(r.start, header+slack); strings.Contains(got, "200 OK") {
			t.Errorf("headers that never end were answered: %q", got)
		}
	})

	t.Run("slow login body", func(t *testing.T) {
		// The login's body is bounded by min(10s, --http-read-timeout).
		r := dialRaw(t, addr, "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user\":")
		r.drip(" ")
		resp, body := r.answer(read + slack)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "did not arrive within") || !resp.Close {
			t.Errorf("stalled login: %d close %v %s", resp.StatusCode, resp.Close, body)
		}
		r.closedWithin(r.start, read+slack)
	})

	t.Run("slow body without a token", func(t *testing.T) {
		for _, auth := range []string{"", "Authorization: Bearer not-a-token\r\n"} {
			r := dialRaw(t, addr, "POST /v1/apps/crm/backups HTTP/1.1\r\nHost: x\r\n"+auth+
				"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":\"")
			r.drip("x")
			// Answered before the read timeout: the body is not waited for.
			resp, body := r.answer(read / 2)
			if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
				t.Errorf("%q: %d close %v %s", auth, resp.StatusCode, resp.Close, body)
			}
			r.closedWithin(time.Now(), time.Second)
		}
	})

	t.Run("slow body with a token", func(t *testing.T) {
		r := dialRaw(t, addr, "POST /v1/apps/crm/backups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+
			"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":\"")
		r.drip("x")
		// Refused once the read timeout is up, and the connection closed:
		// the rest of the body must not be read as a next request.
		resp, body := r.answer(read + slack)
		if resp.StatusCode != http.StatusBadRequest || !resp.Close {
			t.Errorf("stalled body: %d close %v %s", resp.StatusCode, resp.Close, body)
		}
		r.closedWithin(r.start, read+slack)
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		r := dialRaw(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := r.answer(5 * time.Second); resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("healthz: %d close %v", resp.StatusCode, resp.Close)
		}
		r.closedWithin(time.Now(), idle+slack)
	})

	// The API still serves.
	n.must(http.StatusOK, "GET", "/v1/apps/crm/backups", nil)
}

// Past --http-max-conns a new connection is not served until one closes.
func TestHTTPMaxConns(t *testing.T) {
	const max = 3
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		c.HTTP.MaxConns, c.HTTP.IdleTimeout = max, time.Minute
	}, nil)
	addr := n.d.HTTPAddr()
	var held []*rawConn
	for range max {
		r := dialRaw(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := r.answer(5 * time.Second); resp.StatusCode != http.StatusOK {
			t.Fatalf("connection within the limit: %d", resp.StatusCode)
		}
		held = append(held, r) // kept alive, idle
	}
	over := dialRaw(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = over.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if b, err := over.rd.Peek(1); err == nil {
		t.Fatalf("a connection over the limit was served: %q", b)
	}
	held[0].c.Close()
	if resp, _ := over.answer(5 * time.Second); resp.StatusCode != http.StatusOK {
		t.Errorf("the waiting connection, once one closed: %d", resp.StatusCode)
	}
}

// Uploads keep their progress-based deadline: an archive that takes longer
// than --http-read-timeout to arrive, but keeps arriving, is stored.
func TestUploadOutlastsReadTimeout(t *testing.T) {
	const read = time.Second
	n := startNode(t, t.TempDir(), func(c *daemon.Config) { c.HTTP.ReadHeaderTimeout, c.HTTP.ReadTimeout = read/2, read }, nil)
	n.putConfig("crm", "app.json", `{"name":"CRM"}`)
	b := n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
	_, raw := n.download("crm", b, "")
	n.ensureApp("crm-copy")

	pr, pw := io.Pipe()
	go func() {
		// 25 pieces 100ms apart: about 2.5 times the read timeout.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		piece := len(raw)/25 + 1
		for rest := raw; len(rest) > 0; {
			<-tick.C
			k := min(piece, len(rest))
			if _, err := pw.Write(rest[:k]); err != nil {
				return
			}
			rest = rest[k:]
		}
		pw.Close()
	}()
	req, err := http.NewRequest("POST", n.base+"/v1/apps/crm-copy/backups/upload?name=slow", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/zip")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if took := time.Since(start); resp.StatusCode != http.StatusCreated || took < 2*read {
		t.Fatalf("slow upload: %d after %s (want 201 after more than %s): %s", resp.StatusCode, took, 2*read, body)
	}
}

// /metrics is not served on the API's port, with or without a token; the
// metrics listener serves it with the scrape token only (also from a
// file), and "none" serves it nowhere.
func TestMetricsListener(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	for _, auth := range []string{"", "Bearer " + token, "Bearer " + metricsToken} {
		r := n.do("GET", "/metrics", nil, "Authorization", auth)
		if r.status != http.StatusNotFound || strings.Contains(string(r.body), "backupledger_") {
			t.Errorf("API GET /metrics with %q: %d %.200s", auth, r.status, r.body)
		}
	}
	if n.d.MetricsAddr() == n.d.HTTPAddr() || n.d.MetricsAddr() == "" {
		t.Fatalf("metrics on %q, API on %q", n.d.MetricsAddr(), n.d.HTTPAddr())
	}
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token, "Basic " + metricsToken} {
		if status, body := n.getMetrics(auth); status != http.StatusUnauthorized || strings.Contains(string(body), "backupledger_") {
			t.Errorf("metrics listener with %q: %d %.200s", auth, status, body)
		}
	}
	if _, fams := n.scrape(); fams["backupledger_backups"] == nil || fams["go_goroutines"] == nil {
		t.Errorf("scrape with the token lacks the metrics: %d families", len(fams))
	}

	// The token from a file, as docker-compose's Prometheus reads it.
	file := filepath.Join(t.TempDir(), "metrics.token")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := startNode(t, t.TempDir(), func(c *daemon.Config) { c.Metrics.Token, c.Metrics.TokenFile = "", file }, nil)
	if status, _ := m.getMetrics("Bearer " + metricsToken); status != http.StatusUnauthorized {
		t.Errorf("token file: another token answered %d", status)
	}
	if status, body := m.getMetrics("Bearer from-a-file"); status != http.StatusOK || !strings.Contains(string(body), "backupledger_backups") {
		t.Errorf("token file: %d %.200s", status, body)
	}

	none := startNode(t, t.TempDir(), func(c *daemon.Config) { c.Metrics.Addr, c.Metrics.Token = daemon.ListenNone, "" }, nil)
	if none.d.MetricsURL() != "" || none.d.MetricsAddr() != "" {
		t.Errorf("metrics addr none: served on %q", none.d.MetricsURL())
	}
	none.must(http.StatusNotFound, "GET", "/metrics", nil, "Authorization", "")
}

// startErr starts a daemon with cfg and returns Start's error (nil: it
// started, and stops with the test).
func startErr(t *testing.T, cfg daemon.Config) error {
	t.Helper()
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = d.Start(ctx)
	if err == nil {
		t.Cleanup(func() { d.Kill() })
	}
	return err
}

// One backupd per data dir: a second start on it fails naming the first
// one's pid, and leaves the first alone; once the first stops (or dies),
// the next one starts and sees the first one's writes. With --nats-url too.
func TestDataDirLock(t *testing.T) {
	pid := "pid " + strconv.Itoa(os.Getpid())
	dir := t.TempDir()
	n := startNode(t, dir, nil, nil)
	n.putConfig("crm", "app.json", `{"v":1}`)

	err := startErr(t, nodeConfig(dir, nil))
	if err == nil {
		t.Fatal("a second backupd started on the same data dir")
	}
	if !errors.Is(err, daemon.ErrDataDirInUse) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), pid) {
		t.Errorf("second start: %v; want ErrDataDirInUse naming %s and %s", err, dir, pid)
	}
	// The first is unharmed.
	if r := n.must(http.StatusOK, "GET", "/v1/apps/crm/config/app.json", nil); string(r.body) != `{"v":1}` {
		t.Errorf("first backupd after the refused start: %s", r.body)
	}
	n.stop()

	m := startNode(t, dir, nil, nil)
	if r := m.must(http.StatusOK, "GET", "/v1/apps/crm/config/app.json", nil); string(r.body) != `{"v":1}` {
		t.Errorf("after the first stopped: %s", r.body)
	}
	m.kill() // a crash gives the lock back too
	startNode(t, dir, nil, nil)

	// With an external cluster the data dir still holds admin.token: the
	// lock is the same.
	s := natstest.Server(t, "")
	external := func(c *daemon.Config) { withoutAccounts(c); c.NATS.URL = s.ClientURL() }
	edir := t.TempDir()
	e := startNode(t, edir, external, nil)
	if err := startErr(t, nodeConfig(edir, external)); !errors.Is(err, daemon.ErrDataDirInUse) || !strings.Contains(err.Error(), pid) {
		t.Errorf("second start with --nats-url: %v", err)
	}
	e.stop()
	if err := startErr(t, nodeConfig(edir, external)); err != nil {
		t.Errorf("start with --nats-url after the first stopped: %v", err)
	}
}

// An admin.token that others may read is made private at start, with a
// warning naming the file and never the token; the token still works.
func TestAdminTokenFileMadePrivate(t *testing.T) {
	const loose = "loose-e2e-admin-token"
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(path, []byte(loose+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	n := startNode(t, dir, func(c *daemon.Config) {
		c.AdminToken = ""
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}, nil)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.token mode after start: %v, want -rw-------", fi.Mode().Perm())
	}
	var warned bool
	for _, l := range logLines(t, logs.String()) {
		if l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["msg"]), "admin token file was readable by others") &&
			l["path"] == path && l["was"] == "-rw-r--r--" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning naming %s and its mode:\n%s", path, logs.String())
	}
	if strings.Contains(logs.String(), loose) {
		t.Error("the logs hold the admin token")
	}
	n.must(http.StatusOK, "GET", "/v1/backups", nil, "Authorization", "Bearer "+loose)
}
