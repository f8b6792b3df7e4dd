package projections

import (
	"slices"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// OrgView is an organisation in API answers.
type OrgView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Members   []string  `json:"members"`
}

// UserView is a user in API answers: never a password or its hash.
type UserView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	Orgs      []string  `json:"orgs"`
}

// AppAccessView says which organisation an app belongs to and who
// administers it.
type AppAccessView struct {
	App    string   `json:"app"`
	Org    string   `json:"org"`
	Admins []string `json:"admins"`
}

// TokenView is a token without its secret.
type TokenView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Kind      string     `json:"kind"`
	User      string     `json:"user"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	Revoked   bool       `json:"revoked"`
}

// PasswordChangeView answers a password change: the sessions it ended
// and the API tokens that still work (revoke them if one leaked).
type PasswordChangeView struct {
	User            string      `json:"user"`
	Changed         bool        `json:"changed"`
	RevokedSessions []string    `json:"revoked_sessions"`
	APITokens       []TokenView `json:"api_tokens"`
}

// PasswordChangeViewOf converts the outcome of a password change.
func PasswordChangeViewOf(user string, c domain.PasswordChange) PasswordChangeView {
	v := PasswordChangeView{User: user, Changed: true, RevokedSessions: c.RevokedSessions, APITokens: []TokenView{}}
	if v.RevokedSessions == nil {
		v.RevokedSessions = []string{}
	}
	for i := range c.APITokens {
		v.APITokens = append(v.APITokens, TokenViewOf(&c.APITokens[i]))
	}
	return v
}

// NewTokenView is a token just made, with its secret: shown once.
type NewTokenView struct {
	TokenView
	Token string `json:"token"`
}

// MeView is who the caller is and what it administers.
type MeView struct {
	ID    string   `json:"id"`
	Admin bool     `json:"admin"`
	Name  string   `json:"name,omitempty"`
	Email string   `json:"email,omitempty"`
	Orgs  []string `json:"orgs"`
	// Apps are the apps the caller administers; for the server
	// administrator, every app with a backup.
	Apps []string `json:"apps"`
}

// OrgViewOf is the view of its argument.
func OrgViewOf(o *domain.Org) OrgView {
	v := OrgView{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt.UTC(), Members: []string{}}
	for m := range o.Members {
		v.Members = append(v.Members, m)
	}
	slices.Sort(v.Members)
	return v
}

// UserViewOf is the view of its argument.
func UserViewOf(d *domain.Directory, u *domain.User) UserView {
	orgs := d.MemberOf(u.ID)
	if orgs == nil {
		orgs = []string{}
	}
	return UserView{ID: u.ID, Name: u.Name, Email: u.Email, Disabled: u.Disabled, CreatedAt: u.CreatedAt.UTC(), Orgs: orgs}
}

// AppAccessViewOf is the view of its argument.
func AppAccessViewOf(a *domain.AppAccess) AppAccessView {
	v := AppAccessView{App: a.App, Org: a.Org, Admins: []string{}}
	for u := range a.Admins {
		v.Admins = append(v.Admins, u)
	}
	slices.Sort(v.Admins)
	return v
}

// TokenViewOf is the view of its argument.
func TokenViewOf(t *domain.Token) TokenView {
	v := TokenView{ID: t.ID, Name: t.Name, Kind: t.Kind, User: t.User, CreatedAt: t.CreatedAt.UTC(), Revoked: t.Revoked}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt.UTC()
		v.ExpiresAt = &e
	}
	return v
}

// The identity queries, as both transports answer them: p sees what the
// server administrator or its own memberships let it see.

// OrgsFor returns the organisations p may see: all for the server
// administrator, its own for a user.
func OrgsFor(d *domain.Directory, p domain.Principal) []OrgView {
	out := []OrgView{}
	for _, o := range d.Orgs() {
		if p.Admin || o.Members[p.ID] {
			out = append(out, OrgViewOf(o))
		}
	}
	return out
}

// OrgFor returns organisation id if p may see it.
func OrgFor(d *domain.Directory, p domain.Principal, id string) (OrgView, bool) {
	o, ok := d.Org(id)
	if !ok || !p.Admin && !o.Members[p.ID] {
		return OrgView{}, false
	}
	return OrgViewOf(o), true
}

// UserFor returns user id if p may see it: the server administrator, or
// the user itself.
func UserFor(d *domain.Directory, p domain.Principal, id string) (UserView, bool) {
	u, ok := d.User(id)
	if !ok || !p.Admin && p.ID != id {
		return UserView{}, false
	}
	return UserViewOf(d, u), true
}

// MeOf is who p is and what it administers; allApps are the apps the
// server administrator sees (every app with events). d may be nil (no
// identity on the server).
func MeOf(d *domain.Directory, p domain.Principal, allApps []string) MeView {
	v := MeView{ID: p.ID, Admin: p.Admin, Orgs: []string{}, Apps: []string{}}
	if p.Admin {
		v.Apps = append(v.Apps, allApps...)
	}
	if d == nil {
		return v
	}
	if p.Admin {
		for _, o := range d.Orgs() {
			v.Orgs = append(v.Orgs, o.ID)
		}
		return v
	}
	if u, ok := d.User(p.ID); ok {
		v.Name, v.Email = u.Name, u.Email
	}
	v.Orgs = append(v.Orgs, d.MemberOf(p.ID)...)
	v.Apps = append(v.Apps, d.AdministeredApps(p.ID)...)
	return v
}
