package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/httpapi"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/apitest"
	"github.com/backupledger/backupledger/usecase"
)

// api is a running httpapi.Server over a stack.
type api struct {
	t       *testing.T
	st      *apitest.Stack
	url     string
	handler http.Handler
	logs    *syncBuffer
	ready   func() bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newAPI serves a Server over a fresh stack; edit adjusts its deps.
func newAPI(t *testing.T, edit func(*deps)) *api {
	t.Helper()
	return newAPIWith(t, httpapi.Config{MaxDocBytes: 1024}, nil, edit)
}

// newAPIWith serves a Server with cfg over a fresh stack; server adjusts
// the http.Server (before it starts), edit the deps.
func newAPIWith(t *testing.T, cfg httpapi.Config, server func(*http.Server), edit func(*deps)) *api {
	t.Helper()
	return serve(t, apitest.NewStack(t), cfg, server, edit)
}

// newBareAPI serves a Server over a stack where no app exists, for the
// tests of registration.
func newBareAPI(t *testing.T, edit func(*deps)) *api {
	t.Helper()
	return serve(t, apitest.NewStackWith(t), httpapi.Config{MaxDocBytes: 1024}, nil, edit)
}

// serve serves a Server with cfg over st; server adjusts the http.Server
// (before it starts), edit the deps.
func serve(t *testing.T, st *apitest.Stack, cfg httpapi.Config, server func(*http.Server), edit func(*deps)) *api {
	t.Helper()
	logs := &syncBuffer{}
	d := deps{
		appDeps: st.AppDeps(),
		transportDeps: transportDeps{
			Auth:   st.AuthChain(),
			Logger: slog.New(slog.NewTextHandler(logs, nil)),
		},
	}
	if edit != nil {
		edit(&d)
	}
	deps := d.build(t)
	srv, err := httpapi.New(cfg, deps)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	// An aborted handler is logged by net/http's own logger; keep it out
	// of the test output.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	if server != nil {
		server(ts.Config)
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return &api{t: t, st: st, url: ts.URL, handler: srv.Handler(), logs: logs}
}

// response is a read HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request as alice (override with an Authorization header; an
// empty one removes it). A non-empty body is sent as JSON unless the
// header says otherwise. kv are header name/value pairs.
func (a *api) do(method, path, body string, kv ...string) response {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer alice-token")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			req.Header.Del(kv[i])
			continue
		}
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// want fails the test unless r has status.
func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status: got %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

// backup decodes r's body as a backup.
func (r response) backup(t *testing.T) projections.BackupView {
	t.Helper()
	var b projections.BackupView
	decode(t, r.body, &b)
	return b
}

// problem decodes r's body as a problem and checks its media type.
func (r response) problem(t *testing.T) usecase.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type: got %q, want application/problem+json; body %s", ct, r.body)
	}
	var p usecase.Problem
	decode(t, r.body, &p)
	return p
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// create requests a backup of app named name and returns it.
func (a *api) create(app, name string) projections.BackupView {
	a.t.Helper()
	body := "{}"
	if name != "" {
		body = `{"name":` + quote(name) + `}`
	}
	return a.do("POST", "/v1/apps/"+app+"/backups", body).want(a.t, http.StatusAccepted).backup(a.t)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// appDeps and transportDeps are the two halves of a test server's parts.
type (
	appDeps       = usecase.Deps
	transportDeps = httpapi.Deps
)

// deps are what a test server is made of: the application's parts and the
// transport's own, which a test may edit before the server starts.
type deps struct {
	appDeps
	transportDeps
	// location is the time zone of download names; nil is UTC.
	location *time.Location
}

// build makes the application of d and returns the transport's deps with
// it.
func (d *deps) build(t *testing.T) httpapi.Deps {
	t.Helper()
	out := d.transportDeps
	out.App = apitest.NewApp(t, d.location, d.appDeps)
	return out
}
