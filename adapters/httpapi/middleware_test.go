package httpapi_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/httpapi"
	"github.com/backupledger/backupledger/test/apitest"
)

// Every API request is logged at info level with its status and duration;
// scrapes and probes that succeed only at debug level, since they come
// every few seconds.
func TestRequestLogLevels(t *testing.T) {
	a := newAPI(t, nil) // an info-level text logger
	a.do("GET", "/healthz", "", "Authorization", "").want(t, http.StatusOK)
	a.do("GET", "/readyz", "", "Authorization", "").want(t, http.StatusOK)
	a.do("GET", "/v1/apps/crm/backups", "").want(t, http.StatusOK)
	logs := a.logs.String()
	if strings.Contains(logs, "path=/healthz") || strings.Contains(logs, "path=/readyz") {
		t.Errorf("probes logged at info level:\n%s", logs)
	}
	if !strings.Contains(logs, `msg="http request" method=GET path=/v1/apps/crm/backups status=200 duration=`) || !strings.Contains(logs, "app=crm") {
		t.Errorf("the API request's line is missing or incomplete:\n%s", logs)
	}
}

// newMetricsServer serves the MetricsHandler of a Server with cfg whose
// metrics are metrics (nil: none), and returns its URL and the URL of the
// same Server's Handler.
func newMetricsServer(t *testing.T, cfg httpapi.Config, metrics http.Handler) (metricsURL, apiURL string) {
	t.Helper()
	st := apitest.NewStack(t)
	d := deps{appDeps: appDeps{Commands: st.Ledger, Queries: st.Proj, Config: st.Config}, transportDeps: transportDeps{Auth: st.AuthChain(), Metrics: metrics}}
	srv, err := httpapi.New(cfg, d.build(t))
	if err != nil {
		t.Fatal(err)
	}
	m := httptest.NewServer(srv.MetricsHandler())
	t.Cleanup(m.Close)
	a := httptest.NewServer(srv.Handler())
	t.Cleanup(a.Close)
	return m.URL, a.URL
}

// get sends GET url with the Authorization header auth (none if empty).
func get(t *testing.T, url, auth string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// /metrics is served by MetricsHandler, behind the scrape token when one is
// set; the API's Handler does not serve it.
func TestMetricsHandler(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ledger_up 1\n")) })
	murl, aurl := newMetricsServer(t, httpapi.Config{MetricsToken: "scrape-secret"}, metrics)

	for _, auth := range []string{"", "Bearer scrape-secret", "Bearer " + "alice-token"} {
		if status, _, body := get(t, aurl+"/metrics", auth); status != http.StatusNotFound || strings.Contains(body, "ledger_up") {
			t.Errorf("API GET /metrics with %q: %d %s, want 404", auth, status, body)
		}
	}
	status, h, body := get(t, murl+"/metrics", "")
	if status != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthenticated"`) || strings.Contains(body, "ledger_up") ||
		h.Get("WWW-Authenticate") != `Bearer realm="backupledger-metrics"` {
		t.Errorf("without the token: %d %q %s", status, h.Get("WWW-Authenticate"), body)
	}
	for _, wrong := range []string{"Bearer scrape-secreT", "Bearer scrape-secret-and-more", "Bearer alice-token", "Basic c2NyYXBlLXNlY3JldA=="} {
		status, h, body := get(t, murl+"/metrics", wrong)
		if status != http.StatusUnauthorized || strings.Contains(body, "ledger_up") {
			t.Errorf("with %q: %d %s, want 401", wrong, status, body)
		}
		if strings.HasPrefix(wrong, "Bearer") && !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("with %q: WWW-Authenticate %q", wrong, h.Get("WWW-Authenticate"))
		}
	}
	if status, _, body := get(t, murl+"/metrics", "bearer  scrape-secret "); status != http.StatusOK || body != "ledger_up 1\n" {
		t.Errorf("with the token: %d %q", status, body)
	}
	if status, _, _ := get(t, murl+"/healthz", "Bearer scrape-secret"); status != http.StatusNotFound {
		t.Errorf("metrics listener GET /healthz: %d, want 404 (only /metrics)", status)
	}

	// Without a token configured the metrics listener is open; without
	// metrics it answers 404.
	open, _ := newMetricsServer(t, httpapi.Config{}, metrics)
	if status, _, body := get(t, open+"/metrics", ""); status != http.StatusOK || body != "ledger_up 1\n" {
		t.Errorf("no token configured: %d %q", status, body)
	}
	none, _ := newMetricsServer(t, httpapi.Config{}, nil)
	if status, _, _ := get(t, none+"/metrics", ""); status != http.StatusNotFound {
		t.Errorf("no metrics: %d, want 404", status)
	}
}

// rawRequest writes head (a request line and headers, without the blank
// line) and then body on a new connection to the server at url, and
// returns the connection and its reader.
func rawRequest(t *testing.T, url, head, body string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// answer reads the response to a request, within 5s.
func answer(t *testing.T, c net.Conn, rd *bufio.Reader) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("answer's body: %v", err)
	}
	return resp, string(b)
}

// closed checks that the server closes c within d (reading nothing more).
func closed(t *testing.T, c net.Conn, rd *bufio.Reader, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, err := io.Copy(io.Discard, rd)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed within %s: %v (%d more bytes)", d, err, n)
	}
}

// A request without a valid token is answered 401 at once, without waiting
// for its body, and its connection closes; net/http would otherwise read
// the body (up to 256 KiB, for as long as the client takes) before
// answering. A request without a body keeps its connection.
func TestUnauthenticatedBodyIsNotRead(t *testing.T) {
	a := newAPI(t, nil)
	for _, auth := range []string{"", "Authorization: Bearer wrong-token\r\n"} {
		// 1,000 bytes announced, 10 sent: the rest never comes.
		c, rd := rawRequest(t, a.url, "POST /v1/apps/crm/backups HTTP/1.1\r\nHost: x\r\n"+auth+
			"Content-Type: application/json\r\nContent-Length: 1000", `{"name":"x`)
		resp, body := answer(t, c, rd)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthenticated"`) {
			t.Errorf("%q: %d %s", auth, resp.StatusCode, body)
		}
		if !resp.Close {
			t.Errorf("%q: the answer keeps the connection (Connection: %q)", auth, resp.Header.Get("Connection"))
		}
		closed(t, c, rd, 3*time.Second)
	}

	// A chunked body that never ends, to an unknown route.
	c, rd := rawRequest(t, a.url, "POST /nowhere HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", "10\r\n0123")
	if resp, _ := answer(t, c, rd); resp.StatusCode != http.StatusNotFound || !resp.Close {
		t.Errorf("unknown route: %d, close %v", resp.StatusCode, resp.Close)
	}
	closed(t, c, rd, 3*time.Second)

	// Without a body, the connection serves the next request.
	c, rd = rawRequest(t, a.url, "GET /v1/backups HTTP/1.1\r\nHost: x", "")
	if resp, _ := answer(t, c, rd); resp.StatusCode != http.StatusUnauthorized || resp.Close {
		t.Fatalf("GET without a token: %d, close %v", resp.StatusCode, resp.Close)
	}
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := answer(t, c, rd); resp.StatusCode != http.StatusOK {
		t.Errorf("second request on the connection: %d", resp.StatusCode)
	}
}

// The login takes a small body, within UnauthenticatedReadTimeout: a
// larger one is refused unread (413), a stalled one answered 400 once the
// time is up; both close the connection.
func TestLoginBodyIsBounded(t *testing.T) {
	const timeout = 300 * time.Millisecond
	a := newAPIWith(t, httpapi.Config{MaxDocBytes: 1024, UnauthenticatedReadTimeout: timeout}, nil, nil)
	head := "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

	c, rd := rawRequest(t, a.url, head+"Content-Length: 8193", `{"user":"ada","password":"`)
	resp, body := answer(t, c, rd)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"code":"payload_too_large"`) ||
		!strings.Contains(body, "8192 bytes") || !resp.Close {
		t.Errorf("announced 8193 bytes: %d close %v %s", resp.StatusCode, resp.Close, body)
	}
	closed(t, c, rd, 3*time.Second)

	big := fmt.Sprintf(`{"user":"ada","password":"%s"}`, strings.Repeat("p", 9000))
	c, rd = rawRequest(t, a.url, head+"Transfer-Encoding: chunked", fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big))
	if resp, body := answer(t, c, rd); resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Errorf("chunked 9 KB: %d close %v %s", resp.StatusCode, resp.Close, body)
	}

	start := time.Now()
	c, rd = rawRequest(t, a.url, head+"Content-Length: 60", `{"user":"ada",`)
	resp, body = answer(t, c, rd)
	took := time.Since(start)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "did not arrive within 300ms") || !resp.Close {
		t.Errorf("stalled body: %d close %v %s", resp.StatusCode, resp.Close, body)
	}
	if took < timeout || took > timeout+2*time.Second {
		t.Errorf("stalled body answered after %s, want about %s", took, timeout)
	}
	closed(t, c, rd, 3*time.Second)

	// A login that fits is read and decided as ever.
	if p := a.do("POST", "/v1/sessions", `{"user":"nobody","password":"not the password"}`, "Authorization", "").problem(t); p.Status != http.StatusUnauthorized && p.Status != http.StatusForbidden {
		t.Errorf("a small login: %+v", p)
	}
}
