package httpapi_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/projections"
)

// Issue 13, item 10: encoding/json replaces invalid UTF-8 (and unpaired
// surrogate escapes) by U+FFFD; a body holding either is refused with
// 400 invalid_argument, and nothing is recorded.
func TestInvalidUTF8BodyRefused(t *testing.T) {
	a := newAPI(t, nil)
	b := a.create("crm", "kept")
	backup := "/v1/apps/crm/backups/" + b.ID
	before := a.st.Store.Appends()

	tests := []struct {
		name         string
		method, path string
		body         string
		detail       string
	}{
		{"create backup, name", "POST", "/v1/apps/crm/backups", "{\"name\":\"a\xffb\"}", "not valid UTF-8"},
		{"create backup, description", "POST", "/v1/apps/crm/backups", "{\"name\":\"n\",\"description\":\"caf\xe9\"}", "not valid UTF-8"},
		{"rename", "PATCH", backup, "{\"name\":\"a\xffb\"}", "not valid UTF-8 (byte 0xff at offset 10)"},
		{"rename, truncated sequence", "PATCH", backup, "{\"name\":\"\xe6\x97\"}", "not valid UTF-8"},
		{"rename, overlong encoding", "PATCH", backup, "{\"name\":\"\xc0\xaf\"}", "not valid UTF-8"},
		{"rename, encoded surrogate", "PATCH", backup, "{\"name\":\"\xed\xa0\x80\"}", "not valid UTF-8"},
		{"rename, in a field name", "PATCH", backup, "{\"na\xffme\":\"x\"}", "not valid UTF-8"},
		{"rename, after the object", "PATCH", backup, "{\"name\":\"x\"}\xff", "not valid UTF-8"},
		{"rename, lone high surrogate", "PATCH", backup, `{"name":"a\ud800b"}`, `unpaired UTF-16 surrogate escape \ud800 at offset 10`},
		{"rename, lone low surrogate", "PATCH", backup, `{"name":"a\udc00"}`, `surrogate escape \udc00`},
		{"rename, high surrogate then a letter", "PATCH", backup, `{"name":"\ud83d\u0041"}`, "surrogate"},
		{"rename, high surrogate at the end", "PATCH", backup, `{"name":"\ud83d"}`, "surrogate"},
		{"rename, two high surrogates", "PATCH", backup, `{"name":"\ud83d\ud83d\ude00"}`, "surrogate"},
		{"create org", "POST", "/v1/orgs", "{\"id\":\"beta\",\"name\":\"BE\xffTA\"}", "not valid UTF-8"},
		{"create user", "POST", "/v1/users", "{\"id\":\"zoe\",\"name\":\"Zo\xeb\",\"password\":\"zoe's long password\"}", "not valid UTF-8"},
		{"create user, password", "POST", "/v1/users", "{\"id\":\"zoe\",\"name\":\"Zoe\",\"password\":\"zoe's long p\xe4ssword\"}", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := a.do(tt.method, tt.path, tt.body).want(t, http.StatusBadRequest).problem(t)
			if p.Code != "invalid_argument" || p.Status != http.StatusBadRequest {
				t.Errorf("problem: %+v", p)
			}
			if !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail %q lacks %q", p.Detail, tt.detail)
			}
			if got := a.st.Store.Appends(); got != before {
				t.Errorf("the store received %d appends", got-before)
			}
		})
	}
	if got := a.do("GET", backup, "").want(t, http.StatusOK).backup(t).Name; got != "kept" {
		t.Errorf("name %q, want kept", got)
	}
	var list projections.BackupList
	decode(t, a.do("GET", "/v1/apps/crm/backups", "").want(t, http.StatusOK).body, &list)
	if len(list.Backups) != 1 {
		t.Errorf("%d backups, want 1", len(list.Backups))
	}
	a.do("GET", "/v1/orgs/beta", "").want(t, http.StatusNotFound)
	a.do("GET", "/v1/users/zoe", "").want(t, http.StatusNotFound)
}

// Valid UTF-8, multi-byte characters and surrogate pairs included, is
// accepted and kept as sent.
func TestValidUTF8BodyAccepted(t *testing.T) {
	a := newAPI(t, nil)
	b := a.create("crm", "Übersicht 日本 😀")
	if b.Name != "Übersicht 日本 😀" {
		t.Errorf("created name %q", b.Name)
	}
	backup := "/v1/apps/crm/backups/" + b.ID
	for _, tt := range []struct{ body, want string }{
		{`{"name":"Zoë Ωμέγα 日本語 😀"}`, "Zoë Ωμέγα 日本語 😀"},
		{`{"name":"\u00dcbersicht \u65e5\u672c \ud83d\ude00"}`, "Übersicht 日本 😀"},
		{`{"name":"\uD83D\uDE00 upper-case hex"}`, "😀 upper-case hex"},
		{`{"name":"not an escape: \\ud800"}`, `not an escape: \ud800`},
		{`{"name":"quote \" then \\\ud83d\ude00"}`, `quote " then \😀`},
		{`{"name":"a sent replacement character \ufffd"}`, "a sent replacement character \ufffd"},
	} {
		if got := a.do("PATCH", backup, tt.body).want(t, http.StatusOK).backup(t).Name; got != tt.want {
			t.Errorf("%s: name %q, want %q", tt.body, got, tt.want)
		}
	}
	a.do("POST", "/v1/orgs", `{"id":"beta","name":"Bétà 株式会社"}`).want(t, http.StatusCreated)
	r := a.do("POST", "/v1/users", `{"id":"zoe","name":"Zoë 😀","email":"zoë@example.com","password":"zoë's lóng pässword"}`).want(t, http.StatusCreated)
	if !bytes.Contains(r.body, []byte("Zoë 😀")) {
		t.Errorf("user: %s", r.body)
	}
	a.login("zoe", "zoë's lóng pässword")
}

// Names and ids that come from the path, the query or headers are
// checked by the domain: invalid UTF-8 there is refused too, and nothing
// is recorded.
func TestInvalidUTF8OutsideTheBody(t *testing.T) {
	a := newAPI(t, nil)
	a.do("POST", "/v1/orgs", `{"id":"acme"}`).want(t, http.StatusCreated)
	b := a.create("crm", "kept")
	a.do("POST", "/v1/users", `{"id":"zoe","name":"Zoe","password":"zoe's long password"}`).want(t, http.StatusCreated)
	before := a.st.Store.Appends()

	tests := []struct {
		name   string
		send   func() response
		status int
		code   string
		detail string
	}{
		{"upload ?name=", func() response {
			return a.upload("crm", "?name=a%FFb", bytes.NewReader(zipBody("x")))
		}, 400, "invalid_argument", "name must be valid UTF-8"},
		{"upload ?description=", func() response {
			return a.upload("crm", "?name=n&description=caf%E9", bytes.NewReader(zipBody("x")))
		}, 400, "invalid_argument", "description must be valid UTF-8"},
		{"upload Idempotency-Key", func() response {
			return a.upload("crm", "?name=n", bytes.NewReader(zipBody("x")), "Idempotency-Key", "k\xffk")
		}, 400, "invalid_argument", "Idempotency-Key"},
		{"Idempotency-Key", func() response {
			return a.do("POST", "/v1/apps/crm/backups", `{}`, "Idempotency-Key", "k\xffk")
		}, 400, "invalid_argument", "Idempotency-Key"},
		{"X-Correlation-Id", func() response {
			return a.do("PATCH", "/v1/apps/crm/backups/"+b.ID, `{"name":"x"}`, "X-Correlation-Id", "\xe9")
		}, 400, "invalid_argument", "X-Correlation-Id"},
		{"{app}", func() response {
			return a.do("POST", "/v1/apps/cr%FFm/backups", `{}`)
		}, 400, "invalid_argument", "app id"},
		{"{app} on register", func() response {
			return a.do("PUT", "/v1/apps/cr%E9", `{"org":"default"}`)
		}, 400, "invalid_argument", "app id"},
		{"{id} of a backup", func() response {
			return a.do("PATCH", "/v1/apps/crm/backups/x%FF", `{"name":"x"}`)
		}, 404, "not_found", "not found"},
		{"{org}", func() response {
			return a.do("PUT", "/v1/orgs/ac%FFme/members/zoe", "")
		}, 404, "not_found", "not found"},
		{"{user}", func() response {
			return a.do("PUT", "/v1/orgs/acme/members/zo%EB", "")
		}, 404, "not_found", "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.send().want(t, tt.status)
			p := r.problem(t)
			if p.Code != tt.code || !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("problem: %+v, want %s with %q", p, tt.code, tt.detail)
			}
			if got := a.st.Store.Appends(); got != before {
				t.Errorf("the store received %d appends", got-before)
			}
		})
	}
	if objects, _ := a.st.Archives.Stored(); objects != 0 {
		t.Errorf("refused uploads left %d archives", objects)
	}
}
