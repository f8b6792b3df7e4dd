package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/httpapi"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/apitest"
	"github.com/backupledger/backupledger/usecase"
)

// *service.Transfers is what backupd passes as Deps.Transfers.
var _ usecase.Transfers = (*service.Transfers)(nil)

// zipBody is an archive that the fake archive store accepts.
func zipBody(content string) []byte { return []byte(apitest.ZipMagic + content) }

// send sends req as alice (unless it has an Authorization header) and
// reads the whole answer.
func (a *api) send(req *http.Request) response {
	a.t.Helper()
	if req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer alice-token")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// upload posts body as a raw upload into app; query starts with "?" or is
// empty; kv are header name/value pairs (Content-Type is application/zip
// unless given).
func (a *api) upload(app, query string, body io.Reader, kv ...string) response {
	a.t.Helper()
	req, err := http.NewRequest("POST", a.url+"/v1/apps/"+app+"/backups/upload"+query, body)
	if err != nil {
		a.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/zip")
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			req.Header.Del(kv[i])
			continue
		}
		req.Header.Set(kv[i], kv[i+1])
	}
	return a.send(req)
}

// uploaded uploads an archive of content named name into crm and returns
// the backup.
func (a *api) uploaded(name, content string) projections.BackupView {
	a.t.Helper()
	return a.upload("crm", "?name="+url.QueryEscape(name), bytes.NewReader(zipBody(content))).want(a.t, http.StatusCreated).backup(a.t)
}

// formPart is one part of a multipart form: a file when fileName is set.
type formPart struct {
	field, fileName, value string
}

// multipartBody encodes parts as multipart/form-data.
func multipartBody(t *testing.T, parts ...formPart) (contentType string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		var (
			w   io.Writer
			err error
		)
		if p.fileName != "" {
			w, err = mw.CreateFormFile(p.field, p.fileName)
		} else {
			w, err = mw.CreateFormField(p.field)
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(w, p.value)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), buf.Bytes()
}

// download GETs path as alice and reads the body, returning a read error
// instead of failing.
func (a *api) download(path string) (*http.Response, []byte, error) {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.url+path, nil)
	req.Header.Set("Authorization", "Bearer alice-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestDownloadHeaders(t *testing.T) {
	a := newAPI(t, nil)
	content := strings.Repeat("archive bytes ", 300) // several chunks of the fake
	b := a.uploaded(`Rapport é/ü "final"`, content)

	resp, body, err := a.download("/v1/apps/crm/backups/" + b.ID + "/archive")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("download: status %d, err %v, body %.200s", resp.StatusCode, err, body)
	}
	want := zipBody(content)
	if !bytes.Equal(body, want) {
		t.Fatalf("body: got %d bytes, want %d", len(body), len(want))
	}
	sum := sha256.Sum256(want)
	for name, value := range map[string]string{
		"Content-Type":           "application/zip",
		"Content-Length":         "4204",
		"Content-Disposition":    `attachment; filename="Rapport ___ _final__2026-08-31_12-02.zip"; filename*=UTF-8''Rapport%20%C3%A9_%C3%BC%20_final__2026-08-31_12-02.zip`,
		"Repr-Digest":            "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":",
		"Etag":                   `"` + apitest.HexSHA(want) + `"`,
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(name); got != value {
			t.Errorf("%s:\n got %s\nwant %s", name, got, value)
		}
	}
	if *b.SHA256 != apitest.HexSHA(want) || b.SizeBytes != int64(len(want)) {
		t.Errorf("backup sha256 %s size %d", *b.SHA256, b.SizeBytes)
	}
}

func TestDownloadFileName(t *testing.T) {
	a := newAPIWith(t, httpapi.Config{}, nil, func(d *deps) { d.location = time.FixedZone("CEST", 2*3600) })
	tests := []struct {
		name, query, disposition string
	}{
		{"nightly crm", "", `attachment; filename="nightly crm_2026-08-31_14-02.zip"; filename*=UTF-8''nightly%20crm_2026-08-31_14-02.zip`},
		{"a/b\\c:d", "", `attachment; filename="a_b_c_d_2026-08-31_14-02.zip"; filename*=UTF-8''a_b_c_d_2026-08-31_14-02.zip`},
		{"Übersicht 100%", "?component=config", `attachment; filename="_bersicht 100__2026-08-31_14-02_config.zip"; filename*=UTF-8''%C3%9Cbersicht%20100%25_2026-08-31_14-02_config.zip`},
		{"日本", "", `attachment; filename="___2026-08-31_14-02.zip"; filename*=UTF-8''%E6%97%A5%E6%9C%AC_2026-08-31_14-02.zip`},
	}
	for _, tt := range tests {
		b := a.uploaded(tt.name, "x")
		resp, _, err := a.download("/v1/apps/crm/backups/" + b.ID + "/archive" + tt.query)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d err %v", tt.name, resp.StatusCode, err)
		}
		if got := resp.Header.Get("Content-Disposition"); got != tt.disposition {
			t.Errorf("%q:\n got %s\nwant %s", tt.name, got, tt.disposition)
		}
	}
}

func TestDownloadComponent(t *testing.T) {
	a := newAPI(t, nil)
	b := a.uploaded("crm", "docs")
	resp, body, err := a.download("/v1/apps/crm/backups/" + b.ID + "/archive?component=config")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d err %v body %s", resp.StatusCode, err, body)
	}
	want := apitest.ComponentZip(zipBody("docs"))
	if !bytes.Equal(body, want) {
		t.Errorf("body %q, want %q", body, want)
	}
	if got := resp.Header.Get("Etag"); got != `"`+apitest.HexSHA(want)+`"` {
		t.Errorf("ETag %s is not the component's", got)
	}
	if got := resp.Header.Get("Content-Disposition"); !strings.Contains(got, `filename="crm_2026-08-31_12-02_config.zip"`) {
		t.Errorf("Content-Disposition %s", got)
	}

	for query, detail := range map[string]string{
		"?component=files":       `no component "files"`,
		"?component=..%2Fconfig": "component must be",
		"?component=a%20b":       "component must be",
	} {
		p := a.do("GET", "/v1/apps/crm/backups/"+b.ID+"/archive"+query, "").want(t, http.StatusBadRequest).problem(t)
		if p.Code != "invalid_argument" || !strings.Contains(p.Detail, detail) {
			t.Errorf("%s: %+v", query, p)
		}
	}
}

func TestDownloadRefused(t *testing.T) {
	a := newAPI(t, nil)
	queued := a.create("crm", "not yet")
	ready := a.uploaded("up", "x")

	p := a.do("GET", "/v1/apps/crm/backups/"+queued.ID+"/archive", "").want(t, http.StatusConflict).problem(t)
	if p.Code != "backup_not_ready" || !strings.Contains(p.Detail, "queued") {
		t.Errorf("queued: %+v", p)
	}
	p = a.do("GET", "/v1/apps/crm/backups/nope/archive", "").want(t, http.StatusNotFound).problem(t)
	if p.Code != "not_found" {
		t.Errorf("unknown: %+v", p)
	}
	p = a.do("GET", "/v1/apps/shop/backups/"+ready.ID+"/archive", "").want(t, http.StatusNotFound).problem(t)
	if p.Code != "not_found" {
		t.Errorf("other app: %+v", p)
	}
	p = a.do("GET", "/v1/apps/crm/backups/"+ready.ID+"/archive", "", "Authorization", "Bearer eve-token").want(t, http.StatusNotFound).problem(t)
	if p.Code != "not_found" {
		t.Errorf("not visible: %+v", p)
	}
}

func TestDownloadCorruptMidway(t *testing.T) {
	a := newAPI(t, nil)
	b := a.uploaded("crm", strings.Repeat("z", 5000))
	a.st.Archives.Corrupt(b.ID, 2500)
	before := a.st.Store.Appends()

	resp, body, err := a.download("/v1/apps/crm/backups/" + b.ID + "/archive")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Length") != "5004" {
		t.Fatalf("status %d, Content-Length %s", resp.StatusCode, resp.Header.Get("Content-Length"))
	}
	if err == nil {
		t.Fatalf("the client read %d bytes without an error: a truncated download must not look complete", len(body))
	}
	if len(body) >= 5004 {
		t.Errorf("read %d bytes", len(body))
	}
	if !strings.Contains(a.logs.String(), "aborted=true") || !strings.Contains(a.logs.String(), "download aborted") {
		t.Errorf("log lacks the abort:\n%s", a.logs)
	}

	// The domain recorded the corruption: the backup shows it, and a new
	// download is refused before any byte.
	if got := a.st.Store.Appends(); got != before+1 {
		t.Errorf("appends: got %d, want %d", got, before+1)
	}
	got := a.do("GET", "/v1/apps/crm/backups/"+b.ID, "").want(t, http.StatusOK).backup(t)
	if got.CorruptAt == nil || got.CorruptReason == nil || !strings.Contains(*got.CorruptReason, "sha256 differs") {
		t.Errorf("backup not marked corrupt: %+v", got)
	}
	p := a.do("GET", "/v1/apps/crm/backups/"+b.ID+"/archive", "").want(t, http.StatusConflict).problem(t)
	if p.Code != "backup_corrupt" {
		t.Errorf("second download: %+v", p)
	}
}

func TestDownloadComponentOfCorrupt(t *testing.T) {
	a := newAPI(t, nil)
	b := a.uploaded("crm", "x")
	a.st.Archives.Corrupt(b.ID, 0)
	// A component is built after the whole archive was verified: the
	// mismatch is found before the first byte, so it is a problem.
	p := a.do("GET", "/v1/apps/crm/backups/"+b.ID+"/archive?component=config", "").want(t, http.StatusConflict).problem(t)
	if p.Code != "backup_corrupt" || !strings.Contains(p.Detail, "marked corrupt") {
		t.Errorf("%+v", p)
	}
	if got := a.do("GET", "/v1/apps/crm/backups/"+b.ID, "").want(t, http.StatusOK).backup(t); got.CorruptAt == nil {
		t.Errorf("not marked corrupt: %+v", got)
	}
}

func TestDownloadHead(t *testing.T) {
	a := newAPI(t, nil)
	b := a.uploaded("crm", "abc")
	r := a.do("HEAD", "/v1/apps/crm/backups/"+b.ID+"/archive", "").want(t, http.StatusOK)
	if r.header.Get("Content-Length") != "7" || r.header.Get("Etag") == "" || len(r.body) != 0 {
		t.Errorf("HEAD: %v %q", r.header, r.body)
	}
}

func TestUploadRaw(t *testing.T) {
	a := newAPI(t, nil)
	body := zipBody("raw")
	r := a.upload("crm", "?description=from+elsewhere", bytes.NewReader(body),
		"Content-Disposition", `attachment; filename="crm_2026-08-30_03-00.zip"`, "Idempotency-Key", "up-1").want(t, http.StatusCreated)
	b := r.backup(t)
	if b.Name != "crm_2026-08-30_03-00" || b.Description != "from elsewhere" || b.Status != "ready" || b.Origin != "upload" ||
		b.CreatedBy != "alice" || !b.CreatedAt.Equal(apitest.Start) || b.CompletedAt == nil {
		t.Errorf("backup: %+v", b)
	}
	if b.SizeBytes != int64(len(body)) || b.SHA256 == nil || *b.SHA256 != apitest.HexSHA(body) || b.ItemCount != 2 || b.SchemaVersion != 3 || b.Source != "kv" {
		t.Errorf("archive facts: %+v", b)
	}
	if b.Original == nil || b.Original.App != "origin" || b.Original.Name != "the original" {
		t.Errorf("original: %+v", b.Original)
	}
	if got, want := r.header.Get("Location"), "/v1/apps/crm/backups/"+b.ID; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if r.header.Get("X-Command-Id") != "up-1" {
		t.Errorf("X-Command-Id %q", r.header.Get("X-Command-Id"))
	}

	tests := []struct {
		desc, query string
		kv          []string
		want        string
	}{
		{"?name= wins", "?name=chosen&filename=other.zip", []string{"Content-Disposition", `attachment; filename="file.zip"`}, "chosen"},
		{"?filename=", "?filename=%2Ftmp%2Fexport.v2.zip", nil, "export.v2"},
		{"filename*", "", []string{"Content-Disposition", `attachment; filename*=UTF-8''%C3%A9t%C3%A9.zip`}, "été"},
		{"octet-stream", "?filename=x.bin", []string{"Content-Type", "application/octet-stream"}, "x"},
		{"no content type", "?filename=y.zip", []string{"Content-Type", ""}, "y"},
		{"blank ?name= is none", "?name=+&filename=z.zip", nil, "z"},
		{"no name at all", "", nil, "August 31 Monday 12:02"},
		{"extension only", "?filename=.zip", nil, "August 31 Monday 12:02"},
		{"long file name is cut", "?filename=" + strings.Repeat("n", 120) + ".zip", nil, strings.Repeat("n", 100)},
	}
	for _, tt := range tests {
		got := a.upload("crm", tt.query, bytes.NewReader(zipBody(tt.desc)), tt.kv...).want(t, http.StatusCreated).backup(t)
		if got.Name != tt.want {
			t.Errorf("%s: name %q, want %q", tt.desc, got.Name, tt.want)
		}
	}
	if objects, _ := a.st.Archives.Stored(); objects != 1+len(tests) {
		t.Errorf("stored archives: %d", objects)
	}
}

func TestUploadMultipart(t *testing.T) {
	a := newAPI(t, nil)
	tests := []struct {
		desc     string
		query    string
		parts    []formPart
		name     string
		descript string
	}{
		{"file name", "", []formPart{{field: "description", value: "weekly"}, {field: "file", fileName: "Nightly crm.zip", value: apitest.ZipMagic + "a"}}, "Nightly crm", "weekly"},
		{"name field", "", []formPart{{field: "submit", value: "Upload"}, {field: "name", value: "from form"}, {field: "file", fileName: "f.zip", value: apitest.ZipMagic + "b"}}, "from form", ""},
		{"?name= wins", "?name=query&description=q", []formPart{{field: "name", value: "form"}, {field: "description", value: "f"}, {field: "file", fileName: "f.zip", value: apitest.ZipMagic + "c"}}, "query", "q"},
		{"windows path", "", []formPart{{field: "file", fileName: `C:\fakepath\report.zip`, value: apitest.ZipMagic + "d"}}, "report", ""},
	}
	for _, tt := range tests {
		ct, body := multipartBody(t, tt.parts...)
		b := a.upload("crm", tt.query, bytes.NewReader(body), "Content-Type", ct).want(t, http.StatusCreated).backup(t)
		if b.Name != tt.name || b.Description != tt.descript || b.Status != "ready" || b.Origin != "upload" {
			t.Errorf("%s: name %q description %q status %s", tt.desc, b.Name, b.Description, b.Status)
		}
		want := []byte(tt.parts[len(tt.parts)-1].value)
		if *b.SHA256 != apitest.HexSHA(want) || b.SizeBytes != int64(len(want)) {
			t.Errorf("%s: stored %d bytes, sha %s", tt.desc, b.SizeBytes, *b.SHA256)
		}
	}

	before := a.st.Store.Appends()
	ct, body := multipartBody(t, formPart{field: "name", value: "x"})
	p := a.upload("crm", "", bytes.NewReader(body), "Content-Type", ct).want(t, http.StatusBadRequest).problem(t)
	if p.Code != "invalid_argument" || !strings.Contains(p.Detail, `no "file" part`) {
		t.Errorf("no file part: %+v", p)
	}
	p = a.upload("crm", "", bytes.NewReader(body), "Content-Type", "multipart/form-data").want(t, http.StatusBadRequest).problem(t)
	if p.Code != "invalid_argument" || !strings.Contains(p.Detail, "multipart") {
		t.Errorf("no boundary: %+v", p)
	}
	if got := a.st.Store.Appends(); got != before {
		t.Errorf("a refused upload appended %d events", got-before)
	}
}

func TestUploadTooLarge(t *testing.T) {
	const limit = 1024
	a := newAPIWith(t, httpapi.Config{MaxUploadBytes: limit}, nil, nil)
	wantTooLarge := func(r response, desc string) {
		t.Helper()
		p := r.want(t, http.StatusRequestEntityTooLarge).problem(t)
		if p.Code != "archive_too_large" || !strings.Contains(p.Detail, "1024") {
			t.Errorf("%s: %+v", desc, p)
		}
	}
	big := zipBody(strings.Repeat("x", 4*limit))

	// Declared too large: refused before reading.
	wantTooLarge(a.upload("crm", "", bytes.NewReader(big)), "Content-Length")
	// Streamed (no Content-Length): refused when the limit is crossed.
	wantTooLarge(a.upload("crm", "", io.MultiReader(bytes.NewReader(big))), "chunked")
	// A multipart body has 64 KiB for its framing and fields.
	ct, body := multipartBody(t, formPart{field: "file", fileName: "big.zip", value: string(zipBody(strings.Repeat("x", 65<<10)))})
	wantTooLarge(a.upload("crm", "", io.MultiReader(bytes.NewReader(body)), "Content-Type", ct), "chunked multipart")
	// Exactly at the limit is fine.
	a.upload("crm", "", bytes.NewReader(big[:limit])).want(t, http.StatusCreated)

	if got := a.st.Store.Appends(); got != 1 {
		t.Errorf("appends: got %d, want 1", got)
	}
	if objects, _ := a.st.Archives.Stored(); objects != 1 {
		t.Errorf("stored archives: %d", objects)
	}
}

// endless is a body that never ends and counts what was read of it.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.n == 0 && len(p) >= len(apitest.ZipMagic) {
		copy(p, apitest.ZipMagic)
	}
	e.n += int64(len(p))
	return len(p), nil
}

func TestUploadLimitStopsReading(t *testing.T) {
	const limit = 64 << 10
	a := newAPIWith(t, httpapi.Config{MaxUploadBytes: limit}, nil, nil)
	tests := []struct {
		desc   string
		ct     string
		body   func(*endless) io.Reader
		length int64
		most   int64
	}{
		{"raw", "application/zip", func(e *endless) io.Reader { return e }, -1, limit + 1},
		{"multipart", "multipart/form-data; boundary=b", func(e *endless) io.Reader {
			head := "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\r\n"
			return io.MultiReader(strings.NewReader(head), e)
		}, -1, limit + 64<<10 + 1},
		{"declared", "application/zip", func(e *endless) io.Reader { return e }, 10 << 30, 0},
	}
	for _, tt := range tests {
		e := &endless{}
		req := httptest.NewRequest("POST", "/v1/apps/crm/backups/upload", tt.body(e))
		req.ContentLength = tt.length
		req.Header.Set("Content-Type", tt.ct)
		req.Header.Set("Authorization", "Bearer alice-token")
		rec := httptest.NewRecorder()
		a.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), `"code":"archive_too_large"`) {
			t.Errorf("%s: %d %s", tt.desc, rec.Code, rec.Body)
		}
		if e.n > tt.most {
			t.Errorf("%s: read %d bytes of the body, want at most %d", tt.desc, e.n, tt.most)
		}
	}
}

// brokenBody fails after its first bytes, as a client that goes away.
type brokenBody struct{ sent bool }

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.sent {
		return 0, io.ErrUnexpectedEOF
	}
	b.sent = true
	return copy(p, apitest.ZipMagic), nil
}

func TestUploadBrokenBody(t *testing.T) {
	a := newAPI(t, nil)
	req := httptest.NewRequest("POST", "/v1/apps/crm/backups/upload", &brokenBody{})
	req.Header.Set("Authorization", "Bearer alice-token")
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "went away") {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	if objects, _ := a.st.Archives.Stored(); objects != 0 || a.st.Store.Appends() != 0 {
		t.Errorf("a broken upload left %d archives, %d events", objects, a.st.Store.Appends())
	}
}

func TestUploadRefused(t *testing.T) {
	a := newAPI(t, nil)
	before := a.st.Store.Appends()
	tests := []struct {
		desc   string
		body   []byte
		kv     []string
		status int
		code   string
		detail string
	}{
		{"not a zip", []byte("hello"), nil, 422, "archive_invalid", "not a zip"},
		{"empty", nil, nil, 422, "archive_invalid", "not a zip"},
		{"format version", zipBody("format:9"), nil, 422, "unsupported_archive_version", "version 9"},
		{"store limit", zipBody("TOOBIG"), nil, 413, "archive_too_large", "8 GiB"},
		{"form content type", zipBody("x"), []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", "application/zip"},
		{"json content type", zipBody("x"), []string{"Content-Type", "application/json"}, 415, "unsupported_media_type", "multipart/form-data"},
		{"bad idempotency key", zipBody("x"), []string{"Idempotency-Key", "a b"}, 400, "invalid_argument", "Idempotency-Key"},
	}
	for _, tt := range tests {
		p := a.upload("crm", "", bytes.NewReader(tt.body), tt.kv...).want(t, tt.status).problem(t)
		if p.Code != tt.code || !strings.Contains(p.Detail, tt.detail) {
			t.Errorf("%s: %+v", tt.desc, p)
		}
	}
	for query, detail := range map[string]string{
		"?name=" + strings.Repeat("n", 101):         "name must be",
		"?description=" + strings.Repeat("d", 1001): "description",
	} {
		p := a.upload("crm", query, bytes.NewReader(zipBody("x"))).want(t, http.StatusBadRequest).problem(t)
		if p.Code != "invalid_argument" || !strings.Contains(p.Detail, detail) {
			t.Errorf("%.20s: %+v", query, p)
		}
	}
	p := a.upload("CRM", "", bytes.NewReader(zipBody("x"))).want(t, http.StatusBadRequest).problem(t)
	if p.Code != "invalid_argument" {
		t.Errorf("bad app: %+v", p)
	}
	if got := a.st.Store.Appends(); got != before {
		t.Errorf("refused uploads appended %d events", got-before)
	}
	if objects, _ := a.st.Archives.Stored(); objects != 0 {
		t.Errorf("refused uploads left %d archives", objects)
	}
}

func TestUploadQuota(t *testing.T) {
	a := newAPI(t, nil)
	for i := range domain.DefaultRules().MaxBackups {
		a.uploaded("n"+string(rune('a'+i)), "x")
	}
	before := a.st.Store.Appends()
	p := a.upload("crm", "", bytes.NewReader(zipBody("one more"))).want(t, http.StatusConflict).problem(t)
	if p.Code != "backup_quota_exceeded" {
		t.Errorf("%+v", p)
	}
	if got := a.st.Store.Appends(); got != before {
		t.Errorf("appended %d events", got-before)
	}
	if objects, _ := a.st.Archives.Stored(); objects != domain.DefaultRules().MaxBackups {
		t.Errorf("stored archives: %d", objects)
	}
}

func TestUploadIdempotent(t *testing.T) {
	a := newAPI(t, nil)
	first := a.upload("crm", "?name=once", bytes.NewReader(zipBody("1")), "Idempotency-Key", "upload-7").want(t, http.StatusCreated)
	id := first.backup(t).ID
	if first.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first answer marked as replayed")
	}
	appends := a.st.Store.Appends()

	again := a.upload("crm", "?name=once", bytes.NewReader(zipBody("1")), "Idempotency-Key", "upload-7").want(t, http.StatusCreated)
	if got := again.backup(t); got.ID != id || got.Name != "once" {
		t.Errorf("retry answered %+v, want backup %s", got, id)
	}
	if again.header.Get("Idempotent-Replayed") != "true" || again.header.Get("Location") != "/v1/apps/crm/backups/"+id {
		t.Errorf("retry headers: %v", again.header)
	}
	// The same file without a key is a second entry.
	if got := a.upload("crm", "?name=once", bytes.NewReader(zipBody("1"))).want(t, http.StatusCreated).backup(t); got.ID == id {
		t.Errorf("an upload without a key was taken for a retry")
	}
	if got := a.st.Store.Appends(); got != appends+1 {
		t.Errorf("appends: got %d, want %d", got, appends+1)
	}
	if objects, _ := a.st.Archives.Stored(); objects != 2 {
		t.Errorf("stored archives: %d, want 2", objects)
	}

	// A key used for another command is refused (not a replay).
	a.do("POST", "/v1/apps/crm/backups", "{}", "Idempotency-Key", "create-1").want(t, http.StatusAccepted)
	p := a.upload("crm", "", bytes.NewReader(zipBody("2")), "Idempotency-Key", "create-1").want(t, http.StatusUnprocessableEntity).problem(t)
	if p.Code != domain.CodeIdempotencyKeyReused || !strings.Contains(p.Detail, "another request") {
		t.Errorf("reused key: %+v", p)
	}
}

func TestArchiveRoutesWithoutTransfers(t *testing.T) {
	a := newAPI(t, func(d *deps) { d.Transfers = nil })
	b := a.create("crm", "x")
	p := a.do("GET", "/v1/apps/crm/backups/"+b.ID+"/archive", "").want(t, http.StatusServiceUnavailable).problem(t)
	if p.Code != "unavailable" {
		t.Errorf("download: %+v", p)
	}
	p = a.upload("crm", "", bytes.NewReader(zipBody("x"))).want(t, http.StatusServiceUnavailable).problem(t)
	if p.Code != "unavailable" {
		t.Errorf("upload: %+v", p)
	}
}

// slowBody yields chunks with a pause before each.
type slowBody struct {
	chunks [][]byte
	pause  time.Duration
}

func (s *slowBody) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p, s.chunks[0])
	s.chunks[0] = s.chunks[0][n:]
	if len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

// TestTransfersOutlastServerTimeouts runs an upload and a download that
// take longer than the http.Server's ReadTimeout and WriteTimeout, and
// than RequestTimeout, while making progress all along; the upload's store
// is still at work well after the body ended. (Time-based: a transfer's
// pauses are a quarter of the timeouts.)
func TestTransfersOutlastServerTimeouts(t *testing.T) {
	const timeout = 400 * time.Millisecond
	a := newAPIWith(t, httpapi.Config{RequestTimeout: time.Millisecond, TransferIdleTimeout: timeout},
		func(s *http.Server) { s.ReadTimeout, s.WriteTimeout = timeout, timeout }, nil)
	a.st.Archives.SetSlow(0, 3*timeout)

	content := zipBody(strings.Repeat("c", 8000))
	body := &slowBody{pause: timeout / 4}
	for i := 0; i < len(content); i += 1000 {
		body.chunks = append(body.chunks, content[i:min(i+1000, len(content))])
	}
	b := a.upload("crm", "?name=slow", body).want(t, http.StatusCreated).backup(t)
	if imports, deadlines := a.st.Archives.Imported(); imports != 1 || deadlines != 0 {
		t.Errorf("imports %d, under a deadline %d", imports, deadlines)
	}

	a.st.Archives.SetSlow(timeout/4, 0) // 9 reads of 1000 bytes
	resp, got, err := a.download("/v1/apps/crm/backups/" + b.ID + "/archive")
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
		t.Fatalf("download: status %d, %d bytes, err %v", resp.StatusCode, len(got), err)
	}
}
