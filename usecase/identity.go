package usecase

import (
	"context"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// The identity use cases: organisations, users, app registration and
// admins, tokens, sessions and "me". Answers hold names and emails, never a
// password, a hash or a token's secret, except the once-shown secret of a
// token just made. Each answers unavailable on a server without users
// (Deps.Identity nil), where only the server administrator's token works.

// identity returns the identity service, or unavailable.
func (a *Application) identity() (Identity, error) {
	if a.deps.Identity == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "this server has no users: only the server administrator's token works")
	}
	return a.deps.Identity, nil
}

// runIdentity runs an identity command of c and returns what view reads
// of the directory after it (nil view reads nothing). A retried command
// sets c.Replayed.
func (a *Application) runIdentity(ctx context.Context, c *Call, cmd func(ctx context.Context, id Identity) (domain.IdentityResult, error), view func(d *domain.Directory) (any, error)) (any, error) {
	id, err := a.identity()
	if err != nil {
		return nil, err
	}
	res, err := cmd(ctx, id)
	if err != nil {
		return nil, err
	}
	c.Replayed = res.Duplicate
	if view == nil {
		return nil, nil
	}
	var (
		v    any
		verr error
	)
	id.Read(func(d *domain.Directory) { v, verr = view(d) })
	return v, verr
}

// execute returns a command of runIdentity that runs cmd as c's principal.
func (c *Call) execute(cmd domain.IdentityCommand) func(ctx context.Context, id Identity) (domain.IdentityResult, error) {
	return func(ctx context.Context, id Identity) (domain.IdentityResult, error) {
		return id.Execute(ctx, c.Principal, cmd, c.Meta)
	}
}

// replayedOther is the answer to a retried command id whose first command
// made something else than this one asks for.
func replayedOther() error {
	return domain.Errorf(domain.CodeConflict, "this idempotency key was used for another command")
}

// read calls fn with the directory, or answers unavailable.
func (a *Application) read(fn func(d *domain.Directory)) error {
	id, err := a.identity()
	if err != nil {
		return err
	}
	id.Read(fn)
	return nil
}

// view runs runIdentity and converts its answer to T.
func view[T any](v any, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, err
	}
	return v.(T), nil
}

// CreateOrg creates an organisation; an empty Name is the ID.
type CreateOrg struct {
	ID   string
	Name string
}

// CreateOrg creates an organisation (server administrator) and answers it:
// permission_denied, already_exists, invalid_argument.
func (a *Application) CreateOrg(ctx context.Context, c *Call, req CreateOrg) (projections.OrgView, error) {
	return view[projections.OrgView](a.runIdentity(ctx, c, c.execute(domain.CreateOrg{ID: req.ID, Name: req.Name}),
		func(d *domain.Directory) (any, error) {
			o, ok := d.Org(req.ID)
			if !ok {
				return nil, replayedOther()
			}
			return projections.OrgViewOf(o), nil
		}))
}

// ListOrgs answers every organisation to the server administrator, the
// caller's own to a user.
func (a *Application) ListOrgs(_ context.Context, c *Call) ([]projections.OrgView, error) {
	var out []projections.OrgView
	err := a.read(func(d *domain.Directory) { out = projections.OrgsFor(d, c.Principal) })
	return out, err
}

// GetOrg answers an organisation to the server administrator and to its
// members; to others it is not_found.
func (a *Application) GetOrg(_ context.Context, c *Call, org string) (projections.OrgView, error) {
	var (
		v  projections.OrgView
		ok bool
	)
	if err := a.read(func(d *domain.Directory) { v, ok = projections.OrgFor(d, c.Principal, org) }); err != nil {
		return v, err
	}
	if !ok {
		return v, domain.Errorf(domain.CodeNotFound, "organisation %s not found", org)
	}
	return v, nil
}

// SetMember adds User to Org (Member) or removes it.
type SetMember struct {
	Org    string
	User   string
	Member bool
}

// SetMember adds a user to an organisation or removes it (server
// administrator); a removed member loses its admin grants in the
// organisation: permission_denied, not_found.
func (a *Application) SetMember(ctx context.Context, c *Call, req SetMember) error {
	_, err := a.runIdentity(ctx, c, c.execute(domain.SetMember{Org: req.Org, User: req.User, Member: req.Member}), nil)
	return err
}

// CreateUser creates a user with its password.
type CreateUser struct {
	ID       string
	Name     string
	Email    string
	Password string
}

// CreateUser creates a user (server administrator) and answers it,
// without the password: permission_denied, already_exists,
// invalid_argument.
func (a *Application) CreateUser(ctx context.Context, c *Call, req CreateUser) (projections.UserView, error) {
	cmd := domain.CreateUser{ID: req.ID, Name: req.Name, Email: req.Email, Password: req.Password}
	return view[projections.UserView](a.runIdentity(ctx, c, func(ctx context.Context, id Identity) (domain.IdentityResult, error) {
		return id.CreateUser(ctx, c.Principal, cmd, c.Meta)
	}, userView(req.ID)))
}

// userView reads a user's view after a command on it.
func userView(user string) func(d *domain.Directory) (any, error) {
	return func(d *domain.Directory) (any, error) {
		u, ok := d.User(user)
		if !ok {
			return nil, replayedOther()
		}
		return projections.UserViewOf(d, u), nil
	}
}

// ListUsers answers every user (server administrator only:
// permission_denied).
func (a *Application) ListUsers(_ context.Context, c *Call) ([]projections.UserView, error) {
	if _, err := a.identity(); err != nil {
		return nil, err
	}
	if !c.Principal.Admin {
		return nil, domain.Errorf(domain.CodePermissionDenied, "only the server administrator lists users")
	}
	out := []projections.UserView{}
	err := a.read(func(d *domain.Directory) {
		for _, u := range d.Users() {
			out = append(out, projections.UserViewOf(d, u))
		}
	})
	return out, err
}

// GetUser answers a user to the server administrator and to itself; to
// others it is not_found.
func (a *Application) GetUser(_ context.Context, c *Call, user string) (projections.UserView, error) {
	var (
		v  projections.UserView
		ok bool
	)
	if err := a.read(func(d *domain.Directory) { v, ok = projections.UserFor(d, c.Principal, user) }); err != nil {
		return v, err
	}
	if !ok {
		return v, domain.Errorf(domain.CodeNotFound, "user %s not found", user)
	}
	return v, nil
}

// DisableUser disables a user or enables it again; Disabled is required.
type DisableUser struct {
	User     string
	Disabled *bool
}

// DisableUser disables or enables a user (server administrator) and
// answers it; its tokens stop or work again at once.
func (a *Application) DisableUser(ctx context.Context, c *Call, req DisableUser) (projections.UserView, error) {
	if req.Disabled == nil {
		return projections.UserView{}, domain.Errorf(domain.CodeInvalidArgument, "field \"disabled\" is required")
	}
	return view[projections.UserView](a.runIdentity(ctx, c, c.execute(domain.SetUserDisabled{User: req.User, Disabled: *req.Disabled}), userView(req.User)))
}

// ChangePassword sets User's password to Password. A user changing its
// own gives Current; the server administrator resets without it.
type ChangePassword struct {
	User     string
	Password string
	Current  string
}

// ChangePassword sets a user's password and answers the sessions it ended
// and the API tokens left: the server administrator for anyone, a user
// for itself (another user is not_found); invalid_argument,
// password_incorrect (a wrong current password, counted like a login's),
// too_many_attempts. ctx carries the client for the throttle
// (service.WithClient).
func (a *Application) ChangePassword(ctx context.Context, c *Call, req ChangePassword) (projections.PasswordChangeView, error) {
	if !c.Principal.Admin && c.Principal.ID != req.User {
		return projections.PasswordChangeView{}, domain.Errorf(domain.CodeNotFound, "user %s not found", req.User)
	}
	cmd := domain.ChangePassword{User: req.User, Password: req.Password, Current: req.Current}
	var changed domain.PasswordChange
	_, err := a.runIdentity(ctx, c, func(ctx context.Context, id Identity) (domain.IdentityResult, error) {
		var err error
		changed, err = id.ChangePassword(ctx, c.Principal, cmd, c.Meta)
		return changed.IdentityResult, err
	}, nil)
	if err != nil {
		return projections.PasswordChangeView{}, err
	}
	return projections.PasswordChangeViewOf(req.User, changed), nil
}

// RegisterApp puts App into Org.
type RegisterApp struct {
	App string
	Org string
}

// RegisterApp puts an app into an organisation and answers who
// administers it; a member who does it becomes the app's first admin. A
// member registers only a never-used id; the app is not checked for
// visibility first: the command decides (not_found, already_exists,
// invalid_argument).
func (a *Application) RegisterApp(ctx context.Context, c *Call, req RegisterApp) (projections.AppAccessView, error) {
	if err := domain.ValidateAppID(req.App); err != nil {
		return projections.AppAccessView{}, err
	}
	if req.Org == "" {
		return projections.AppAccessView{}, domain.Errorf(domain.CodeInvalidArgument, "field \"org\" is required")
	}
	reg := domain.RegisterApp{App: req.App, Org: req.Org}
	return view[projections.AppAccessView](a.runIdentity(ctx, c, func(ctx context.Context, id Identity) (domain.IdentityResult, error) {
		return id.RegisterApp(ctx, c.Principal, reg, c.Meta)
	}, func(d *domain.Directory) (any, error) {
		acc, ok := d.App(req.App)
		if !ok {
			return nil, replayedOther()
		}
		return projections.AppAccessViewOf(acc), nil
	}))
}

// GetAppAccess answers an app's organisation and admins; an app that no
// one registered (from before registration) is in the default
// organisation, without admins.
func (a *Application) GetAppAccess(_ context.Context, c *Call, app string) (projections.AppAccessView, error) {
	if err := a.CheckApp(c.Principal, app); err != nil {
		return projections.AppAccessView{}, err
	}
	v := projections.AppAccessView{App: app, Org: domain.DefaultOrg, Admins: []string{}}
	err := a.read(func(d *domain.Directory) {
		if acc, ok := d.App(app); ok {
			v = projections.AppAccessViewOf(acc)
		}
	})
	return v, err
}

// SetAdmin grants (Admin) or revokes User's admin rights on App.
type SetAdmin struct {
	App   string
	User  string
	Admin bool
}

// SetAdmin grants or revokes a user's admin rights on an app: the server
// administrator or an admin of the app; invalid_argument (not a member of
// the app's organisation), not_found.
func (a *Application) SetAdmin(ctx context.Context, c *Call, req SetAdmin) error {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return err
	}
	_, err := a.runIdentity(ctx, c, c.execute(domain.SetAdmin{App: req.App, User: req.User, Admin: req.Admin}), nil)
	return err
}

// CreateToken makes an API token named Name; a nil ExpiresAt does not
// expire.
type CreateToken struct {
	Name      string
	ExpiresAt *time.Time
}

// CreateToken makes an API token of the caller and answers it with its
// secret, shown this once: permission_denied for the server
// administrator (it has admin.token), already_exists for a retry (the
// secret was shown once), invalid_argument.
func (a *Application) CreateToken(ctx context.Context, c *Call, req CreateToken) (projections.NewTokenView, error) {
	if c.Principal.Admin {
		return projections.NewTokenView{}, domain.Errorf(domain.CodePermissionDenied, "the server administrator has its token (admin.token); tokens are for users")
	}
	var exp time.Time
	if req.ExpiresAt != nil {
		exp = *req.ExpiresAt
	}
	var made domain.NewToken
	_, err := a.runIdentity(ctx, c, func(ctx context.Context, id Identity) (domain.IdentityResult, error) {
		var err error
		made, err = id.CreateToken(ctx, c.Principal, req.Name, exp, c.Meta)
		return domain.IdentityResult{}, err
	}, nil)
	if err != nil {
		return projections.NewTokenView{}, err
	}
	return NewTokenView(made), nil
}

// NewTokenView is the answer of a token just made, with its secret.
func NewTokenView(t domain.NewToken) projections.NewTokenView {
	return projections.NewTokenView{TokenView: projections.TokenViewOf(&t.Token), Token: t.Secret}
}

// ListTokens answers the caller's API tokens, without their secrets.
func (a *Application) ListTokens(_ context.Context, c *Call) ([]projections.TokenView, error) {
	out := []projections.TokenView{}
	err := a.read(func(d *domain.Directory) {
		for _, t := range d.Tokens(c.Principal.ID, domain.TokenAPI) {
			out = append(out, projections.TokenViewOf(t))
		}
	})
	return out, err
}

// RevokeToken revokes a token of the caller (any token for the server
// administrator); it stops working at once: not_found.
func (a *Application) RevokeToken(ctx context.Context, c *Call, id string) error {
	_, err := a.runIdentity(ctx, c, c.execute(domain.RevokeToken{ID: id}), nil)
	return err
}

// Logout revokes the token the request was made with and returns its id:
// invalid_argument for the server administrator's token.
func (a *Application) Logout(ctx context.Context, c *Call) (string, error) {
	if c.Principal.TokenID == "" {
		return "", domain.Errorf(domain.CodeInvalidArgument, "this request was not made with a session or API token")
	}
	return c.Principal.TokenID, a.RevokeToken(ctx, c, c.Principal.TokenID)
}

// Me answers who the caller is, its organisations and the apps it
// administers (every app with events for the server administrator).
func (a *Application) Me(_ context.Context, c *Call) projections.MeView {
	var apps []string
	if c.Principal.Admin {
		apps = a.deps.Queries.Apps()
	}
	v := projections.MeOf(nil, c.Principal, apps)
	if id := a.deps.Identity; id != nil {
		id.Read(func(d *domain.Directory) { v = projections.MeOf(d, c.Principal, apps) })
	}
	return v
}

// Login asks for a session of User, with Password.
type Login struct {
	User     string
	Password string
}

// Login checks a user's password and answers a session token with its
// secret; m is the command's metadata (no caller yet). An unknown or
// disabled user and a wrong password are unauthenticated alike; too many
// wrong passwords are too_many_attempts, the same for every name. ctx
// carries the client for the throttle (service.WithClient).
func (a *Application) Login(ctx context.Context, m domain.Meta, req Login) (projections.NewTokenView, error) {
	id, err := a.identity()
	if err != nil {
		return projections.NewTokenView{}, err
	}
	if req.User == "" || req.Password == "" {
		return projections.NewTokenView{}, domain.Errorf(domain.CodeInvalidArgument, "fields \"user\" and \"password\" are required")
	}
	made, err := id.Login(ctx, req.User, req.Password, m)
	if err != nil {
		return projections.NewTokenView{}, err
	}
	return NewTokenView(made), nil
}
