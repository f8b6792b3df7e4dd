package domain_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
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
		return nil, fmt.Errorf("secret %s: %w", key, domain.ErrNoSecret)
	}
	return v, nil
}

// fakeHasher "hashes" by prefixing; the real one is bcrypt.
type fakeHasher struct{}

func (fakeHasher) HashPassword(pw string) ([]byte, error) { return []byte("hash:" + pw), nil }
func (fakeHasher) PasswordMatches(h []byte, pw string) bool {
	return string(h) == "hash:"+pw
}

type identityRig struct {
	id      *domain.Identity
	stream  *fakeStream
	secrets *fakeSecrets
	clock   *fakeClock
	admin   domain.Principal
}

func newIdentityRig(t *testing.T) *identityRig {
	t.Helper()
	s := newFakeStream()
	r := &identityRig{stream: s, secrets: &fakeSecrets{m: map[string][]byte{}}, clock: newClock(t0),
		admin: domain.Principal{ID: "admin", Admin: true}}
	var err error
	r.id, err = domain.NewIdentity(s, &fakeDirView{s: s}, r.secrets, fakeHasher{}, r.clock, &fakeIDs{}, domain.IdentityConfig{}, nil)
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
	wantIdentityCode(t, err, domain.CodeAlreadyExists)
	_, err = r.id.Execute(ctx, carol, domain.RegisterApp{App: "erp", Org: "acme"}, domain.Meta{})
	wantIdentityCode(t, err, domain.CodeNotFound) // not a member: the org is not shown
	r.must(t, alice, domain.SetAdmin{App: "crm", User: "bob", Admin: true})
	check(bob, true)

	// Leaving the organisation, or being disabled, ends the rights.
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "bob", Member: false})
	check(bob, false)
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

func TestIdentityLoginAndLockout(t *testing.T) {
	r := newIdentityRig(t)
	ctx := t.Context()
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
	// Unknown users and wrong passwords look alike; only the latter are
	// recorded.
	before := r.stream.len()
	if _, err := r.id.Login(ctx, "nobody", good, domain.Meta{}); domain.Code(err) != domain.CodeUnauthenticated {
		t.Fatalf("unknown user: %v", err)
	}
	if r.stream.len() != before {
		t.Error("a login of an unknown user was recorded")
	}
	alice := domain.Principal{ID: "alice"}
	for i := 1; i < domain.LockoutFailures; i++ {
		r.clock.Advance(time.Minute)
		if i%2 == 0 {
			_, err = r.id.Login(ctx, "alice", "wrong password!", domain.Meta{})
			wantIdentityCode(t, err, domain.CodeUnauthenticated)
		} else {
			wantIdentityCode(t, r.id.VerifyPassword(ctx, alice, "wrong password!", "restore"), domain.CodePasswordIncorrect)
		}
	}
	r.clock.Advance(time.Minute)
	err = r.id.VerifyPassword(ctx, alice, "wrong password!", "restore")
	wantIdentityCode(t, err, domain.CodePasswordLocked)
	until := t0.Add(time.Duration(domain.LockoutFailures)*time.Minute + domain.LockoutDuration)
	if !strings.Contains(err.Error(), until.Format(time.RFC3339)) {
		t.Errorf("lockout error %q does not say when it ends (%s)", err, until)
	}
	// Locked: even the right password is refused, until the end.
	if _, err := r.id.Login(ctx, "alice", good, domain.Meta{}); domain.Code(err) != domain.CodePasswordLocked {
		t.Errorf("login while locked: %v", err)
	}
	r.clock.Set(until)
	if err := r.id.VerifyPassword(ctx, alice, good, "restore"); err != nil {
		t.Errorf("after the lockout: %v", err)
	}
	if got := r.stream.types(domain.IdentityStream); strings.Count(strings.Join(got, " "), domain.TypePasswordFailed) != domain.LockoutFailures {
		t.Errorf("events %v, want %d password failures", got, domain.LockoutFailures)
	}
	// Failures older than the window do not count.
	for range domain.LockoutFailures - 1 {
		wantIdentityCode(t, r.id.VerifyPassword(ctx, alice, "wrong password!", "restore"), domain.CodePasswordIncorrect)
	}
	r.clock.Advance(domain.LockoutWindow + time.Second)
	wantIdentityCode(t, r.id.VerifyPassword(ctx, alice, "wrong password!", "restore"), domain.CodePasswordIncorrect)
	// A new password ends a lockout.
	if _, err := r.id.ChangePassword(ctx, alice, domain.ChangePassword{User: "alice", Password: "a brand new password"}, domain.Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := r.id.VerifyPassword(ctx, alice, "a brand new password", "restore"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, err := r.id.ChangePassword(ctx, domain.Principal{ID: "bob"}, domain.ChangePassword{User: "alice", Password: "another long password"}, domain.Meta{}); domain.Code(err) != domain.CodePermissionDenied {
		t.Errorf("bob changed alice's password: %v", err)
	}
	assertNoSecretsInStream(t, r, good, "a brand new password", sess.Secret)
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
