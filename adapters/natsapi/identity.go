package natsapi

import (
	"context"
	"time"

	"github.com/backupledger/backupledger/service"
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

// identityCommand runs an identity command of c with the metadata of f and
// answers what it returns, marked Idempotent-Replayed for a retry.
func (s *Service) identityCommand(ctx context.Context, c *call, f CommandFields, run func(ctx context.Context, uc *usecase.Call) (any, error)) (any, error) {
	if err := s.app.CheckIdentity(); err != nil {
		return nil, err
	}
	uc, err := s.command(c, f)
	if err != nil {
		return nil, err
	}
	v, err := run(withClient(ctx), uc)
	return commandAnswer(c, uc, v, err)
}

// withClient returns ctx carrying the client of a NATS request for the
// throttle of wrong passwords (service.Throttle): a request does not say
// which connection sent it, so every NATS client counts as one, "nats".
func withClient(ctx context.Context) context.Context {
	return service.WithClient(ctx, "nats")
}

// createOrg creates an organisation (server administrator) and answers it.
func (s *Service) createOrg(ctx context.Context, c *call) (any, error) {
	var req CreateOrgRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.CreateOrg(ctx, uc, usecase.CreateOrg{ID: req.ID, Name: req.Name})
	})
}

// listOrgs answers every organisation to the server administrator, the
// caller's own to a user.
func (s *Service) listOrgs(ctx context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	l, err := s.app.ListOrgs(ctx, c.query())
	return OrgList{Orgs: l}, err
}

// getOrg answers an organisation to the server administrator and to its
// members; to others it is not_found.
func (s *Service) getOrg(ctx context.Context, c *call) (any, error) {
	var req OrgRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.app.GetOrg(ctx, c.query(), req.Org)
}

// setMember returns the handler that adds a user to an organisation
// (member true) or removes it (server administrator).
func (s *Service) setMember(member bool) handler {
	return func(ctx context.Context, c *call) (any, error) {
		var req MemberRequest
		if err := decode(c.req.Data(), &req); err != nil {
			return nil, err
		}
		return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
			err := s.app.SetMember(ctx, uc, usecase.SetMember{Org: req.Org, User: req.User, Member: member})
			return Membership{Org: req.Org, User: req.User, Member: member}, err
		})
	}
}

// createUser creates a user with its password (server administrator) and
// answers the user, without the password.
func (s *Service) createUser(ctx context.Context, c *call) (any, error) {
	var req CreateUserRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.CreateUser(ctx, uc, usecase.CreateUser{ID: req.ID, Name: req.Name, Email: req.Email, Password: req.Password})
	})
}

// listUsers answers every user (server administrator only).
func (s *Service) listUsers(ctx context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	l, err := s.app.ListUsers(ctx, c.query())
	return UserList{Users: l}, err
}

// getUser answers a user to the server administrator and to itself; to
// others it is not_found.
func (s *Service) getUser(ctx context.Context, c *call) (any, error) {
	var req UserRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.app.GetUser(ctx, c.query(), req.User)
}

// disableUser disables or enables a user (server administrator) and
// answers it; its tokens stop or work again at once.
func (s *Service) disableUser(ctx context.Context, c *call) (any, error) {
	var req DisableUserRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.DisableUser(ctx, uc, usecase.DisableUser{User: req.User, Disabled: req.Disabled})
	})
}

// setPassword sets a user's password: the server administrator for
// anyone, a user for itself; another user is not_found.
func (s *Service) setPassword(ctx context.Context, c *call) (any, error) {
	var req PasswordRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.ChangePassword(ctx, uc, usecase.ChangePassword{User: req.User, Password: req.Password, Current: req.CurrentPassword})
	})
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
	return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.RegisterApp(ctx, uc, usecase.RegisterApp{App: req.App, Org: req.Org})
	})
}

// getAppAccess answers an app's organisation and admins; an app that no
// one registered is in the default organisation, without admins.
func (s *Service) getAppAccess(ctx context.Context, c *call) (any, error) {
	var req AppRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	if err := s.app.CheckIdentity(); err != nil {
		return nil, err
	}
	return s.app.GetAppAccess(ctx, c.query(), req.App)
}

// setAdmin returns the handler that grants (admin true) or revokes a
// user's admin rights on an app: the server administrator or an admin of
// the app.
func (s *Service) setAdmin(admin bool) handler {
	return func(ctx context.Context, c *call) (any, error) {
		var req AdminRequest
		if err := s.decodeApp(c, &req, &req.App); err != nil {
			return nil, err
		}
		return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
			err := s.app.SetAdmin(ctx, uc, usecase.SetAdmin{App: req.App, User: req.User, Admin: admin})
			return AdminChange{App: req.App, User: req.User, Admin: admin}, err
		})
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
	return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.CreateToken(ctx, uc, usecase.CreateToken{Name: req.Name, ExpiresAt: req.ExpiresAt})
	})
}

// listTokens answers the caller's API tokens, without their secrets.
func (s *Service) listTokens(ctx context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	l, err := s.app.ListTokens(ctx, c.query())
	return TokenList{Tokens: l}, err
}

// revokeToken revokes a token of the caller (any token for the server
// administrator); it stops working at once.
func (s *Service) revokeToken(ctx context.Context, c *call) (any, error) {
	var req TokenRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return TokenRevoked{ID: req.ID, Revoked: true}, s.app.RevokeToken(ctx, uc, req.ID)
	})
}

// endSession revokes the token the request was made with (a logout).
func (s *Service) endSession(ctx context.Context, c *call) (any, error) {
	var req CommandFields
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.identityCommand(ctx, c, req, func(ctx context.Context, uc *usecase.Call) (any, error) {
		id, err := s.app.Logout(ctx, uc)
		return TokenRevoked{ID: id, Revoked: true}, err
	})
}

// me answers who the caller is, its organisations and the apps it
// administers (every app with events for the server administrator).
func (s *Service) me(ctx context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.app.Me(ctx, c.query()), nil
}

// login checks a user's password and answers a session token with its
// secret. It is the one endpoint without an Authorization header. An
// unknown or disabled user and a wrong password are unauthenticated alike;
// too many wrong passwords are too_many_attempts with retry_after_seconds.
func (s *Service) login(ctx context.Context, c *call) (any, error) {
	var req LoginRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	m := domain.Meta{CommandID: s.deps.NewID()}
	c.commandID = m.CommandID
	return s.app.Login(withClient(ctx), m, usecase.Login{User: req.User, Password: req.Password})
}
