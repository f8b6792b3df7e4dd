package natsapi_test

import (
	"strings"
	"testing"

	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/projections"
)

// Issue 13, item 10: encoding/json replaces invalid UTF-8 (and unpaired
// surrogate escapes) by U+FFFD; a body holding either is refused with
// 400 invalid_argument, and nothing is recorded.
func TestInvalidUTF8BodyRefused(t *testing.T) {
	a := newAPI(t, nil)
	var b projections.BackupView
	a.request(natsapi.SubjectBackupsCreate, `{"app":"crm","name":"kept"}`).ok(t, &b)
	before := a.st.Store.Appends()
	rename := `{"app":"crm","id":"` + b.ID + `","name":`

	tests := []struct {
		name    string
		subject string
		body    string
		kv      []string
		detail  string
	}{
		{"create backup, name", natsapi.SubjectBackupsCreate, "{\"app\":\"crm\",\"name\":\"a\xffb\"}", nil, "not valid UTF-8 (byte 0xff at offset 22)"},
		{"create backup, description", natsapi.SubjectBackupsCreate, "{\"app\":\"crm\",\"description\":\"caf\xe9\"}", nil, "not valid UTF-8"},
		{"create backup, app", natsapi.SubjectBackupsCreate, "{\"app\":\"cr\xffm\"}", nil, "not valid UTF-8"},
		{"create backup, idempotency_key", natsapi.SubjectBackupsCreate, "{\"app\":\"crm\",\"idempotency_key\":\"k\xff\"}", nil, "not valid UTF-8"},
		{"create backup, Idempotency-Key header", natsapi.SubjectBackupsCreate, `{"app":"crm"}`, []string{"Idempotency-Key", "k\xffk"}, "idempotency_key"},
		{"rename", natsapi.SubjectBackupsRename, rename + "\"a\xffb\"}", nil, "not valid UTF-8"},
		{"rename, truncated sequence", natsapi.SubjectBackupsRename, rename + "\"\xe6\x97\"}", nil, "not valid UTF-8"},
		{"rename, overlong encoding", natsapi.SubjectBackupsRename, rename + "\"\xc0\xaf\"}", nil, "not valid UTF-8"},
		{"rename, encoded surrogate", natsapi.SubjectBackupsRename, rename + "\"\xed\xa0\x80\"}", nil, "not valid UTF-8"},
		{"rename, after the object", natsapi.SubjectBackupsRename, rename + "\"x\"}\xff", nil, "not valid UTF-8"},
		{"rename, lone high surrogate", natsapi.SubjectBackupsRename, rename + `"a\ud800b"}`, nil, `unpaired UTF-16 surrogate escape \ud800`},
		{"rename, lone low surrogate", natsapi.SubjectBackupsRename, rename + `"\udc00"}`, nil, `surrogate escape \udc00`},
		{"rename, high surrogate then a letter", natsapi.SubjectBackupsRename, rename + `"\ud83d\u0041"}`, nil, "surrogate"},
		{"rename, two high surrogates", natsapi.SubjectBackupsRename, rename + `"\ud83d\ud83d\ude00"}`, nil, "surrogate"},
		{"create org", natsapi.SubjectOrgsCreate, "{\"id\":\"beta\",\"name\":\"BE\xffTA\"}", nil, "not valid UTF-8"},
		{"create user", natsapi.SubjectUsersCreate, "{\"id\":\"zoe\",\"name\":\"Zo\xeb\",\"password\":\"zoe's long password\"}", nil, "not valid UTF-8"},
		{"create user, password", natsapi.SubjectUsersCreate, "{\"id\":\"zoe\",\"name\":\"Zoe\",\"password\":\"zoe's long p\xe4ssword\"}", nil, "not valid UTF-8"},
		{"login", natsapi.SubjectSessionsCreate, "{\"user\":\"zo\xeb\",\"password\":\"zoe's long password\"}", []string{"Authorization", ""}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := a.request(tt.subject, tt.body, tt.kv...).problem(t, 400, "invalid_argument")
			if !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail %q lacks %q", p.Detail, tt.detail)
			}
			if got := a.st.Store.Appends(); got != before {
				t.Errorf("the store received %d appends", got-before)
			}
		})
	}
	var got projections.BackupView
	a.request(natsapi.SubjectBackupsGet, natsapi.BackupRequest{App: "crm", ID: b.ID}).ok(t, &got)
	if got.Name != "kept" {
		t.Errorf("name %q, want kept", got.Name)
	}
	a.request(natsapi.SubjectOrgsGet, natsapi.OrgRequest{Org: "beta"}).problem(t, 404, "not_found")
	a.request(natsapi.SubjectUsersGet, natsapi.UserRequest{User: "zoe"}).problem(t, 404, "not_found")
}

// Valid UTF-8, multi-byte characters and surrogate pairs included, is
// accepted and kept as sent.
func TestValidUTF8BodyAccepted(t *testing.T) {
	a := newAPI(t, nil)
	var b projections.BackupView
	a.request(natsapi.SubjectBackupsCreate, `{"app":"crm","name":"Übersicht 日本 😀"}`).ok(t, &b)
	if b.Name != "Übersicht 日本 😀" {
		t.Errorf("created name %q", b.Name)
	}
	rename := `{"app":"crm","id":"` + b.ID + `","name":`
	for _, tt := range []struct{ name, want string }{
		{`"Zoë Ωμέγα 日本語 😀"`, "Zoë Ωμέγα 日本語 😀"},
		{`"\u00dcbersicht \u65e5\u672c \ud83d\ude00"`, "Übersicht 日本 😀"},
		{`"\uD83D\uDE00 upper-case hex"`, "😀 upper-case hex"},
		{`"not an escape: \\ud800"`, `not an escape: \ud800`},
		{`"quote \" then \\\ud83d\ude00"`, `quote " then \😀`},
		{`"a sent replacement character \ufffd"`, "a sent replacement character \ufffd"},
	} {
		var got projections.BackupView
		a.request(natsapi.SubjectBackupsRename, rename+tt.name+"}").ok(t, &got)
		if got.Name != tt.want {
			t.Errorf("%s: name %q, want %q", tt.name, got.Name, tt.want)
		}
	}
	a.request(natsapi.SubjectOrgsCreate, `{"id":"beta","name":"Bétà 株式会社"}`).ok(t, nil)
	r := a.request(natsapi.SubjectUsersCreate, `{"id":"zoe","name":"Zoë 😀","email":"zoë@example.com","password":"zoë's lóng pässword"}`).ok(t, nil)
	if !strings.Contains(string(r.msg.Data), "Zoë 😀") {
		t.Errorf("user: %s", r.msg.Data)
	}
	a.request(natsapi.SubjectSessionsCreate, `{"user":"zoe","password":"zoë's lóng pässword"}`, "Authorization", "").ok(t, nil)
}
