package service_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// fakeDirView folds the identity events of a fake stream; every read
// catches up first.
type fakeDirView struct {
	mu     sync.Mutex
	s      *fakeStream
	dir    domain.Directory
	folded int
}

func (v *fakeDirView) catchUp() {
	for _, m := range v.s.snapshot()[v.folded:] {
		if m.app == domain.IdentityStream {
			v.dir.Apply(m.seq, m.body)
		}
		v.folded++
	}
}

func (v *fakeDirView) ReadDirectory(fn func(d *domain.Directory)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.catchUp()
	fn(&v.dir)
}

func (v *fakeDirView) WaitApplied(context.Context, uint64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.catchUp()
	return nil
}

type fakeSecrets struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *fakeSecrets) PutSecret(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = bytes.Clone(value)
	return nil
}

func (s *fakeSecrets) Secret(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, fmt.Errorf("secret %s: %w", key, service.ErrNoSecret)
	}
	return v, nil
}

// fakeHasher "hashes" by prefixing; the real one is Argon2id. An "old:"
// hash (an older algorithm) matches too, and needs a rehash.
type fakeHasher struct{}

func (fakeHasher) HashPassword(pw string) ([]byte, error) { return []byte("hash:" + pw), nil }
func (fakeHasher) PasswordMatches(h []byte, pw string) bool {
	return string(h) == "hash:"+pw || string(h) == "old:"+pw
}
func (fakeHasher) NeedsRehash(h []byte) bool { return !bytes.HasPrefix(h, []byte("hash:")) }

// fakeUsage says which app ids have events or configuration.
type fakeUsage struct {
	mu             sync.Mutex
	events, config map[string]bool
}

func (u *fakeUsage) HasEvents(app string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.events[app]
}

func (u *fakeUsage) HasConfig(_ context.Context, app string) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.config[app], nil
}

type identityRig struct {
	id      *service.Identity
	stream  *fakeStream
	secrets *fakeSecrets
	clock   *fakeClock
	usage   *fakeUsage
	admin   domain.Principal
}

func newIdentityRig(t *testing.T) *identityRig {
	t.Helper()
	s := newFakeStream()
	r := &identityRig{stream: s, secrets: &fakeSecrets{m: map[string][]byte{}}, clock: newClock(t0),
		usage: &fakeUsage{events: map[string]bool{}, config: map[string]bool{}},
		admin: domain.Principal{ID: "admin", Admin: true}}
	var err error
	r.id, err = service.NewIdentity(s, &fakeDirView{s: s}, r.secrets, fakeHasher{}, r.clock, &fakeIDs{}, service.IdentityConfig{Apps: r.usage}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *identityRig) must(t *testing.T, p domain.Principal, cmd domain.IdentityCommand) domain.IdentityResult {
	t.Helper()
	res, err := r.id.Execute(t.Context(), p, cmd, domain.Meta{})
	if err != nil {
		t.Fatalf("%T %+v by %s: %v", cmd, cmd, p.ID, err)
	}
	return res
}

func (r *identityRig) user(t *testing.T, id string) {
	t.Helper()
	if _, err := r.id.CreateUser(t.Context(), r.admin, domain.CreateUser{ID: id, Name: strings.ToUpper(id), Email: id + "@example.com",
		Password: id + "-correct-horse"}, domain.Meta{}); err != nil {
		t.Fatal(err)
	}
}

func wantIdentityCode(t *testing.T, err error, code string) {
	t.Helper()
	if domain.Code(err) != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

// The seed rule: only an app's admins, members of its organisation, may
// act on it; the server administrator may act on every app.
func TestIdentityAdministers(t *testing.T) {
	r := newIdentityRig(t)
	ctx := t.Context()
	r.must(t, r.admin, domain.CreateOrg{ID: "acme", Name: "ACME"})
	r.must(t, r.admin, domain.CreateOrg{ID: "other"})
	for _, u := range []string{"alice", "bob", "carol"} {
		r.user(t, u)
	}
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "alice", Member: true})
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "bob", Member: true})
	r.must(t, r.admin, domain.SetMember{Org: "other", User: "carol", Member: true})
	alice, bob, carol := domain.Principal{ID: "alice"}, domain.Principal{ID: "bob"}, domain.Principal{ID: "carol"}

	// A member registers an app and becomes its admin; others see nothing.
	r.must(t, alice, domain.RegisterApp{App: "crm", Org: "acme"})
	check := func(p domain.Principal, want bool) {
		t.Helper()
		if got := r.id.Visible(p, "crm"); got != want {
			t.Errorf("Visible(%s, crm) = %v, want %v", p.ID, got, want)
		}
	}
	check(r.admin, true)
	check(alice, true)
	check(bob, false)
	check(carol, false)

	// Only members of the app's organisation can be granted; only admins
	// of the app may grant, and others learn nothing of the app.
	_, err := r.id.Execute(ctx, alice, domain.SetAdmin{App: "crm", User: "carol", Admin: true}, domain.Meta{})
	wantIdentityCode(t, err, domain.CodeInvalidArgument)
	_, err = r.id.Execute(ctx, bob, domain.SetAdmin{App: "crm", User: "bob", Admin: true}, domain.Meta{})
	wantIdentityCode(t, err, domain.CodeNotFound)
	_, err = r.id.Execute(ctx, carol, domain.RegisterApp{App: "crm", Org: "other"}, domain.Meta{})
	wantIdentityCode(t, err, domain.CodeNotFound)
	// A member of the app's organisation who does not administer it
	// learns nothing of it either (not its admins).
	_, err = r.id.Execute(ctx, bob, domain.RegisterApp{App: "crm", Org: "acme"}, domain.Meta{})
	wantIdentityCode(t, err, domain.CodeNotFound)
	if res := r.must(t, alice, domain.RegisterApp{App: "crm", Org: "acme"}); res.Seq != 0 {
		t.Errorf("registering crm again by its admin appended seq %d", res.Seq)
	}
	_, err = r.id.Execute(ctx, carol, domain.RegisterApp{App: "erp", Org: "acme"}, domain.Meta{})
	wantIdentityCode(t, err, domain.CodeNotFound) // not a member: the org is not shown
	r.must(t, alice, domain.SetAdmin{App: "crm", User: "bob", Admin: true})
	check(bob, true)

	// Leaving the organisation, or being disabled, ends the rights; and
	// rejoining does not bring the grants back.
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "bob", Member: false})
	check(bob, false)
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "bob", Member: true})
	check(bob, false)
	r.id.Read(func(d *domain.Directory) {
		if a, _ := d.App("crm"); a.Admins["bob"] {
			t.Error("bob is still among crm's admins after leaving acme and rejoining")
		}
	})
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "bob", Member: false})
	r.must(t, r.admin, domain.SetUserDisabled{User: "alice", Disabled: true})
	check(alice, false)
	r.must(t, r.admin, domain.SetUserDisabled{User: "alice", Disabled: false})
	check(alice, true)
	r.must(t, alice, domain.SetAdmin{App: "crm", User: "alice", Admin: false})
	check(alice, false)

	// Only the server administrator manages organisations and users.
	for _, cmd := range []domain.IdentityCommand{
		domain.CreateOrg{ID: "x"},
		domain.CreateUser{ID: "x", Name: "X", Password: "long enough password"},
		domain.SetMember{Org: "acme", User: "alice", Member: true},
		domain.SetUserDisabled{User: "bob", Disabled: true},
	} {
		_, err := r.id.Execute(ctx, alice, cmd, domain.Meta{})
		wantIdentityCode(t, err, domain.CodePermissionDenied)
	}
	var apps []string
	r.id.Read(func(d *domain.Directory) { apps = d.AdministeredApps("bob") })
	if len(apps) != 0 {
		t.Errorf("bob administers %v after leaving the organisation", apps)
	}
}

func TestIdentityRejectsBadInputAndChangesNothing(t *testing.T) {
	r := newIdentityRig(t)
	r.must(t, r.admin, domain.CreateOrg{ID: "acme"})
	r.user(t, "alice")
	before := r.stream.len()
	for _, tc := range []struct {
		cmd  domain.IdentityCommand
		code string
	}{
		{domain.CreateOrg{ID: "Bad Id"}, domain.CodeInvalidArgument},
		{domain.CreateOrg{ID: "acme"}, domain.CodeAlreadyExists},
		{domain.CreateUser{ID: "bob", Name: "Bob", Password: "short"}, domain.CodeInvalidArgument},
		{domain.CreateUser{ID: "bob", Name: "Bob", Email: "not an address", Password: "long enough password"}, domain.CodeInvalidArgument},
		{domain.CreateUser{ID: "admin", Name: "A", Password: "long enough password"}, domain.CodeInvalidArgument},
		{domain.CreateUser{ID: "alice", Name: "A", Password: "long enough password"}, domain.CodeAlreadyExists},
		{domain.SetMember{Org: "nope", User: "alice", Member: true}, domain.CodeNotFound},
		{domain.SetMember{Org: "acme", User: "nope", Member: true}, domain.CodeNotFound},
		{domain.RegisterApp{App: "Bad!", Org: "acme"}, domain.CodeInvalidArgument},
		{domain.RegisterApp{App: "crm", Org: "nope"}, domain.CodeNotFound},
		{domain.SetAdmin{App: "nope", User: "alice", Admin: true}, domain.CodeNotFound},
	} {
		var err error
		if c, ok := tc.cmd.(domain.CreateUser); ok {
			_, err = r.id.CreateUser(t.Context(), r.admin, c, domain.Meta{})
		} else {
			_, err = r.id.Execute(t.Context(), r.admin, tc.cmd, domain.Meta{})
		}
		if domain.Code(err) != tc.code {
			t.Errorf("%T %+v: err = %v, want %s", tc.cmd, tc.cmd, err, tc.code)
		}
	}
	if n := r.stream.len(); n != before {
		t.Errorf("refused commands appended %d events", n-before)
	}
	if _, ok := r.secrets.m["password.bob"]; ok {
		t.Error("a refused user's password was stored")
	}
	// Already so: no event.
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "alice", Member: true})
	n := r.stream.len()
	if res := r.must(t, r.admin, domain.SetMember{Org: "acme", User: "alice", Member: true}); res.Seq != 0 || r.stream.len() != n {
		t.Errorf("a membership that exists appended again: %+v", res)
	}
	// A retried command answers its first result.
	m := domain.Meta{CommandID: "retry-1"}
	first, err := r.id.Execute(t.Context(), r.admin, domain.CreateOrg{ID: "beta"}, m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.id.Execute(t.Context(), r.admin, domain.CreateOrg{ID: "beta"}, m)
	if err != nil || !again.Duplicate || again.Seq != first.Seq {
		t.Errorf("retry = %+v, %v; first %+v", again, err, first)
	}
}

func TestIdentityTokens(t *testing.T) {
	r := newIdentityRig(t)
	ctx := t.Context()
	r.user(t, "alice")
	r.user(t, "bob")
	alice := domain.Principal{ID: "alice"}
	tok, err := r.id.CreateToken(ctx, alice, "ci", t0.Add(time.Hour), domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Secret, "bl_") || len(tok.Secret) < 43+4 {
		t.Fatalf("token %q is not a bl_ token of 256 bits", tok.Secret)
	}
	p, err := r.id.Authenticate(ctx, tok.Secret)
	if err != nil || p.ID != "alice" || p.Admin {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	// The last character changed (to another one: a secret may end in A;
	// and to one that differs only in the unused low bits of the last
	// base64 character, which a strict decoder refuses).
	last := "A"
	if strings.HasSuffix(tok.Secret, "A") {
		last = "B"
	}
	odd := tok.Secret[:len(tok.Secret)-1] + string(tok.Secret[len(tok.Secret)-1]^1)
	for _, bad := range []string{"", "bl_", "bl_" + tok.ID, tok.Secret[:len(tok.Secret)-1] + last, odd, "xx" + tok.Secret[2:], tok.Secret + "x"} {
		if _, err := r.id.Authenticate(ctx, bad); domain.Code(err) != domain.CodeUnauthenticated {
			t.Errorf("Authenticate(%q) = %v, want unauthenticated", bad, err)
		}
	}
	// Nobody else may revoke it; its owner may, with effect at once.
	_, err = r.id.Execute(ctx, domain.Principal{ID: "bob"}, domain.RevokeToken{ID: tok.ID}, domain.Meta{})
	wantIdentityCode(t, err, domain.CodeNotFound)
	r.must(t, alice, domain.RevokeToken{ID: tok.ID})
	if _, err := r.id.Authenticate(ctx, tok.Secret); domain.Code(err) != domain.CodeUnauthenticated {
		t.Errorf("revoked token: %v", err)
	}
	// Expiry.
	tok2, err := r.id.CreateToken(ctx, alice, "short", t0.Add(time.Minute), domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Minute)
	if _, err := r.id.Authenticate(ctx, tok2.Secret); domain.Code(err) != domain.CodeUnauthenticated {
		t.Errorf("expired token: %v", err)
	}
	if _, err := r.id.CreateToken(ctx, alice, "past", t0, domain.Meta{}); domain.Code(err) != domain.CodeInvalidArgument {
		t.Errorf("token expiring in the past: %v", err)
	}
	// A disabled user's tokens stop at once.
	tok3, err := r.id.CreateToken(ctx, alice, "forever", time.Time{}, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	r.must(t, r.admin, domain.SetUserDisabled{User: "alice", Disabled: true})
	if _, err := r.id.Authenticate(ctx, tok3.Secret); domain.Code(err) != domain.CodeUnauthenticated {
		t.Errorf("token of a disabled user: %v", err)
	}
	if _, err := r.id.CreateToken(ctx, alice, "more", time.Time{}, domain.Meta{}); domain.Code(err) != domain.CodePermissionDenied {
		t.Errorf("token for a disabled user: %v", err)
	}
	assertNoSecretsInStream(t, r, tok.Secret, tok2.Secret, tok3.Secret)
}

// clientCtx is a request's context from client address addr.
func clientCtx(t *testing.T, addr string) context.Context {
	return service.WithClient(t.Context(), addr)
}

func TestIdentityLoginAndThrottle(t *testing.T) {
	r := newIdentityRig(t)
	ctx := clientCtx(t, "192.0.2.1")
	r.user(t, "alice")
	const good = "alice-correct-horse"
	sess, err := r.id.Login(ctx, "alice", good, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if sess.Kind != domain.TokenSession || !sess.ExpiresAt.Equal(t0.Add(12*time.Hour)) {
		t.Errorf("session = %+v", sess.Token)
	}
	if p, err := r.id.Authenticate(ctx, sess.Secret); err != nil || p.ID != "alice" {
		t.Fatalf("session token: %+v, %v", p, err)
	}
	// Unknown users and wrong passwords look alike, throttled alike;
	// only a user's wrong passwords are recorded.
	before := r.stream.len()
	attacker := clientCtx(t, "198.51.100.7")
	answers := map[string][]string{}
	for _, name := range []string{"nobody", "alice"} {
		for range service.PairFailures + 1 {
			_, err := r.id.Login(attacker, name, "wrong password!", domain.Meta{})
			answers[name] = append(answers[name], domain.Code(err))
		}
	}
	want := []string{domain.CodeUnauthenticated, domain.CodeUnauthenticated, domain.CodeUnauthenticated, domain.CodeTooManyAttempts}
	for name, got := range answers {
		if !slices.Equal(got, want) {
			t.Errorf("logins as %s: %v, want %v", name, got, want)
		}
	}
	r.id.WaitRecorded()
	if got := r.stream.len() - before; got != service.PairFailures {
		t.Errorf("%d events recorded, want %d: alice's wrong passwords alone", got, service.PairFailures)
	}
	if got := r.stream.types(domain.IdentityStream); got[len(got)-1] != domain.TypePasswordFailed {
		t.Errorf("last identity event %s", got[len(got)-1])
	}
	// The attacker's throttle is not alice's: her correct password from
	// her own address works at once, as does a wrong restore password.
	if _, err := r.id.Login(ctx, "alice", good, domain.Meta{}); err != nil {
		t.Errorf("alice's own login while an attacker is throttled: %v", err)
	}
	alice := domain.Principal{ID: "alice"}
	wantIdentityCode(t, r.id.VerifyPassword(ctx, alice, "wrong password!", "restore"), domain.CodePasswordIncorrect)
	// The attacker waits, doubling, then may try again.
	_, err = r.id.Login(attacker, "alice", good, domain.Meta{})
	wantIdentityCode(t, err, domain.CodeTooManyAttempts)
	if e, ok := err.(*domain.Error); !ok || e.RetryAfter != service.PairBaseDelay {
		t.Errorf("retry after %v, want %v", err, service.PairBaseDelay)
	}
	r.clock.Advance(service.PairBaseDelay)
	if _, err := r.id.Login(attacker, "alice", good, domain.Meta{}); err != nil {
		t.Errorf("after the delay: %v", err)
	}
	wantIdentityCode(t, r.id.VerifyPassword(attacker, alice, "wrong password!", "restore"), domain.CodePasswordIncorrect)
	wantIdentityCode(t, r.id.VerifyPassword(attacker, alice, good, "restore"), domain.CodeTooManyAttempts)
	r.id.WaitRecorded()
	assertNoSecretsInStream(t, r, good, sess.Secret)
}

// A stolen session does not become the account: changing one's password
// needs the current one (a wrong one is throttled like a login's), ends
// every other session, keeps API tokens, and does not end a throttle;
// the server administrator's reset does.
func TestIdentityChangePassword(t *testing.T) {
	r := newIdentityRig(t)
	ctx := clientCtx(t, "192.0.2.1")
	r.user(t, "alice")
	const good = "alice-correct-horse"
	s1, err := r.id.Login(ctx, "alice", good, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r.id.Login(ctx, "alice", good, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	alice := domain.Principal{ID: "alice", TokenID: s1.ID}
	api, err := r.id.CreateToken(ctx, alice, "ci", time.Time{}, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}

	before := r.stream.len()
	for _, c := range []domain.ChangePassword{
		{User: "alice", Password: "a brand new password"},                             // no current password
		{User: "alice", Password: "a brand new password", Current: "wrong password!"}, // a wrong one
		{User: "alice", Password: "short", Current: good},                             // too short
		{User: "alice", Password: strings.Repeat("x", domain.MaxPasswordLen+1), Current: good},
	} {
		if _, err := r.id.ChangePassword(ctx, alice, c, domain.Meta{}); err == nil {
			t.Errorf("change %+v accepted", c)
		}
	}
	r.id.WaitRecorded()
	if got := r.stream.types(domain.IdentityStream)[before:]; !slices.Equal(got, []string{domain.TypePasswordFailed}) {
		t.Errorf("refused changes appended %v, want the one wrong password", got)
	}
	if err := r.id.VerifyPassword(ctx, alice, good, "restore"); err != nil {
		t.Fatalf("the old password after refused changes: %v", err)
	}

	res, err := r.id.ChangePassword(ctx, alice, domain.ChangePassword{User: "alice", Password: "a brand new password", Current: good}, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.RevokedSessions, []string{s2.ID}) || len(res.APITokens) != 1 || res.APITokens[0].ID != api.ID {
		t.Errorf("change: revoked %v, api tokens %+v; want %s revoked, %s kept", res.RevokedSessions, res.APITokens, s2.ID, api.ID)
	}
	for tok, want := range map[string]bool{s1.Secret: true, s2.Secret: false, api.Secret: true} {
		if _, err := r.id.Authenticate(ctx, tok); (err == nil) != want {
			t.Errorf("token %.12s… after the change: %v, want working %v", tok, err, want)
		}
	}
	if err := r.id.VerifyPassword(ctx, alice, "a brand new password", "restore"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, err := r.id.ChangePassword(ctx, domain.Principal{ID: "bob"}, domain.ChangePassword{User: "alice", Password: "another long password", Current: "x"}, domain.Meta{}); domain.Code(err) != domain.CodePermissionDenied {
		t.Errorf("bob changed alice's password: %v", err)
	}

	// Throttled from an address: the user's own change does not end it,
	// the administrator's reset does.
	thief := clientCtx(t, "198.51.100.7")
	for range service.PairFailures {
		_, _ = r.id.Login(thief, "alice", "wrong password!", domain.Meta{})
	}
	if _, err := r.id.Login(thief, "alice", "a brand new password", domain.Meta{}); domain.Code(err) != domain.CodeTooManyAttempts {
		t.Fatalf("throttled login: %v", err)
	}
	if _, err := r.id.ChangePassword(ctx, alice, domain.ChangePassword{User: "alice", Password: "a third long password", Current: "a brand new password"}, domain.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.id.Login(thief, "alice", "a third long password", domain.Meta{}); domain.Code(err) != domain.CodeTooManyAttempts {
		t.Errorf("the user's own change ended the throttle: %v", err)
	}
	res, err = r.id.ChangePassword(ctx, r.admin, domain.ChangePassword{User: "alice", Password: "the admin's reset pw"}, domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.RevokedSessions, []string{s1.ID}) {
		t.Errorf("the administrator's reset revoked %v, want every session (%s)", res.RevokedSessions, s1.ID)
	}
	if _, err := r.id.Login(thief, "alice", "the admin's reset pw", domain.Meta{}); err != nil {
		t.Errorf("after the administrator's reset: %v", err)
	}
	r.id.WaitRecorded()
	assertNoSecretsInStream(t, r, good, "a brand new password", "a third long password", s1.Secret, s2.Secret, api.Secret)
}

// A hash of an older algorithm is made again at the next successful
// password check.
func TestIdentityRehashesAtLogin(t *testing.T) {
	r := newIdentityRig(t)
	ctx := clientCtx(t, "192.0.2.1")
	r.user(t, "alice")
	r.secrets.m["password.alice"] = []byte("old:legacy long password")
	if _, err := r.id.Login(ctx, "alice", "wrong password!", domain.Meta{}); domain.Code(err) != domain.CodeUnauthenticated {
		t.Fatalf("wrong password: %v", err)
	}
	if got := string(r.secrets.m["password.alice"]); got != "old:legacy long password" {
		t.Errorf("a wrong password rehashed: %q", got)
	}
	if _, err := r.id.Login(ctx, "alice", "legacy long password", domain.Meta{}); err != nil {
		t.Fatal(err)
	}
	if got := string(r.secrets.m["password.alice"]); got != "hash:legacy long password" {
		t.Errorf("hash after login %q, want it made again", got)
	}
	if _, err := r.id.Login(ctx, "alice", "legacy long password", domain.Meta{}); err != nil {
		t.Errorf("login with the rehashed password: %v", err)
	}
	r.id.WaitRecorded()
}

// assertNoSecretsInStream checks that no secret, and no stored hash, is in
// any event.
func assertNoSecretsInStream(t *testing.T, r *identityRig, secrets ...string) {
	t.Helper()
	for k, v := range r.secrets.m {
		secrets = append(secrets, string(v))
		_ = k
	}
	for _, m := range r.stream.snapshot() {
		for _, s := range secrets {
			if s != "" && bytes.Contains(m.body, []byte(s)) {
				t.Errorf("event %d (%s) holds a secret", m.seq, m.typ)
			}
		}
		if bytes.Contains(m.body, []byte("hash:")) {
			t.Errorf("event %d (%s) holds a password hash", m.seq, m.typ)
		}
	}
}

// An app exists only once registered: no one, the server administrator
// neither, acts on an unregistered id; a member registers only an id that
// was never used, so that no one takes over an app and its data; the
// server administrator moves an app from before registration into an
// organisation.
func TestIdentityRegistersOnlyUnusedApps(t *testing.T) {
	r := newIdentityRig(t)
	ctx := t.Context()
	r.must(t, r.admin, domain.CreateOrg{ID: "acme"})
	r.user(t, "alice")
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "alice", Member: true})
	alice := domain.Principal{ID: "alice"}
	r.usage.events["legacy"] = true     // backups from before registration
	r.usage.config["configured"] = true // configuration, no events

	for app, want := range map[string]bool{"legacy": true, "configured": false, "nosuchapp": false} {
		if got := r.id.Visible(r.admin, app); got != want {
			t.Errorf("Visible(admin, %s) = %v, want %v", app, got, want)
		}
		if r.id.Visible(alice, app) {
			t.Errorf("alice sees %s", app)
		}
	}
	before := r.stream.len()
	for _, app := range []string{"legacy", "configured"} {
		_, err := r.id.RegisterApp(ctx, alice, domain.RegisterApp{App: app, Org: "acme"}, domain.Meta{})
		wantIdentityCode(t, err, domain.CodeNotFound)
	}
	if r.stream.len() != before {
		t.Fatalf("refused registrations appended %d events", r.stream.len()-before)
	}

	// A never-used id: alice registers it and administers it.
	if _, err := r.id.RegisterApp(ctx, alice, domain.RegisterApp{App: "fresh", Org: "acme"}, domain.Meta{}); err != nil {
		t.Fatal(err)
	}
	if !r.id.Visible(alice, "fresh") || !r.id.Visible(r.admin, "fresh") {
		t.Error("fresh is not visible to its registrar and the administrator")
	}
	// The server administrator moves the old app into acme, and may
	// register an id that has configuration.
	for _, app := range []string{"legacy", "configured"} {
		if _, err := r.id.RegisterApp(ctx, r.admin, domain.RegisterApp{App: app, Org: "acme"}, domain.Meta{}); err != nil {
			t.Fatalf("admin registers %s: %v", app, err)
		}
	}
	r.id.Read(func(d *domain.Directory) {
		if a, ok := d.App("legacy"); !ok || a.Org != "acme" || len(a.Admins) != 0 {
			t.Errorf("legacy after the move: %+v", a)
		}
	})
	if !r.id.Visible(r.admin, "configured") {
		t.Error("configured is not visible once registered")
	}
	// Registered apps stay where they are.
	_, err := r.id.RegisterApp(ctx, r.admin, domain.RegisterApp{App: "fresh", Org: "acme"}, domain.Meta{})
	if err != nil {
		t.Errorf("registering fresh again: %v", err)
	}
}

// An idempotency key is bound to its request: a retry answers the first
// result; the key with another request is refused and stores nothing.
func TestIdentityKeyBoundToRequest(t *testing.T) {
	r := newIdentityRig(t)
	ctx := t.Context()
	key := domain.Meta{CommandID: "k-1", ClientKey: true}
	if _, err := r.id.CreateUser(ctx, r.admin, domain.CreateUser{ID: "alice", Name: "A", Password: "alice-correct-horse"}, key); err != nil {
		t.Fatal(err)
	}
	res, err := r.id.CreateUser(ctx, r.admin, domain.CreateUser{ID: "alice", Name: "A", Password: "alice-correct-horse"}, key)
	if err != nil || !res.Duplicate {
		t.Errorf("retry: %+v, %v", res, err)
	}
	before := r.stream.len()
	_, err = r.id.CreateUser(ctx, r.admin, domain.CreateUser{ID: "zed", Name: "Z", Password: "zed-correct-horse"}, key)
	wantIdentityCode(t, err, domain.CodeIdempotencyKeyReused)
	if _, ok := r.secrets.m["password.zed"]; ok || r.stream.len() != before {
		t.Error("a reused key stored a password or an event")
	}
	_, err = r.id.Execute(ctx, r.admin, domain.CreateOrg{ID: "acme"}, key)
	wantIdentityCode(t, err, domain.CodeIdempotencyKeyReused)

	r.must(t, r.admin, domain.CreateOrg{ID: "acme"})
	alice := domain.Principal{ID: "alice"}
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "alice", Member: true})
	if _, err := r.id.CreateToken(ctx, alice, "ci", time.Time{}, key); err != nil {
		t.Fatal(err)
	}
	_, err = r.id.CreateToken(ctx, alice, "ci", time.Time{}, key)
	wantIdentityCode(t, err, domain.CodeAlreadyExists) // its secret was shown once
	_, err = r.id.CreateToken(ctx, alice, "deploy", time.Time{}, key)
	wantIdentityCode(t, err, domain.CodeIdempotencyKeyReused)
	// (alice's k-1 was hers: the administrator's did not stop it.)
	_, err = r.id.RegisterApp(ctx, alice, domain.RegisterApp{App: "blog", Org: "acme"}, key)
	wantIdentityCode(t, err, domain.CodeIdempotencyKeyReused)
}
