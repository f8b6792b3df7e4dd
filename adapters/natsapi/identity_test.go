package natsapi_test

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

const carolPW = "carol's long password"

// as sends a request with a bearer token.
func (a *api) as(token, subject string, body any, kv ...string) reply {
	a.t.Helper()
	return a.request(subject, body, append([]string{"Authorization", "Bearer " + token}, kv...)...)
}

// login opens a session over NATS, without an Authorization header.
func (a *api) login(user, pw string) projections.NewTokenView {
	a.t.Helper()
	var tok projections.NewTokenView
	a.request(natsapi.SubjectSessionsCreate, natsapi.LoginRequest{User: user, Password: pw}, "Authorization", "").ok(a.t, &tok)
	return tok
}

// seedIdentity makes organisation acme with members carol and dave, and
// user erin of organisation other; alice is the server administrator.
func seedIdentity(a *api) {
	t := a.t
	t.Helper()
	a.request(natsapi.SubjectOrgsCreate, `{"id":"acme","name":"ACME"}`).ok(t, nil)
	a.request(natsapi.SubjectOrgsCreate, `{"id":"other"}`).ok(t, nil)
	for _, u := range []string{"carol", "dave", "erin"} {
		a.request(natsapi.SubjectUsersCreate, natsapi.CreateUserRequest{ID: u, Name: strings.ToUpper(u),
			Email: u + "@example.com", Password: u + "'s long password"}).ok(t, nil)
	}
	for _, m := range [][2]string{{"acme", "carol"}, {"acme", "dave"}, {"other", "erin"}} {
		var got natsapi.Membership
		a.request(natsapi.SubjectOrgsMembersAdd, natsapi.MemberRequest{Org: m[0], User: m[1]}).ok(t, &got)
		if got != (natsapi.Membership{Org: m[0], User: m[1], Member: true}) {
			t.Errorf("members.add answered %+v", got)
		}
	}
}

func TestIdentityEndpoints(t *testing.T) {
	a := newBareAPI(t, nil)
	seedIdentity(a)

	// Organisations: alice sees all, a member its own, others not_found.
	var orgs natsapi.OrgList
	a.request(natsapi.SubjectOrgsList, "").ok(t, &orgs)
	if len(orgs.Orgs) != 2 || orgs.Orgs[0].ID != "acme" || orgs.Orgs[0].Name != "ACME" ||
		!slices.Equal(orgs.Orgs[0].Members, []string{"carol", "dave"}) || orgs.Orgs[1].Name != "other" {
		t.Errorf("orgs = %+v", orgs)
	}

	// Users are answered without any secret.
	var u projections.UserView
	r := a.request(natsapi.SubjectUsersGet, `{"user":"carol"}`).ok(t, &u)
	if u.ID != "carol" || u.Email != "carol@example.com" || !slices.Equal(u.Orgs, []string{"acme"}) {
		t.Errorf("user = %+v", u)
	}
	if bytes.Contains(r.msg.Data, []byte("password")) || bytes.Contains(r.msg.Data, []byte("$2a$")) {
		t.Errorf("user answer holds a password: %s", r.msg.Data)
	}
	var users natsapi.UserList
	r = a.request(natsapi.SubjectUsersList, "").ok(t, &users)
	if len(users.Users) != 3 || bytes.Contains(r.msg.Data, []byte("password")) {
		t.Errorf("users: %s", r.msg.Data)
	}

	carol := a.login("carol", carolPW).Token
	dave := a.login("dave", "dave's long password").Token
	erin := a.login("erin", "erin's long password").Token

	a.as(carol, natsapi.SubjectOrgsGet, `{"org":"acme"}`).ok(t, nil)
	a.as(erin, natsapi.SubjectOrgsGet, `{"org":"acme"}`).problem(t, 404, domain.CodeNotFound)
	a.as(erin, natsapi.SubjectOrgsList, "").ok(t, &orgs)
	if len(orgs.Orgs) != 1 || orgs.Orgs[0].ID != "other" {
		t.Errorf("erin's orgs = %+v", orgs)
	}
	a.as(carol, natsapi.SubjectUsersGet, `{"user":"carol"}`).ok(t, nil)
	a.as(carol, natsapi.SubjectUsersGet, `{"user":"dave"}`).problem(t, 404, domain.CodeNotFound)

	// carol registers crm in acme and becomes its admin.
	var acc projections.AppAccessView
	a.as(carol, natsapi.SubjectAppsRegister, `{"app":"crm","org":"acme"}`).ok(t, &acc)
	if acc.App != "crm" || acc.Org != "acme" || !slices.Equal(acc.Admins, []string{"carol"}) {
		t.Errorf("app access = %+v", acc)
	}
	var b projections.BackupView
	a.as(carol, natsapi.SubjectBackupsCreate, `{"app":"crm","name":"first"}`).ok(t, &b)
	if b.CreatedBy != "carol" {
		t.Errorf("created_by = %q, want the authenticated user", b.CreatedBy)
	}
	// No command creates an app, the server administrator's neither: it
	// registers it first.
	a.request(natsapi.SubjectBackupsCreate, `{"app":"erp","name":"the admin's app"}`).problem(t, 404, domain.CodeNotFound) // alice
	a.request(natsapi.SubjectAppsAdminsGet, `{"app":"erp"}`).problem(t, 404, domain.CodeNotFound)
	a.request(natsapi.SubjectAppsRegister, natsapi.RegisterAppRequest{App: "erp", Org: "other"}).ok(t, &acc)
	if acc.App != "erp" || acc.Org != "other" || len(acc.Admins) != 0 {
		t.Errorf("the administrator's app access = %+v", acc)
	}
	a.request(natsapi.SubjectBackupsCreate, `{"app":"erp","name":"the admin's app"}`).ok(t, nil)

	// Others see nothing of crm: not_found, not permission_denied.
	for _, tok := range []string{dave, erin} {
		a.as(tok, natsapi.SubjectBackupsList, `{"app":"crm"}`).problem(t, 404, domain.CodeNotFound)
		a.as(tok, natsapi.SubjectBackupsCreate, `{"app":"crm"}`).problem(t, 404, domain.CodeNotFound)
		a.as(tok, natsapi.SubjectAppsAdminsGet, `{"app":"crm"}`).problem(t, 404, domain.CodeNotFound)
		var list projections.BackupList
		a.as(tok, natsapi.SubjectBackupsAll, "").ok(t, &list)
		if len(list.Backups) != 0 {
			t.Errorf("backups.all shows %d backups to a non-admin", len(list.Backups))
		}
	}
	var list projections.BackupList
	a.as(carol, natsapi.SubjectBackupsAll, "").ok(t, &list)
	if len(list.Backups) != 1 || list.Backups[0].App != "crm" {
		t.Errorf("carol's list: %+v", list.Backups)
	}

	// Only members can be granted; then dave administers crm.
	a.as(carol, natsapi.SubjectAppsAdminsGrant, `{"app":"crm","user":"erin"}`).problem(t, 400, domain.CodeInvalidArgument)
	a.as(dave, natsapi.SubjectAppsAdminsGrant, `{"app":"crm","user":"dave"}`).problem(t, 404, domain.CodeNotFound)
	var ch natsapi.AdminChange
	a.as(carol, natsapi.SubjectAppsAdminsGrant, `{"app":"crm","user":"dave"}`).ok(t, &ch)
	if ch != (natsapi.AdminChange{App: "crm", User: "dave", Admin: true}) {
		t.Errorf("grant answered %+v", ch)
	}
	a.as(dave, natsapi.SubjectBackupsList, `{"app":"crm"}`).ok(t, nil)
	a.as(dave, natsapi.SubjectAppsAdminsGet, `{"app":"crm"}`).ok(t, &acc)
	if !slices.Equal(acc.Admins, []string{"carol", "dave"}) {
		t.Errorf("admins = %v", acc.Admins)
	}
	a.as(erin, natsapi.SubjectAppsRegister, `{"app":"crm","org":"other"}`).problem(t, 404, domain.CodeNotFound)
	a.request(natsapi.SubjectAppsRegister, `{"app":"crm","org":"other"}`).problem(t, 409, domain.CodeAlreadyExists) // the administrator
	a.as(carol, natsapi.SubjectAppsAdminsRevoke, `{"app":"crm","user":"dave"}`).ok(t, &ch)
	if ch.Admin {
		t.Errorf("revoke answered %+v", ch)
	}
	a.as(dave, natsapi.SubjectBackupsList, `{"app":"crm"}`).problem(t, 404, domain.CodeNotFound)

	// Only the server administrator manages organisations and users.
	for _, req := range [][2]string{
		{natsapi.SubjectOrgsCreate, `{"id":"x"}`},
		{natsapi.SubjectUsersCreate, `{"id":"x","name":"X","password":"long enough password"}`},
		{natsapi.SubjectOrgsMembersAdd, `{"org":"acme","user":"erin"}`},
		{natsapi.SubjectOrgsMembersRemove, `{"org":"acme","user":"dave"}`},
		{natsapi.SubjectUsersDisable, `{"user":"dave","disabled":true}`},
		{natsapi.SubjectUsersList, ""},
	} {
		a.as(carol, req[0], req[1]).problem(t, 403, domain.CodePermissionDenied)
	}

	// Who am I.
	var me projections.MeView
	a.as(carol, natsapi.SubjectMe, "").ok(t, &me)
	if me.ID != "carol" || me.Admin || me.Name != "CAROL" || !slices.Equal(me.Apps, []string{"crm"}) || !slices.Equal(me.Orgs, []string{"acme"}) {
		t.Errorf("me = %+v", me)
	}
	a.request(natsapi.SubjectMe, "").ok(t, &me)
	if me.ID != "alice" || !me.Admin || !slices.Equal(me.Apps, []string{"crm", "erp"}) || !slices.Equal(me.Orgs, []string{"acme", "other"}) {
		t.Errorf("alice's me = %+v", me)
	}

	// API tokens: shown once, listed without the secret, revoked at once.
	var tok projections.NewTokenView
	exp := a.st.Clock.Now().Add(24 * time.Hour)
	a.as(carol, natsapi.SubjectTokensCreate, natsapi.CreateTokenRequest{Name: "ci", ExpiresAt: &exp}).ok(t, &tok)
	if !strings.HasPrefix(tok.Token, "bl_") || tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(exp) || tok.Kind != domain.TokenAPI || tok.User != "carol" {
		t.Fatalf("new token = %+v", tok)
	}
	a.as(tok.Token, natsapi.SubjectBackupsList, `{"app":"crm"}`).ok(t, nil)
	var tokens natsapi.TokenList
	r = a.as(carol, natsapi.SubjectTokensList, "").ok(t, &tokens)
	if bytes.Contains(r.msg.Data, []byte(tok.Token)) || len(tokens.Tokens) != 1 || tokens.Tokens[0].ID != tok.ID {
		t.Errorf("token list: %s", r.msg.Data)
	}
	a.as(dave, natsapi.SubjectTokensRevoke, natsapi.TokenRequest{ID: tok.ID}).problem(t, 404, domain.CodeNotFound)
	var rev natsapi.TokenRevoked
	a.as(carol, natsapi.SubjectTokensRevoke, natsapi.TokenRequest{ID: tok.ID}).ok(t, &rev)
	if rev != (natsapi.TokenRevoked{ID: tok.ID, Revoked: true}) {
		t.Errorf("revoke answered %+v", rev)
	}
	a.as(tok.Token, natsapi.SubjectBackupsList, `{"app":"crm"}`).problem(t, 401, domain.CodeUnauthenticated)
	a.st.Clock.Advance(25 * time.Hour) // sessions last 12 hours
	a.as(carol, natsapi.SubjectMe, "").problem(t, 401, domain.CodeUnauthenticated)
	carolSession := a.login("carol", carolPW)
	carol = carolSession.Token

	// Ending the session revokes the token it was made with.
	a.as(carol, natsapi.SubjectSessionsEnd, "").ok(t, &rev)
	if rev != (natsapi.TokenRevoked{ID: carolSession.ID, Revoked: true}) {
		t.Errorf("sessions.end answered %+v", rev)
	}
	a.as(carol, natsapi.SubjectMe, "").problem(t, 401, domain.CodeUnauthenticated)

	// A user changes its own password with the current one; the old one
	// stops working, and so do its other sessions.
	other := a.login("carol", carolPW)
	carolSession = a.login("carol", carolPW)
	carol = carolSession.Token
	const newPW = "carol's new long password"
	a.as(carol, natsapi.SubjectUsersPassword, natsapi.PasswordRequest{User: "carol", Password: newPW}).problem(t, 400, domain.CodeInvalidArgument)
	a.as(carol, natsapi.SubjectUsersPassword, natsapi.PasswordRequest{User: "carol", Password: newPW, CurrentPassword: "not carol's password"}).
		problem(t, 403, domain.CodePasswordIncorrect)
	var set projections.PasswordChangeView
	a.as(carol, natsapi.SubjectUsersPassword, natsapi.PasswordRequest{User: "carol", Password: newPW, CurrentPassword: carolPW}).ok(t, &set)
	if set.User != "carol" || !set.Changed || !slices.Equal(set.RevokedSessions, []string{other.ID}) || len(set.APITokens) != 0 {
		t.Errorf("password answered %+v, want %s revoked", set, other.ID)
	}
	a.as(other.Token, natsapi.SubjectMe, "").problem(t, 401, domain.CodeUnauthenticated)
	a.as(carol, natsapi.SubjectMe, "").ok(t, nil)
	a.as(carol, natsapi.SubjectUsersPassword, natsapi.PasswordRequest{User: "dave", Password: newPW, CurrentPassword: newPW}).problem(t, 404, domain.CodeNotFound)
	a.request(natsapi.SubjectSessionsCreate, natsapi.LoginRequest{User: "carol", Password: carolPW}, "Authorization", "").
		problem(t, 401, domain.CodeUnauthenticated)
	a.login("carol", newPW)

	// A disabled user's sessions stop at once.
	dave = a.login("dave", "dave's long password").Token
	a.request(natsapi.SubjectUsersDisable, `{"user":"dave","disabled":true}`).ok(t, &u)
	if u.ID != "dave" || !u.Disabled {
		t.Errorf("disabled user = %+v", u)
	}
	a.as(dave, natsapi.SubjectMe, "").problem(t, 401, domain.CodeUnauthenticated)

	// No password, hash or token in the logs.
	secrets := []string{carolPW, newPW, "dave's long password", "erin's long password", tok.Token, carol, dave, erin}
	for _, v := range a.st.Secrets.Values() {
		secrets = append(secrets, string(v))
	}
	logs := a.logs.String()
	if !strings.Contains(logs, natsapi.SubjectSessionsCreate) {
		t.Fatalf("the logs lack the logins:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold the secret %q", s)
		}
	}
}

// A retried identity command answers the same and changes nothing more.
func TestIdentityIdempotencyKey(t *testing.T) {
	a := newAPI(t, nil)
	var first, again projections.OrgView
	r := a.request(natsapi.SubjectOrgsCreate, `{"id":"acme","idempotency_key":"org-acme"}`).ok(t, &first)
	if r.msg.Header.Get("X-Command-Id") != "org-acme" || r.msg.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("headers %v", r.msg.Header)
	}
	before := a.st.Store.Appends()
	r = a.request(natsapi.SubjectOrgsCreate, `{"id":"acme"}`, "Idempotency-Key", "org-acme").ok(t, &again)
	if r.msg.Header.Get("Idempotent-Replayed") != "true" || again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("retry: %+v %v", again, r.msg.Header)
	}
	if n := a.st.Store.Appends(); n != before {
		t.Errorf("the retry appended %d events", n-before)
	}
}

// Wrong passwords are throttled, for a name no user has exactly as for
// a user's; every NATS client counts as one client.
func TestLoginThrottle(t *testing.T) {
	a := newAPI(t, nil)
	seedIdentity(a)
	for _, user := range []string{"carol", "nobody"} {
		wrong := `{"user":"` + user + `","password":"not the password"}`
		for range service.PairFailures {
			a.request(natsapi.SubjectSessionsCreate, wrong, "Authorization", "").problem(t, 401, domain.CodeUnauthenticated)
		}
		r := a.request(natsapi.SubjectSessionsCreate, wrong, "Authorization", "")
		if p := r.problem(t, 429, domain.CodeTooManyAttempts); p.RetryAfterSeconds != int64(service.PairBaseDelay/time.Second) {
			t.Fatalf("throttled %s: %+v", user, p)
		}
		if got := r.msg.Header.Get("Retry-After"); got != strconv.FormatInt(int64(service.PairBaseDelay/time.Second), 10) {
			t.Errorf("Retry-After %q", got)
		}
	}
	good := natsapi.LoginRequest{User: "carol", Password: carolPW}
	a.request(natsapi.SubjectSessionsCreate, good, "Authorization", "").problem(t, 429, domain.CodeTooManyAttempts)
	a.st.Clock.Advance(service.PairBaseDelay)
	a.login("carol", carolPW)
	// The login ignores an Authorization header, even a bad one.
	a.request(natsapi.SubjectSessionsCreate, good, "Authorization", "Bearer nope").ok(t, nil)

	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"unknown user", `{"user":"nobody","password":"whatever it is"}`, 401, domain.CodeUnauthenticated},
		{"no password", `{"user":"carol"}`, 400, domain.CodeInvalidArgument},
		{"unknown field", `{"user":"carol","password":"x","extra":1}`, 400, domain.CodeInvalidArgument},
		{"malformed", `{"user":`, 400, domain.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.request(natsapi.SubjectSessionsCreate, tt.body, "Authorization", "").problem(t, tt.status, tt.code)
		})
	}
}

// Refused identity commands change nothing.
func TestIdentityBadInput(t *testing.T) {
	a := newBareAPI(t, nil)
	seedIdentity(a)
	before := a.st.Store.Appends()
	tests := []struct {
		name    string
		subject string
		body    string
		kv      []string
		status  int
		code    string
	}{
		{"bad org id", natsapi.SubjectOrgsCreate, `{"id":"Bad Org"}`, nil, 400, domain.CodeInvalidArgument},
		{"org exists", natsapi.SubjectOrgsCreate, `{"id":"acme"}`, nil, 409, domain.CodeAlreadyExists},
		{"bad idempotency key", natsapi.SubjectOrgsCreate, `{"id":"x","idempotency_key":"a b"}`, nil, 400, domain.CodeInvalidArgument},
		{"short password", natsapi.SubjectUsersCreate, `{"id":"zed","name":"Z","password":"short"}`, nil, 400, domain.CodeInvalidArgument},
		{"misspelt field", natsapi.SubjectUsersCreate, `{"id":"zed","name":"Z","pasword":"long enough password"}`, nil, 400, domain.CodeInvalidArgument},
		{"user exists", natsapi.SubjectUsersCreate, `{"id":"carol","name":"C","password":"long enough password"}`, nil, 409, domain.CodeAlreadyExists},
		{"user by a non-admin", natsapi.SubjectUsersCreate, `{"id":"zed","name":"Z","password":"long enough password"}`,
			[]string{"Authorization", "Bearer eve-token"}, 403, domain.CodePermissionDenied},
		{"unknown org", natsapi.SubjectOrgsMembersAdd, `{"org":"nope","user":"carol"}`, nil, 404, domain.CodeNotFound},
		{"unknown member", natsapi.SubjectOrgsMembersAdd, `{"org":"acme","user":"nobody"}`, nil, 404, domain.CodeNotFound},
		{"unknown org get", natsapi.SubjectOrgsGet, `{"org":"nope"}`, nil, 404, domain.CodeNotFound},
		{"unknown user get", natsapi.SubjectUsersGet, `{"user":"nobody"}`, nil, 404, domain.CodeNotFound},
		{"register without org", natsapi.SubjectAppsRegister, `{"app":"crm"}`, nil, 400, domain.CodeInvalidArgument},
		{"register bad app", natsapi.SubjectAppsRegister, `{"app":"CRM","org":"acme"}`, nil, 400, domain.CodeInvalidArgument},
		{"register unknown org", natsapi.SubjectAppsRegister, `{"app":"crm","org":"nope"}`, nil, 404, domain.CodeNotFound},
		{"grant on unregistered app", natsapi.SubjectAppsAdminsGrant, `{"app":"crm","user":"carol"}`, nil, 404, domain.CodeNotFound},
		{"disable without disabled", natsapi.SubjectUsersDisable, `{"user":"carol"}`, nil, 400, domain.CodeInvalidArgument},
		{"disable unknown user", natsapi.SubjectUsersDisable, `{"user":"nobody","disabled":true}`, nil, 404, domain.CodeNotFound},
		{"short new password", natsapi.SubjectUsersPassword, `{"user":"carol","password":"short"}`, nil, 400, domain.CodeInvalidArgument},
		{"token for the admin", natsapi.SubjectTokensCreate, `{"name":"x"}`, nil, 403, domain.CodePermissionDenied}, // alice has admin.token
		{"unknown token", natsapi.SubjectTokensRevoke, `{"id":"nope"}`, nil, 404, domain.CodeNotFound},
		{"end a fixed token", natsapi.SubjectSessionsEnd, `{}`, nil, 400, domain.CodeInvalidArgument},
		{"no token", natsapi.SubjectMe, ``, []string{"Authorization", ""}, 401, domain.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := a.request(tt.subject, tt.body, tt.kv...).problem(t, tt.status, tt.code)
			if p.Instance != tt.subject {
				t.Errorf("instance %q", p.Instance)
			}
		})
	}
	if n := a.st.Store.Appends(); n != before {
		t.Errorf("refused identity commands appended %d events", n-before)
	}
	if _, err := a.st.Secrets.Secret(t.Context(), "password.zed"); err == nil {
		t.Error("a refused user's password was stored")
	}
}

// Without an Identity, the server administrator alone works: the identity
// endpoints answer unavailable, me still answers.
func TestIdentityEndpointsWithoutIdentity(t *testing.T) {
	a := newAPI(t, func(d *deps) { d.Identity = nil })
	a.request(natsapi.SubjectOrgsCreate, `{"id":"acme"}`).problem(t, 503, domain.CodeUnavailable)
	a.request(natsapi.SubjectSessionsCreate, `{"user":"carol","password":"x"}`, "Authorization", "").problem(t, 503, domain.CodeUnavailable)
	var me projections.MeView
	a.request(natsapi.SubjectMe, "").ok(t, &me)
	if me.ID != "alice" || !me.Admin {
		t.Errorf("me = %+v", me)
	}
}

// Leaving an organisation ends one's admin grants on its apps; passwords
// are hashed whole, up to 1,024 bytes.
func TestMemberRemovalAndLongPasswords(t *testing.T) {
	a := newBareAPI(t, nil)
	seedIdentity(a)
	carol := a.login("carol", carolPW).Token
	a.as(carol, natsapi.SubjectAppsRegister, `{"app":"crm","org":"acme"}`).ok(t, nil)
	a.as(carol, natsapi.SubjectAppsAdminsGrant, `{"app":"crm","user":"dave"}`).ok(t, nil)
	dave := a.login("dave", "dave's long password").Token
	a.as(dave, natsapi.SubjectBackupsList, `{"app":"crm"}`).ok(t, nil)
	a.request(natsapi.SubjectOrgsMembersRemove, `{"org":"acme","user":"dave"}`).ok(t, nil)
	a.request(natsapi.SubjectOrgsMembersAdd, `{"org":"acme","user":"dave"}`).ok(t, nil)
	a.as(dave, natsapi.SubjectBackupsList, `{"app":"crm"}`).problem(t, 404, domain.CodeNotFound)

	long := strings.Repeat("correct horse battery staple ", 4) // 116 bytes
	a.request(natsapi.SubjectUsersCreate, natsapi.CreateUserRequest{ID: "zoe", Name: "Z", Password: long}).ok(t, nil)
	a.login("zoe", long)
	a.request(natsapi.SubjectSessionsCreate, natsapi.LoginRequest{User: "zoe", Password: long[:72] + "something else"}, "Authorization", "").
		problem(t, 401, domain.CodeUnauthenticated)
	a.request(natsapi.SubjectUsersCreate, natsapi.CreateUserRequest{ID: "yan", Name: "Y", Password: strings.Repeat("x", domain.MaxPasswordLen+1)}).
		problem(t, 400, domain.CodeInvalidArgument)
}
