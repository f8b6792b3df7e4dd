package httpapi_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

const carolPW = "carol's long password"

// as sends a request with a bearer token.
func (a *api) as(token, method, path, body string) response {
	a.t.Helper()
	return a.do(method, path, body, "Authorization", "Bearer "+token)
}

func (a *api) login(user, pw string) projections.NewTokenView {
	a.t.Helper()
	var tok projections.NewTokenView
	decode(a.t, a.do("POST", "/v1/sessions", `{"user":"`+user+`","password":"`+pw+`"}`, "Authorization", "").want(a.t, http.StatusCreated).body, &tok)
	return tok
}

// seedIdentity makes organisation acme with members carol and dave, and
// user erin of organisation other; alice is the server administrator.
func seedIdentity(a *api) {
	t := a.t
	t.Helper()
	a.do("POST", "/v1/orgs", `{"id":"acme","name":"ACME"}`).want(t, http.StatusCreated)
	a.do("POST", "/v1/orgs", `{"id":"other"}`).want(t, http.StatusCreated)
	for _, u := range []string{"carol", "dave", "erin"} {
		a.do("POST", "/v1/users", `{"id":"`+u+`","name":"`+strings.ToUpper(u)+`","email":"`+u+`@example.com","password":"`+u+`'s long password"}`).want(t, http.StatusCreated)
	}
	a.do("PUT", "/v1/orgs/acme/members/carol", "").want(t, http.StatusNoContent)
	a.do("PUT", "/v1/orgs/acme/members/dave", "").want(t, http.StatusNoContent)
	a.do("PUT", "/v1/orgs/other/members/erin", "").want(t, http.StatusNoContent)
}

func TestIdentityRoutes(t *testing.T) {
	a := newBareAPI(t, nil)
	seedIdentity(a)

	// Users are answered without any secret.
	var u projections.UserView
	r := a.do("GET", "/v1/users/carol", "").want(t, http.StatusOK)
	decode(t, r.body, &u)
	if u.ID != "carol" || u.Email != "carol@example.com" || !slices.Equal(u.Orgs, []string{"acme"}) {
		t.Errorf("user = %+v", u)
	}
	if bytes.Contains(r.body, []byte("password")) || bytes.Contains(r.body, []byte("$2a$")) {
		t.Errorf("user answer holds a password: %s", r.body)
	}

	carol := a.login("carol", carolPW).Token
	dave := a.login("dave", "dave's long password").Token
	erin := a.login("erin", "erin's long password").Token

	// carol registers crm in acme and becomes its admin.
	var acc projections.AppAccessView
	decode(t, a.as(carol, "PUT", "/v1/apps/crm", `{"org":"acme"}`).want(t, http.StatusOK).body, &acc)
	if acc.Org != "acme" || !slices.Equal(acc.Admins, []string{"carol"}) {
		t.Errorf("app access = %+v", acc)
	}
	var b projections.BackupView
	decode(t, a.as(carol, "POST", "/v1/apps/crm/backups", `{"name":"first"}`).want(t, http.StatusAccepted).body, &b)
	if b.CreatedBy != "carol" {
		t.Errorf("created_by = %q, want the authenticated user", b.CreatedBy)
	}
	// No command creates an app, the server administrator's neither: it
	// registers it first.
	a.do("POST", "/v1/apps/erp/backups", `{}`).want(t, http.StatusNotFound) // alice, the server administrator
	a.do("PUT", "/v1/apps/erp", `{"org":"other"}`).want(t, http.StatusOK)
	a.create("erp", "the admin's app")

	// Others see nothing of crm: 404, not 403.
	for _, tok := range []string{dave, erin} {
		a.as(tok, "GET", "/v1/apps/crm/backups", "").want(t, http.StatusNotFound)
		a.as(tok, "POST", "/v1/apps/crm/backups", `{}`).want(t, http.StatusNotFound)
		var list projections.BackupList
		decode(t, a.as(tok, "GET", "/v1/backups", "").want(t, http.StatusOK).body, &list)
		if len(list.Backups) != 0 {
			t.Errorf("GET /v1/backups shows %d backups to a non-admin", len(list.Backups))
		}
	}
	var list projections.BackupList
	decode(t, a.as(carol, "GET", "/v1/backups", "").want(t, http.StatusOK).body, &list)
	if len(list.Backups) != 1 || list.Backups[0].App != "crm" {
		t.Errorf("carol's list: %+v", list.Backups)
	}
	// Only members can be granted; then dave administers crm.
	if p := a.as(carol, "PUT", "/v1/apps/crm/admins/erin", "").want(t, http.StatusBadRequest).problem(t); p.Code != domain.CodeInvalidArgument {
		t.Errorf("grant to a non-member: %+v", p)
	}
	a.as(dave, "PUT", "/v1/apps/crm/admins/dave", "").want(t, http.StatusNotFound)
	a.as(carol, "PUT", "/v1/apps/crm/admins/dave", "").want(t, http.StatusNoContent)
	a.as(dave, "GET", "/v1/apps/crm/backups", "").want(t, http.StatusOK)
	// Registering an app one may not see answers as every route does:
	// 404, without its admins; for a member of its organisation too.
	for _, tc := range []struct{ tok, org string }{{erin, "other"}, {erin, "acme"}, {dave, "acme"}} {
		r := a.as(tc.tok, "PUT", "/v1/apps/crm", `{"org":"`+tc.org+`"}`)
		if tc.tok == dave {
			r.want(t, http.StatusOK) // dave administers crm now
			continue
		}
		if p := r.want(t, http.StatusNotFound).problem(t); p.Code != domain.CodeNotFound || bytes.Contains(r.body, []byte("carol")) {
			t.Errorf("PUT /v1/apps/crm by erin into %s: %s", tc.org, r.body)
		}
	}
	a.do("PUT", "/v1/apps/crm", `{"org":"other"}`).want(t, http.StatusConflict) // the administrator: it is in acme

	// Only the server administrator manages organisations and users.
	for _, req := range [][2]string{
		{"POST /v1/orgs", `{"id":"x"}`},
		{"POST /v1/users", `{"id":"x","name":"X","password":"long enough password"}`},
		{"PUT /v1/orgs/acme/members/erin", ""},
		{"PATCH /v1/users/dave", `{"disabled":true}`},
		{"GET /v1/users", ""},
	} {
		method, path, _ := strings.Cut(req[0], " ")
		if p := a.as(carol, method, path, req[1]).want(t, http.StatusForbidden).problem(t); p.Code != domain.CodePermissionDenied {
			t.Errorf("%s by carol: %+v", req[0], p)
		}
	}

	// Who am I.
	var me projections.MeView
	decode(t, a.as(carol, "GET", "/v1/me", "").want(t, http.StatusOK).body, &me)
	if me.ID != "carol" || me.Admin || !slices.Equal(me.Apps, []string{"crm"}) || !slices.Equal(me.Orgs, []string{"acme"}) {
		t.Errorf("me = %+v", me)
	}

	// API tokens: shown once, listed without the secret, revoked at once.
	var tok projections.NewTokenView
	exp := a.st.Clock.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	decode(t, a.as(carol, "POST", "/v1/tokens", `{"name":"ci","expires_at":"`+exp+`"}`).want(t, http.StatusCreated).body, &tok)
	if !strings.HasPrefix(tok.Token, "bl_") || tok.ExpiresAt == nil || tok.Kind != domain.TokenAPI {
		t.Fatalf("new token = %+v", tok)
	}
	a.as(tok.Token, "GET", "/v1/apps/crm/backups", "").want(t, http.StatusOK)
	r = a.as(carol, "GET", "/v1/tokens", "").want(t, http.StatusOK)
	if bytes.Contains(r.body, []byte(tok.Token)) || !bytes.Contains(r.body, []byte(tok.ID)) {
		t.Errorf("token list: %s", r.body)
	}
	a.as(dave, "DELETE", "/v1/tokens/"+tok.ID, "").want(t, http.StatusNotFound)
	a.as(carol, "DELETE", "/v1/tokens/"+tok.ID, "").want(t, http.StatusNoContent)
	a.as(tok.Token, "GET", "/v1/apps/crm/backups", "").want(t, http.StatusUnauthorized)
	a.st.Clock.Advance(25 * time.Hour) // sessions last 12 hours
	a.as(carol, "GET", "/v1/me", "").want(t, http.StatusUnauthorized)
	carol = a.login("carol", carolPW).Token

	// Logout ends the session.
	a.as(carol, "DELETE", "/v1/sessions/current", "").want(t, http.StatusNoContent)
	a.as(carol, "GET", "/v1/me", "").want(t, http.StatusUnauthorized)

	// A disabled user's sessions stop at once.
	dave = a.login("dave", "dave's long password").Token
	a.do("PATCH", "/v1/users/dave", `{"disabled":true}`).want(t, http.StatusOK)
	a.as(dave, "GET", "/v1/me", "").want(t, http.StatusUnauthorized)

	// No password, hash or token in the logs or the events.
	secrets := []string{carolPW, "dave's long password", tok.Token, carol, dave}
	for _, v := range a.st.Secrets.Values() {
		secrets = append(secrets, string(v))
	}
	for _, s := range secrets {
		if strings.Contains(a.logs.String(), s) {
			t.Errorf("the logs hold the secret %q", s)
		}
	}
}

// Wrong passwords are throttled, for a name no user has exactly as for
// a user's: the same answers, then 429 with Retry-After.
func TestLoginThrottle(t *testing.T) {
	a := newAPI(t, nil)
	seedIdentity(a)
	for _, user := range []string{"carol", "nobody"} {
		wrong := `{"user":"` + user + `","password":"not the password"}`
		for range service.PairFailures {
			if p := a.do("POST", "/v1/sessions", wrong, "Authorization", "").want(t, http.StatusUnauthorized).problem(t); p.Code != domain.CodeUnauthenticated {
				t.Fatalf("wrong password for %s: %+v", user, p)
			}
		}
		r := a.do("POST", "/v1/sessions", wrong, "Authorization", "").want(t, http.StatusTooManyRequests)
		if p := r.problem(t); p.Code != domain.CodeTooManyAttempts || p.RetryAfterSeconds != int64(service.PairBaseDelay/time.Second) {
			t.Fatalf("throttled %s: %+v", user, p)
		}
		if r.header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
	}
	// The right password waits as well (it is not looked at), then works.
	a.do("POST", "/v1/sessions", `{"user":"carol","password":"`+carolPW+`"}`, "Authorization", "").want(t, http.StatusTooManyRequests)
	a.st.Clock.Advance(service.PairBaseDelay)
	a.login("carol", carolPW)
	// Bad bodies are 400.
	a.do("POST", "/v1/sessions", `{"user":"carol"}`, "Authorization", "").want(t, http.StatusBadRequest)
	a.do("POST", "/v1/sessions", `{"user":"carol","password":"x","extra":1}`, "Authorization", "").want(t, http.StatusBadRequest)
}

// A user changes its own password only with the current one; the change
// ends its other sessions and lists the API tokens that still work; the
// server administrator resets without it.
func TestPasswordChangeRoute(t *testing.T) {
	a := newAPI(t, nil)
	seedIdentity(a)
	other := a.login("carol", carolPW)
	sess := a.login("carol", carolPW)
	var api projections.NewTokenView
	decode(t, a.as(sess.Token, "POST", "/v1/tokens", `{"name":"ci"}`).want(t, http.StatusCreated).body, &api)
	before := a.st.Store.Appends()
	const newPW = "carol's new long password"
	for _, body := range []string{
		`{"password":"` + newPW + `"}`,
		`{"password":"short","current_password":"` + carolPW + `"}`,
	} {
		a.as(sess.Token, "PUT", "/v1/users/carol/password", body).want(t, http.StatusBadRequest)
	}
	a.as(sess.Token, "PUT", "/v1/users/carol/password", `{"password":"`+newPW+`","current_password":"wrong password!"}`).want(t, http.StatusForbidden)
	a.st.Identity.WaitRecorded()
	if got := a.st.Store.Appends() - before; got != 1 {
		t.Errorf("refused changes appended %d events, want 1 (the wrong password)", got)
	}
	var v projections.PasswordChangeView
	decode(t, a.as(sess.Token, "PUT", "/v1/users/carol/password", `{"password":"`+newPW+`","current_password":"`+carolPW+`"}`).want(t, http.StatusOK).body, &v)
	if !v.Changed || !slices.Equal(v.RevokedSessions, []string{other.ID}) || len(v.APITokens) != 1 || v.APITokens[0].ID != api.ID {
		t.Errorf("answer %+v: want %s revoked, %s listed", v, other.ID, api.ID)
	}
	a.as(other.Token, "GET", "/v1/me", "").want(t, http.StatusUnauthorized)
	a.as(sess.Token, "GET", "/v1/me", "").want(t, http.StatusOK)
	a.as(api.Token, "GET", "/v1/me", "").want(t, http.StatusOK)
	a.login("carol", newPW)
	// The administrator (alice) resets without the current password.
	decode(t, a.do("PUT", "/v1/users/carol/password", `{"password":"the admin's new password"}`).want(t, http.StatusOK).body, &v)
	if len(v.RevokedSessions) != 2 {
		t.Errorf("the administrator's reset revoked %v, want carol's two sessions", v.RevokedSessions)
	}
	a.as(sess.Token, "GET", "/v1/me", "").want(t, http.StatusUnauthorized)
	a.login("carol", "the admin's new password")
}

// Refused identity commands change nothing.
func TestIdentityBadInput(t *testing.T) {
	a := newBareAPI(t, nil)
	seedIdentity(a)
	before := a.st.Store.Appends()
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/v1/orgs", `{"id":"Bad Org"}`, http.StatusBadRequest},
		{"POST", "/v1/orgs", `{"id":"acme"}`, http.StatusConflict},
		{"POST", "/v1/users", `{"id":"zed","name":"Z","password":"short"}`, http.StatusBadRequest},
		{"POST", "/v1/users", `{"id":"carol","name":"C","password":"long enough password"}`, http.StatusConflict},
		{"PUT", "/v1/orgs/nope/members/carol", "", http.StatusNotFound},
		{"PUT", "/v1/orgs/acme/members/nobody", "", http.StatusNotFound},
		{"PUT", "/v1/apps/crm", `{}`, http.StatusBadRequest},
		{"PUT", "/v1/apps/crm", `{"org":"nope"}`, http.StatusNotFound},
		{"PUT", "/v1/apps/crm/admins/carol", "", http.StatusNotFound},
		{"PATCH", "/v1/users/carol", `{}`, http.StatusBadRequest},
		{"PUT", "/v1/users/carol/password", `{"password":"short"}`, http.StatusBadRequest},
		{"PUT", "/v1/users/carol/password", `{"password":"` + strings.Repeat("x", domain.MaxPasswordLen+1) + `"}`, http.StatusBadRequest},
		{"POST", "/v1/tokens", `{"name":"x"}`, http.StatusForbidden}, // the server admin has admin.token
	} {
		if got := a.do(c.method, c.path, c.body).status; got != c.status {
			t.Errorf("%s %s %s: status %d, want %d", c.method, c.path, c.body, got, c.status)
		}
	}
	if n := a.st.Store.Appends(); n != before {
		t.Errorf("refused identity commands appended %d events", n-before)
	}
	if _, err := a.st.Secrets.Secret(t.Context(), "password.zed"); err == nil {
		t.Error("a refused user's password was stored")
	}
}

// Retention answers like every app route: its admins see it, others get
// 404; it is a dry run.
func TestRetentionRoute(t *testing.T) {
	a := newAPI(t, nil)
	a.create("crm", "first")
	before := a.st.Store.Appends()
	var r projections.RetentionView
	decode(t, a.do("GET", "/v1/apps/crm/retention", "").want(t, http.StatusOK).body, &r)
	if r.App != "crm" || len(r.Backups) != 1 || r.NextBackup.Allowed || r.NextBackup.Code != domain.CodeTooSoon ||
		r.NextBackup.RetryAfterSeconds != 300 || r.QuotaUsed != 1 || r.QuotaLimit != 10 || r.Backups[0].ExpiresInSeconds != 60*24*3600 {
		t.Errorf("retention = %+v", r)
	}
	if a.st.Store.Appends() != before {
		t.Error("retention appended an event")
	}
	a.do("GET", "/v1/apps/crm/retention", "", "Authorization", "Bearer eve-token").want(t, http.StatusNotFound)
	a.do("GET", "/v1/apps/crm/retention", "", "Authorization", "").want(t, http.StatusUnauthorized)
}

// Passwords are hashed whole (Argon2id): bcrypt's 72-byte limit let the
// first 72 bytes and anything after log in. Up to 1,024 bytes are taken.
func TestLongPasswords(t *testing.T) {
	a := newBareAPI(t, nil)
	a.do("POST", "/v1/orgs", `{"id":"acme"}`).want(t, http.StatusCreated)
	long := strings.Repeat("correct horse battery staple ", 4) // 116 bytes
	a.do("POST", "/v1/users", `{"id":"carol","name":"C","password":"`+long+`"}`).want(t, http.StatusCreated)
	a.login("carol", long)
	a.do("POST", "/v1/sessions", `{"user":"carol","password":"`+long[:72]+`something else entirely"}`, "Authorization", "").want(t, http.StatusUnauthorized)
	a.do("POST", "/v1/users", `{"id":"dave","name":"D","password":"`+strings.Repeat("x", domain.MaxPasswordLen)+`"}`).want(t, http.StatusCreated)
	a.login("dave", strings.Repeat("x", domain.MaxPasswordLen))
	a.do("POST", "/v1/users", `{"id":"erin","name":"E","password":"`+strings.Repeat("x", domain.MaxPasswordLen+1)+`"}`).want(t, http.StatusBadRequest)
}

// Leaving an organisation ends one's admin grants on its apps: rejoining
// does not bring them back.
func TestMemberRemovalRevokesGrants(t *testing.T) {
	a := newBareAPI(t, nil)
	seedIdentity(a)
	carol := a.login("carol", carolPW).Token
	a.as(carol, "PUT", "/v1/apps/crm", `{"org":"acme"}`).want(t, http.StatusOK)
	a.as(carol, "PUT", "/v1/apps/crm/admins/dave", "").want(t, http.StatusNoContent)
	dave := a.login("dave", "dave's long password").Token
	a.as(dave, "GET", "/v1/apps/crm/backups", "").want(t, http.StatusOK)
	a.do("DELETE", "/v1/orgs/acme/members/dave", "").want(t, http.StatusNoContent)
	a.do("PUT", "/v1/orgs/acme/members/dave", "").want(t, http.StatusNoContent)
	a.as(dave, "GET", "/v1/apps/crm/backups", "").want(t, http.StatusNotFound)
	var acc projections.AppAccessView
	decode(t, a.as(carol, "GET", "/v1/apps/crm/admins", "").want(t, http.StatusOK).body, &acc)
	if !slices.Equal(acc.Admins, []string{"carol"}) {
		t.Errorf("admins after dave left and rejoined: %v", acc.Admins)
	}
}
