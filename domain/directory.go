package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// IdentityStream is the token of the ledger subject that carries identity
// events (ledger.events._identity): organisations, users, memberships, app
// admins, tokens and failed passwords. No app id can take it (app ids start
// with a letter or a digit), and it is read by audit consumers like every
// other subject. Secrets (password and token hashes) are never in events;
// they live in a SecretStore.
const IdentityStream = "_identity"

// Identity event types. Registered explicitly; never renamed.
const (
	TypeOrgCreated      = "org.created"
	TypeMemberAdded     = "org.member_added"
	TypeMemberRemoved   = "org.member_removed"
	TypeUserCreated     = "user.created"
	TypeUserDisabled    = "user.disabled"
	TypeUserEnabled     = "user.enabled"
	TypePasswordChanged = "user.password_changed"
	TypePasswordFailed  = "user.password_failed"
	TypeAppRegistered   = "app.registered"
	TypeAdminGranted    = "app.admin_granted"
	TypeAdminRevoked    = "app.admin_revoked"
	TypeTokenCreated    = "token.created"
	TypeTokenRevoked    = "token.revoked"
)

// Password lengths, in bytes.
const (
	// MinPasswordLen is the shortest password accepted.
	MinPasswordLen = 12
	// MaxPasswordLen is the longest: the hash (Argon2id) reads every byte.
	MaxPasswordLen = 1024
)

// Who changed a password (PasswordChanged.By).
const (
	ChangedByUser  = "user"
	ChangedByAdmin = "administrator"
)

// DefaultOrg is the organisation shown for an app that no one
// registered: the apps the server administrator used before identity.
const DefaultOrg = "default"

// Token kinds.
const (
	TokenAPI     = "api"
	TokenSession = "session"
)

// OrgCreated records a new organisation.
type OrgCreated struct {
	Org  string `json:"org"`
	Name string `json:"name"`
}

// MemberAdded records that a user joined an organisation.
type MemberAdded struct {
	Org  string `json:"org"`
	User string `json:"user"`
}

// MemberRemoved records that a user left an organisation; the user's admin
// rights on the organisation's apps go with it.
type MemberRemoved struct {
	Org  string `json:"org"`
	User string `json:"user"`
}

// UserCreated records a new user. The password hash is not here.
type UserCreated struct {
	User  string `json:"user"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// UserDisabled records that a user may no longer authenticate; its tokens
// stop working at once.
type UserDisabled struct {
	User string `json:"user"`
}

// UserEnabled records that a disabled user may authenticate again.
type UserEnabled struct {
	User string `json:"user"`
}

// PasswordChanged records a new password (not its hash).
type PasswordChanged struct {
	User string `json:"user"`
	// By is who changed it: ChangedByUser (with the current password) or
	// ChangedByAdmin; empty in events from before it was recorded.
	By string `json:"by,omitempty"`
	// RevokedSessions are the user's session tokens the change ended:
	// every one but the session that made it.
	RevokedSessions []string `json:"revoked_sessions,omitempty"`
}

// PasswordFailed records a wrong password of a user.
type PasswordFailed struct {
	User string `json:"user"`
	// Purpose is what the password was for: "login", "restore" or
	// "password_change".
	Purpose string `json:"purpose"`
	// LockedUntil was set when a failure locked the user, before wrong
	// passwords were throttled instead; new events leave it out.
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

// AppRegistered records that an app belongs to an organisation, and its
// first admin when a member registered it.
type AppRegistered struct {
	App   string `json:"app"`
	Org   string `json:"org"`
	Admin string `json:"admin,omitempty"`
}

// AdminGranted records that a member of the app's organisation administers
// the app.
type AdminGranted struct {
	App  string `json:"app"`
	User string `json:"user"`
}

// AdminRevoked records that a user no longer administers the app.
type AdminRevoked struct {
	App  string `json:"app"`
	User string `json:"user"`
}

// TokenCreated records an API or session token (not its secret or hash).
type TokenCreated struct {
	Token     string    `json:"token_id"`
	User      string    `json:"user"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// TokenRevoked records that a token stopped working.
type TokenRevoked struct {
	Token string `json:"token_id"`
}

// EventType implements Event.
func (*OrgCreated) EventType() string { return TypeOrgCreated }

// EventType implements Event.
func (*MemberAdded) EventType() string { return TypeMemberAdded }

// EventType implements Event.
func (*MemberRemoved) EventType() string { return TypeMemberRemoved }

// EventType implements Event.
func (*UserCreated) EventType() string { return TypeUserCreated }

// EventType implements Event.
func (*UserDisabled) EventType() string { return TypeUserDisabled }

// EventType implements Event.
func (*UserEnabled) EventType() string { return TypeUserEnabled }

// EventType implements Event.
func (*PasswordChanged) EventType() string { return TypePasswordChanged }

// EventType implements Event.
func (*PasswordFailed) EventType() string { return TypePasswordFailed }

// EventType implements Event.
func (*AppRegistered) EventType() string { return TypeAppRegistered }

// EventType implements Event.
func (*AdminGranted) EventType() string { return TypeAdminGranted }

// EventType implements Event.
func (*AdminRevoked) EventType() string { return TypeAdminRevoked }

// EventType implements Event.
func (*TokenCreated) EventType() string { return TypeTokenCreated }

// EventType implements Event.
func (*TokenRevoked) EventType() string { return TypeTokenRevoked }

// Org is an organisation.
type Org struct {
	ID        string
	Name      string
	CreatedAt time.Time
	Members   map[string]bool
}

// User is a person who may log in.
type User struct {
	ID        string
	Name      string
	Email     string
	Disabled  bool
	CreatedAt time.Time
}

// AppAccess says which organisation an app belongs to and who administers
// it.
type AppAccess struct {
	App    string
	Org    string
	Admins map[string]bool
}

// Token is an API or session token, without its secret.
type Token struct {
	ID        string
	User      string
	Name      string
	Kind      string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	Revoked   bool
}

// Active reports whether t authenticates at now.
func (t *Token) Active(now time.Time) bool {
	return !t.Revoked && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// Directory is the fold of the identity events: who exists, who belongs
// where and who administers what. Its zero value is empty and ready.
type Directory struct {
	seq      uint64
	lastHash string
	orgs     map[string]*Org
	users    map[string]*User
	apps     map[string]*AppAccess
	tokens   map[string]*Token
	webhooks map[string]*Webhook
	// removedHooks are the webhooks removed.
	removedHooks map[string]bool
	// commands remembers the last identityCommandMemory command keys, so
	// that a retried command answers its first result.
	commands map[string]CommandRecord
	cmdRing  []string
	cmdNext  int
}

const identityCommandMemory = 1000

// Command returns what the directory remembers of the command key.
func (d *Directory) Command(key string) (CommandRecord, bool) {
	r, ok := d.commands[key]
	return r, ok
}

func (d *Directory) remember(key string, r CommandRecord) {
	if _, ok := d.commands[key]; ok {
		return
	}
	if d.commands == nil {
		d.commands = map[string]CommandRecord{}
		d.cmdRing = make([]string, identityCommandMemory)
	}
	if old := d.cmdRing[d.cmdNext]; old != "" {
		delete(d.commands, old)
	}
	d.cmdRing[d.cmdNext] = key
	d.cmdNext = (d.cmdNext + 1) % len(d.cmdRing)
	d.commands[key] = r
}

// Seq returns the stream sequence of the last identity event applied.
func (d *Directory) Seq() uint64 { return d.seq }

// LastHash returns the hash of the last identity event applied.
func (d *Directory) LastHash() string { return d.lastHash }

// Org returns an organisation.
func (d *Directory) Org(id string) (*Org, bool) { o, ok := d.orgs[id]; return o, ok }

// User returns a user.
func (d *Directory) User(id string) (*User, bool) { u, ok := d.users[id]; return u, ok }

// App returns an app's access record.
func (d *Directory) App(id string) (*AppAccess, bool) { a, ok := d.apps[id]; return a, ok }

// Token returns a token.
func (d *Directory) Token(id string) (*Token, bool) { t, ok := d.tokens[id]; return t, ok }

// Orgs returns the organisations, sorted by id.
func (d *Directory) Orgs() []*Org { return sortedValues(d.orgs, func(o *Org) string { return o.ID }) }

// Users returns the users, sorted by id.
func (d *Directory) Users() []*User {
	return sortedValues(d.users, func(u *User) string { return u.ID })
}

// Tokens returns user's tokens of kind (any kind if ""), sorted by id.
func (d *Directory) Tokens(user, kind string) []*Token {
	var out []*Token
	for _, t := range sortedValues(d.tokens, func(t *Token) string { return t.ID }) {
		if t.User == user && (kind == "" || t.Kind == kind) {
			out = append(out, t)
		}
	}
	return out
}

// Administers reports whether user administers app: an enabled user, an
// admin of the app and a member of the app's organisation.
func (d *Directory) Administers(user, app string) bool {
	u, ok := d.users[user]
	if !ok || u.Disabled {
		return false
	}
	a, ok := d.apps[app]
	if !ok || !a.Admins[user] {
		return false
	}
	o, ok := d.orgs[a.Org]
	return ok && o.Members[user]
}

// AdministeredApps returns the apps user administers, sorted.
func (d *Directory) AdministeredApps(user string) []string {
	var out []string
	for app := range d.apps {
		if d.Administers(user, app) {
			out = append(out, app)
		}
	}
	slices.Sort(out)
	return out
}

// MemberOf returns the organisations user belongs to, sorted.
func (d *Directory) MemberOf(user string) []string {
	var out []string
	for id, o := range d.orgs {
		if o.Members[user] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func sortedValues[V any](m map[string]V, key func(V) string) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b V) int { return strings.Compare(key(a), key(b)) })
	return out
}

// Apply folds one identity event, the message of stream sequence seq whose
// raw body is raw. An event it cannot decode moves the sequence and the
// hash chain on and changes nothing else.
func (d *Directory) Apply(seq uint64, raw []byte) {
	var (
		env *Envelope
		ev  Event
	)
	if err := json.Unmarshal(raw, &env); err == nil {
		if ev, err = DecodeEvent(env); err != nil {
			ev = nil
		}
	}
	d.ApplyDecoded(seq, HashEvent(raw), env, ev)
}

// Refuse records that the message at stream sequence seq of the identity
// subject is not part of the ledger: only the subject's last sequence, which
// appends expect, moves.
func (d *Directory) Refuse(seq uint64) { d.seq = seq }

// IdentityCommand is a command on the directory: Decide returns the event
// it causes, or an *Error, given the directory and the caller.
type IdentityCommand interface {
	Decide(d *Directory, p Principal, now time.Time) (Event, error)
}

func requireAdmin(p Principal) error {
	if !p.Admin {
		return Errorf(CodePermissionDenied, "only the server administrator may do this")
	}
	return nil
}

// CreateOrg creates an organisation (server admin).
type CreateOrg struct{ ID, Name string }

// Decide implements IdentityCommand.
func (c CreateOrg) Decide(d *Directory, p Principal, _ time.Time) (Event, error) {
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	if err := ValidateName("org id", c.ID); err != nil {
		return nil, err
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if err := checkText("org name", c.Name, MaxNameLen); err != nil {
		return nil, err
	}
	if _, ok := d.orgs[c.ID]; ok {
		return nil, Errorf(CodeAlreadyExists, "organisation %s exists", c.ID)
	}
	return &OrgCreated{Org: c.ID, Name: c.Name}, nil
}

// CreateUser creates a user (server admin). The password is checked here
// and hashed by the Identity service, never recorded.
type CreateUser struct {
	ID, Name, Email string
	Password        string `json:"-"`
}

// Decide implements IdentityCommand.
func (c CreateUser) Decide(d *Directory, p Principal, _ time.Time) (Event, error) {
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	if err := ValidateName("user id", c.ID); err != nil {
		return nil, err
	}
	if c.ID == "admin" {
		return nil, Errorf(CodeInvalidArgument, "user id admin is the server administrator's")
	}
	if err := checkText("user name", c.Name, MaxNameLen); err != nil {
		return nil, err
	}
	if c.Email != "" && (!strings.Contains(c.Email, "@") || len(c.Email) > 254 || !utf8.ValidString(c.Email) || strings.ContainsAny(c.Email, " \t\r\n")) {
		return nil, Errorf(CodeInvalidArgument, "email %q is not an address", c.Email)
	}
	if err := CheckPassword(c.Password); err != nil {
		return nil, err
	}
	if _, ok := d.users[c.ID]; ok {
		return nil, Errorf(CodeAlreadyExists, "user %s exists", c.ID)
	}
	return &UserCreated{User: c.ID, Name: c.Name, Email: c.Email}, nil
}

// CheckPassword checks a new password's length.
func CheckPassword(pw string) error {
	if n := len(pw); n < MinPasswordLen || n > MaxPasswordLen {
		return Errorf(CodeInvalidArgument, "password must be %d to %d bytes", MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// SetUserDisabled disables or enables a user (server admin).
type SetUserDisabled struct {
	User     string
	Disabled bool
}

// Decide implements IdentityCommand.
func (c SetUserDisabled) Decide(d *Directory, p Principal, _ time.Time) (Event, error) {
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	if _, ok := d.users[c.User]; !ok {
		return nil, Errorf(CodeNotFound, "user %s not found", c.User)
	}
	if c.Disabled {
		return &UserDisabled{User: c.User}, nil
	}
	return &UserEnabled{User: c.User}, nil
}

// ChangePassword records a user's new password: the server admin for any
// user, a user for itself with its current password (Identity checks it
// and stores the new hash). It ends every session of the user but the
// caller's own; API tokens stay.
type ChangePassword struct {
	User     string
	Password string `json:"-"`
	// Current is the user's current password, required when the user
	// changes its own.
	Current string `json:"-"`
}

// Decide implements IdentityCommand.
func (c ChangePassword) Decide(d *Directory, p Principal, now time.Time) (Event, error) {
	if !p.Admin && p.ID != c.User {
		return nil, Errorf(CodePermissionDenied, "only the server administrator may change another user's password")
	}
	if _, ok := d.users[c.User]; !ok {
		return nil, Errorf(CodeNotFound, "user %s not found", c.User)
	}
	if err := CheckPassword(c.Password); err != nil {
		return nil, err
	}
	ev := &PasswordChanged{User: c.User, By: ChangedByAdmin}
	if !p.Admin {
		if c.Current == "" {
			return nil, Errorf(CodeInvalidArgument, "field \"current_password\" is required to change one's own password")
		}
		ev.By = ChangedByUser
	}
	for _, t := range d.Tokens(c.User, TokenSession) {
		if t.Active(now) && t.ID != p.TokenID {
			ev.RevokedSessions = append(ev.RevokedSessions, t.ID)
		}
	}
	return ev, nil
}

// SetMember adds a user to or removes it from an organisation (server
// admin).
type SetMember struct {
	Org, User string
	Member    bool
}

// Decide implements IdentityCommand.
func (c SetMember) Decide(d *Directory, p Principal, _ time.Time) (Event, error) {
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	o, ok := d.orgs[c.Org]
	if !ok {
		return nil, Errorf(CodeNotFound, "organisation %s not found", c.Org)
	}
	if _, ok := d.users[c.User]; !ok {
		return nil, Errorf(CodeNotFound, "user %s not found", c.User)
	}
	if c.Member == o.Members[c.User] {
		return nil, nil // already so
	}
	if c.Member {
		return &MemberAdded{Org: c.Org, User: c.User}, nil
	}
	return &MemberRemoved{Org: c.Org, User: c.User}, nil
}

// RegisterApp puts an app into an organisation: the server admin, or a
// member of the organisation, who then becomes the app's admin (the
// Identity service grants it). An app belongs to one organisation for
// good.
type RegisterApp struct{ App, Org string }

// Decide implements IdentityCommand.
func (c RegisterApp) Decide(d *Directory, p Principal, _ time.Time) (Event, error) {
	if err := ValidateAppID(c.App); err != nil {
		return nil, err
	}
	o, ok := d.orgs[c.Org]
	if !ok || !p.Admin && !o.Members[p.ID] {
		return nil, Errorf(CodeNotFound, "organisation %s not found", c.Org)
	}
	if a, ok := d.apps[c.App]; ok {
		if !p.Admin && !d.Administers(p.ID, c.App) {
			return nil, ErrAppUnavailable(c.App)
		}
		if a.Org == c.Org {
			return nil, nil
		}
		return nil, Errorf(CodeAlreadyExists, "app %s belongs to organisation %s", c.App, a.Org)
	}
	ev := &AppRegistered{App: c.App, Org: c.Org}
	if !p.Admin {
		ev.Admin = p.ID
	}
	return ev, nil
}

// SetAdmin grants or revokes admin rights on an app: the server admin, or
// an admin of the app. Only a member of the app's organisation can be
// granted.
type SetAdmin struct {
	App, User string
	Admin     bool
}

// Decide implements IdentityCommand.
func (c SetAdmin) Decide(d *Directory, p Principal, _ time.Time) (Event, error) {
	a, ok := d.apps[c.App]
	if !ok || !p.Admin && !d.Administers(p.ID, c.App) {
		return nil, Errorf(CodeNotFound, "app %s not found", c.App)
	}
	if c.Admin {
		if _, ok := d.users[c.User]; !ok {
			return nil, Errorf(CodeNotFound, "user %s not found", c.User)
		}
		if !d.orgs[a.Org].Members[c.User] {
			return nil, Errorf(CodeInvalidArgument, "user %s is not a member of organisation %s", c.User, a.Org)
		}
	}
	if c.Admin == a.Admins[c.User] {
		return nil, nil
	}
	if c.Admin {
		return &AdminGranted{App: c.App, User: c.User}, nil
	}
	return &AdminRevoked{App: c.App, User: c.User}, nil
}

// CreateToken records a new token of the caller (the Identity service
// makes its id and secret).
type CreateToken struct {
	ID        string `json:"-"` // made by the service, not part of the request
	Name      string
	Kind      string
	User      string
	ExpiresAt time.Time
}

// Decide implements IdentityCommand.
func (c CreateToken) Decide(d *Directory, p Principal, now time.Time) (Event, error) {
	if p.ID != c.User {
		return nil, Errorf(CodePermissionDenied, "tokens are made for oneself")
	}
	if u, ok := d.users[c.User]; !ok || u.Disabled {
		return nil, Errorf(CodePermissionDenied, "user %s may not have tokens", c.User)
	}
	if c.Kind != TokenAPI && c.Kind != TokenSession {
		return nil, Errorf(CodeInvalidArgument, "token kind %q", c.Kind)
	}
	if err := checkText("token name", c.Name, MaxNameLen); err != nil {
		return nil, err
	}
	if !c.ExpiresAt.IsZero() && !c.ExpiresAt.After(now) {
		return nil, Errorf(CodeInvalidArgument, "expires_at %s is not in the future", c.ExpiresAt.Format(time.RFC3339))
	}
	return &TokenCreated{Token: c.ID, User: c.User, Name: c.Name, Kind: c.Kind, ExpiresAt: c.ExpiresAt.UTC()}, nil
}

// RevokeToken revokes a token: its owner or the server admin.
type RevokeToken struct{ ID string }

// Decide implements IdentityCommand.
func (c RevokeToken) Decide(d *Directory, p Principal, _ time.Time) (Event, error) {
	t, ok := d.tokens[c.ID]
	if !ok || !p.Admin && t.User != p.ID {
		return nil, Errorf(CodeNotFound, "token %s not found", c.ID)
	}
	if t.Revoked {
		return nil, nil
	}
	return &TokenRevoked{Token: c.ID}, nil
}

// ValidateName checks an organisation or user id: like an app id.
func ValidateName(what, id string) error {
	if err := ValidateAppID(id); err != nil {
		return Errorf(CodeInvalidArgument, "%s %q must match [a-z0-9][a-z0-9_-]{0,62}", what, id)
	}
	return nil
}

func checkText(what, s string, max int) error {
	if s == "" || len(s) > max || !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\r\n") {
		return Errorf(CodeInvalidArgument, "%s must be 1 to %d bytes of UTF-8 on one line", what, max)
	}
	return nil
}

// String describes a principal for logs.
func (p Principal) String() string { return fmt.Sprintf("%s(admin=%v)", p.ID, p.Admin) }

// ErrAppUnavailable answers a member who may not register or restore into
// app: not found, as for every app it may not see.
func ErrAppUnavailable(app string) error {
	return Errorf(CodeNotFound, "app %s not found: the id is in use and not yours", app)
}
