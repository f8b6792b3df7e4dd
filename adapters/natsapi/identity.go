package natsapi

import (
	"context"
	"time"

	"github.com/backupledger/backupledger/usecase"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// The identity endpoints: organisations, users, app registration and
// admins, tokens, sessions and "me". They offer what the HTTP API's
// identity routes do, with the same codes and bodies; what HTTP has in the
// path is a field of the request here. Answers hold names and emails, never
// a password, a hash or a token's secret, except the once-shown token of
// tokens.create and sessions.create.

// CreateOrgRequest is the body of orgs.create. An empty name is the id.
type CreateOrgRequest struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	CommandFields
}

// OrgRequest names an organisation: the body of orgs.get.
type OrgRequest struct {
	Org string `json:"org"`
}

// MemberRequest is the body of orgs.members.add and orgs.members.remove.
type MemberRequest struct {
	Org  string `json:"org"`
	User string `json:"user"`
	CommandFields
}

// CreateUserRequest is the body of users.create.
type CreateUserRequest struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Email    string `json:"email,omitempty"`
	Password string `json:"password"`
	CommandFields
}

// UserRequest names a user: the body of users.get.
type UserRequest struct {
	User string `json:"user"`
}

// DisableUserRequest is the body of users.disable; Disabled is required
// (false enables the user again).
type DisableUserRequest struct {
	User     string `json:"user"`
	Disabled *bool  `json:"disabled"`
	CommandFields
}

// PasswordRequest is the body of users.password.
type PasswordRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// CurrentPassword is required when users change their own.
	CurrentPassword string `json:"current_password"`
	CommandFields
}

// RegisterAppRequest is the body of apps.register.
type RegisterAppRequest struct {
	App string `json:"app"`
	Org string `json:"org"`
	CommandFields
}

// AdminRequest is the body of apps.admins.grant and apps.admins.revoke.
type AdminRequest struct {
	App  string `json:"app"`
	User string `json:"user"`
	CommandFields
}

// CreateTokenRequest is the body of tokens.create; a null or absent
// ExpiresAt makes a token that does not expire.
type CreateTokenRequest struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	CommandFields
}

// TokenRequest names a token: the body of tokens.revoke.
type TokenRequest struct {
	ID string `json:"id"`
	CommandFields
}

// LoginRequest is the body of sessions.create, the one request without an
// Authorization header.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// OrgList is the answer of orgs.list.
type OrgList struct {
	Orgs []projections.OrgView `json:"orgs"`
}

// UserList is the answer of users.list.
type UserList struct {
	Users []projections.UserView `json:"users"`
}

// TokenList is the answer of tokens.list: the caller's API tokens, without
// their secrets.
type TokenList struct {
	Tokens []projections.TokenView `json:"tokens"`
}

// Membership is the answer of orgs.members.add (Member true) and
// orgs.members.remove (Member false).
type Membership struct {
	Org    string `json:"org"`
	User   string `json:"user"`
	Member bool   `json:"member"`
}

// AdminChange is the answer of apps.admins.grant (Admin true) and
// apps.admins.revoke (Admin false).
type AdminChange struct {
	App   string `json:"app"`
	User  string `json:"user"`
	Admin bool   `json:"admin"`
}

// TokenRevoked is the answer of tokens.revoke and sessions.end.
type TokenRevoked struct {
	ID      string `json:"id"`
	Revoked bool   `json:"revoked"`
}

// identity returns the identity service, or unavailable when the server
// runs without one (the server administrator alone).
func (s *Service) identity() (usecase.Identity, error) {
	if s.deps.Identity == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "this server has no users: only the server administrator's token works")
	}
	return s.deps.Identity, nil
}

// identityCmd runs one identity command with m.
type identityCmd func(ctx context.Context, id usecase.Identity, m domain.Meta) (domain.IdentityResult, error)

// runIdentity runs cmd and answers what view reads of the directory after
// it. A retried command (same idempotency key) is marked by the
// Idempotent-Replayed response header.
func (s *Service) runIdentity(ctx context.Context, c *call, f CommandFields, cmd identityCmd, view func(d *domain.Directory) (any, error)) (any, error) {
	id, err := s.identity()
	if err != nil {
		return nil, err
	}
	m, err := s.meta(c, f)
	if err != nil {
		return nil, err
	}
	res, err := cmd(ctx, id, m)
	if err != nil {
		return nil, err
	}
	if res.Duplicate {
		c.hdr.Set("Idempotent-Replayed", "true")
	}
	var (
		v    any
		verr error
	)
	id.Read(func(d *domain.Directory) { v, verr = view(d) })
	return v, verr
}

// execCmd runs cmd through Identity.Execute as p.
func execCmd(p domain.Principal, cmd domain.IdentityCommand) identityCmd {
	return func(ctx context.Context, id usecase.Identity, m domain.Meta) (domain.IdentityResult, error) {
		return id.Execute(ctx, p, cmd, m)
	}
}

// withClient returns ctx carrying the client of a NATS request for the
// throttle of wrong passwords (domain.Throttle): a request does not say
// which connection sent it, so every NATS client counts as one, "nats".
func withClient(ctx context.Context) context.Context {
	return domain.WithClient(ctx, "nats")
}

// answer is a view that answers v whatever the directory holds.
func answer(v any) func(*domain.Directory) (any, error) {
	return func(*domain.Directory) (any, error) { return v, nil }
}

// createOrg creates an organisation (server administrator) and answers it.
func (s *Service) createOrg(ctx context.Context, c *call) (any, error) {
	var req CreateOrgRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.runIdentity(ctx, c, req.CommandFields, execCmd(c.p, domain.CreateOrg{ID: req.ID, Name: req.Name}),
		func(d *domain.Directory) (any, error) {
			o, ok := d.Org(req.ID)
			if !ok {
				return nil, domain.Errorf(domain.CodeNotFound, "organisation %s not found", req.ID)
			}
			return projections.OrgViewOf(o), nil
		})
}

// listOrgs answers every organisation to the server administrator, the
// caller's own to a user.
func (s *Service) listOrgs(_ context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	id, err := s.identity()
	if err != nil {
		return nil, err
	}
	var out OrgList
	id.Read(func(d *domain.Directory) { out.Orgs = projections.OrgsFor(d, c.p) })
	return out, nil
}

// getOrg answers an organisation to the server administrator and to its
// members; to others it is not_found.
func (s *Service) getOrg(_ context.Context, c *call) (any, error) {
	var req OrgRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	id, err := s.identity()
	if err != nil {
		return nil, err
	}
	var (
		v  projections.OrgView
		ok bool
	)
	id.Read(func(d *domain.Directory) { v, ok = projections.OrgFor(d, c.p, req.Org) })
	if !ok {
		return nil, domain.Errorf(domain.CodeNotFound, "organisation %s not found", req.Org)
	}
	return v, nil
}

// setMember returns the handler that adds a user to an organisation
// (member true) or removes it (server administrator).
func (s *Service) setMember(member bool) handler {
	return func(ctx context.Context, c *call) (any, error) {
		var req MemberRequest
		if err := decode(c.req.Data(), &req); err != nil {
			return nil, err
		}
		cmd := domain.SetMember{Org: req.Org, User: req.User, Member: member}
		return s.runIdentity(ctx, c, req.CommandFields, execCmd(c.p, cmd),
			answer(Membership{Org: req.Org, User: req.User, Member: member}))
	}
}

// createUser creates a user with its password (server administrator) and
// answers the user, without the password.
func (s *Service) createUser(ctx context.Context, c *call) (any, error) {
	var req CreateUserRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	cmd := domain.CreateUser{ID: req.ID, Name: req.Name, Email: req.Email, Password: req.Password}
	return s.runIdentity(ctx, c, req.CommandFields, func(ctx context.Context, id usecase.Identity, m domain.Meta) (domain.IdentityResult, error) {
		return id.CreateUser(ctx, c.p, cmd, m)
	}, userView(req.ID))
}

// userView reads a user's view after a command on it.
func userView(user string) func(d *domain.Directory) (any, error) {
	return func(d *domain.Directory) (any, error) {
		u, ok := d.User(user)
		if !ok {
			return nil, domain.Errorf(domain.CodeNotFound, "user %s not found", user)
		}
		return projections.UserViewOf(d, u), nil
	}
}

// listUsers answers every user (server administrator only).
func (s *Service) listUsers(_ context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	id, err := s.identity()
	if err != nil {
		return nil, err
	}
	if !c.p.Admin {
		return nil, domain.Errorf(domain.CodePermissionDenied, "only the server administrator lists users")
	}
	out := UserList{Users: []projections.UserView{}}
	id.Read(func(d *domain.Directory) {
		for _, u := range d.Users() {
			out.Users = append(out.Users, projections.UserViewOf(d, u))
		}
	})
	return out, nil
}

// getUser answers a user to the server administrator and to itself; to
// others it is not_found.
func (s *Service) getUser(_ context.Context, c *call) (any, error) {
	var req UserRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	id, err := s.identity()
	if err != nil {
		return nil, err
	}
	var (
		v  projections.UserView
		ok bool
	)
	id.Read(func(d *domain.Directory) { v, ok = projections.UserFor(d, c.p, req.User) })
	if !ok {
		return nil, domain.Errorf(domain.CodeNotFound, "user %s not found", req.User)
	}
	return v, nil
}

// disableUser disables or enables a user (server administrator) and
// answers it; its tokens stop or work again at once.
func (s *Service) disableUser(ctx context.Context, c *call) (any, error) {
	var req DisableUserRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if req.Disabled == nil {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "field \"disabled\" is required")
	}
	cmd := domain.SetUserDisabled{User: req.User, Disabled: *req.Disabled}
	return s.runIdentity(ctx, c, req.CommandFields, execCmd(c.p, cmd), userView(req.User))
}

// setPassword sets a user's password: the server administrator for
// anyone, a user for itself; another user is not_found.
func (s *Service) setPassword(ctx context.Context, c *call) (any, error) {
	var req PasswordRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if !c.p.Admin && c.p.ID != req.User {
		return nil, domain.Errorf(domain.CodeNotFound, "user %s not found", req.User)
	}
	cmd := domain.ChangePassword{User: req.User, Password: req.Password, Current: req.CurrentPassword}
	var changed domain.PasswordChange
	return s.runIdentity(ctx, c, req.CommandFields, func(ctx context.Context, id usecase.Identity, m domain.Meta) (domain.IdentityResult, error) {
		var err error
		changed, err = id.ChangePassword(withClient(ctx), c.p, cmd, m)
		return changed.IdentityResult, err
	}, func(*domain.Directory) (any, error) { return projections.PasswordChangeViewOf(req.User, changed), nil })
}

// registerApp puts an app into an organisation and answers who
// administers it; a member who does it becomes the app's admin. The app is
// not checked for visibility first: the command decides.
func (s *Service) registerApp(ctx context.Context, c *call) (any, error) {
	var req RegisterAppRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	c.app = req.App
	if err := domain.ValidateAppID(req.App); err != nil {
		return nil, err
	}
	if req.Org == "" {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "field \"org\" is required")
	}
	reg := domain.RegisterApp{App: req.App, Org: req.Org}
	return s.runIdentity(ctx, c, req.CommandFields, func(ctx context.Context, id usecase.Identity, m domain.Meta) (domain.IdentityResult, error) {
		return id.RegisterApp(ctx, c.p, reg, m)
	},
		func(d *domain.Directory) (any, error) {
			a, ok := d.App(req.App)
			if !ok {
				return nil, domain.Errorf(domain.CodeNotFound, "app %s not found", req.App)
			}
			return projections.AppAccessViewOf(a), nil
		})
}

// getAppAccess answers an app's organisation and admins; an app that no
// one registered is in the default organisation, without admins.
func (s *Service) getAppAccess(_ context.Context, c *call) (any, error) {
	var req AppRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	id, err := s.identity()
	if err != nil {
		return nil, err
	}
	v := projections.AppAccessView{App: req.App, Org: domain.DefaultOrg, Admins: []string{}}
	id.Read(func(d *domain.Directory) {
		if a, ok := d.App(req.App); ok {
			v = projections.AppAccessViewOf(a)
		}
	})
	return v, nil
}

// setAdmin returns the handler that grants (admin true) or revokes a
// user's admin rights on an app: the server administrator or an admin of
// the app.
func (s *Service) setAdmin(admin bool) handler {
	return func(ctx context.Context, c *call) (any, error) {
		var req AdminRequest
		if err := decode(c.req.Data(), &req); err != nil {
			return nil, err
		}
		if err := s.checkApp(c, req.App); err != nil {
			return nil, err
		}
		cmd := domain.SetAdmin{App: req.App, User: req.User, Admin: admin}
		return s.runIdentity(ctx, c, req.CommandFields, execCmd(c.p, cmd),
			answer(AdminChange{App: req.App, User: req.User, Admin: admin}))
	}
}

// createToken makes an API token of the caller and answers it with its
// secret, shown this once. The server administrator has its own token and
// is refused (permission_denied).
func (s *Service) createToken(ctx context.Context, c *call) (any, error) {
	var req CreateTokenRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if c.p.Admin {
		return nil, domain.Errorf(domain.CodePermissionDenied, "the server administrator has its token (admin.token); tokens are for users")
	}
	var exp time.Time
	if req.ExpiresAt != nil {
		exp = *req.ExpiresAt
	}
	var made domain.NewToken
	return s.runIdentity(ctx, c, req.CommandFields, func(ctx context.Context, id usecase.Identity, m domain.Meta) (domain.IdentityResult, error) {
		var err error
		made, err = id.CreateToken(ctx, c.p, req.Name, exp, m)
		return domain.IdentityResult{}, err
	}, func(*domain.Directory) (any, error) {
		return newTokenView(made), nil
	})
}

// newTokenView is the answer of a token just made, with its secret.
func newTokenView(t domain.NewToken) projections.NewTokenView {
	return projections.NewTokenView{TokenView: projections.TokenViewOf(&t.Token), Token: t.Secret}
}

// listTokens answers the caller's API tokens, without their secrets.
func (s *Service) listTokens(_ context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	id, err := s.identity()
	if err != nil {
		return nil, err
	}
	out := TokenList{Tokens: []projections.TokenView{}}
	id.Read(func(d *domain.Directory) {
		for _, t := range d.Tokens(c.p.ID, domain.TokenAPI) {
			out.Tokens = append(out.Tokens, projections.TokenViewOf(t))
		}
	})
	return out, nil
}

// revokeToken revokes a token of the caller (any token for the server
// administrator); it stops working at once.
func (s *Service) revokeToken(ctx context.Context, c *call) (any, error) {
	var req TokenRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.runIdentity(ctx, c, req.CommandFields, execCmd(c.p, domain.RevokeToken{ID: req.ID}),
		answer(TokenRevoked{ID: req.ID, Revoked: true}))
}

// endSession revokes the token the request was made with (a logout).
func (s *Service) endSession(ctx context.Context, c *call) (any, error) {
	var req CommandFields
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if c.p.TokenID == "" {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "this request was not made with a session or API token")
	}
	return s.runIdentity(ctx, c, req, execCmd(c.p, domain.RevokeToken{ID: c.p.TokenID}),
		answer(TokenRevoked{ID: c.p.TokenID, Revoked: true}))
}

// me answers who the caller is, its organisations and the apps it
// administers (every app with events for the server administrator).
func (s *Service) me(_ context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	var apps []string
	if c.p.Admin {
		apps = s.deps.Queries.Apps()
	}
	v := projections.MeOf(nil, c.p, apps)
	if id := s.deps.Identity; id != nil {
		id.Read(func(d *domain.Directory) { v = projections.MeOf(d, c.p, apps) })
	}
	return v, nil
}

// login checks a user's password and answers a session token with its
// secret. It is the one endpoint without an Authorization header. An
// unknown or disabled user and a wrong password are unauthenticated alike;
// too many wrong passwords are password_locked with retry_after_seconds.
func (s *Service) login(ctx context.Context, c *call) (any, error) {
	var req LoginRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	id, err := s.identity()
	if err != nil {
		return nil, err
	}
	if req.User == "" || req.Password == "" {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "fields \"user\" and \"password\" are required")
	}
	m := domain.Meta{CommandID: s.deps.NewID()}
	c.commandID = m.CommandID
	made, err := id.Login(withClient(ctx), req.User, req.Password, m)
	if err != nil {
		return nil, err
	}
	return newTokenView(made), nil
}
