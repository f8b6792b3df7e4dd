package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/backupledger/backupledger/usecase"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// identityRoutes registers the identity routes on api (authenticated)
// and the login on root.
func (s *Server) identityRoutes(api, root *http.ServeMux) {
	s.v1(api, "POST /v1/orgs", s.createOrg)
	s.v1(api, "GET /v1/orgs", s.listOrgs)
	s.v1(api, "GET /v1/orgs/{org}", s.getOrg)
	s.v1(api, "PUT /v1/orgs/{org}/members/{user}", s.setMember(true))
	s.v1(api, "DELETE /v1/orgs/{org}/members/{user}", s.setMember(false))
	s.v1(api, "POST /v1/users", s.createUser)
	s.v1(api, "GET /v1/users", s.listUsers)
	s.v1(api, "GET /v1/users/{user}", s.getUser)
	s.v1(api, "PATCH /v1/users/{user}", s.patchUser)
	s.v1(api, "PUT /v1/users/{user}/password", s.setPassword)
	s.v1Unchecked(api, "PUT /v1/apps/{app}", s.registerApp)
	s.v1(api, "GET /v1/apps/{app}/admins", s.getAppAccess)
	s.v1(api, "PUT /v1/apps/{app}/admins/{user}", s.setAdmin(true))
	s.v1(api, "DELETE /v1/apps/{app}/admins/{user}", s.setAdmin(false))
	s.v1(api, "POST /v1/tokens", s.createToken)
	s.v1(api, "GET /v1/tokens", s.listTokens)
	s.v1(api, "DELETE /v1/tokens/{id}", s.revokeToken)
	s.v1(api, "DELETE /v1/sessions/current", s.logout)
	s.v1(api, "GET /v1/me", s.me)
	s.handle(root, "POST /v1/sessions", s.requireReady(http.HandlerFunc(s.login)))
}

// identity returns the identity service, or unavailable when the server
// runs without one (the server administrator alone).
func (s *Server) identity() (usecase.Identity, error) {
	if s.deps.Identity == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "this server has no users: only the server administrator's token works")
	}
	return s.deps.Identity, nil
}

// runIdentity runs cmd under the request timeout and answers status with
// view() read after it.
func (s *Server) runIdentity(w http.ResponseWriter, r *http.Request, c call, status int, cmd func(ctx context.Context, id usecase.Identity, m domain.Meta) error, view func(d *domain.Directory) (any, error)) error {
	id, err := s.identity()
	if err != nil {
		return err
	}
	m, err := s.commandMeta(w, r, c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if err := cmd(ctx, id, m); err != nil {
		return err
	}
	if view == nil {
		w.WriteHeader(status)
		return nil
	}
	var (
		v    any
		verr error
	)
	id.Read(func(d *domain.Directory) { v, verr = view(d) })
	if verr != nil {
		return verr
	}
	writeJSON(w, status, v)
	return nil
}

// withClient returns ctx carrying the address r came from, which the
// throttle of wrong passwords counts (domain.Throttle).
func withClient(ctx context.Context, r *http.Request) context.Context {
	return domain.WithClient(ctx, domain.ClientAddr(r.RemoteAddr))
}

// replayedOther is the answer to a retried command id whose first command
// made something else than this one asks for.
func replayedOther() error {
	return domain.Errorf(domain.CodeConflict, "this Idempotency-Key was used for another command")
}

func execCmd(p domain.Principal, cmd domain.IdentityCommand) func(ctx context.Context, id usecase.Identity, m domain.Meta) error {
	return func(ctx context.Context, id usecase.Identity, m domain.Meta) error {
		_, err := id.Execute(ctx, p, cmd, m)
		return err
	}
}

type createOrgRequest struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (s *Server) createOrg(w http.ResponseWriter, r *http.Request, c call) error {
	var req createOrgRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	return s.runIdentity(w, r, c, http.StatusCreated, execCmd(c.p, domain.CreateOrg{ID: req.ID, Name: req.Name}),
		func(d *domain.Directory) (any, error) {
			o, ok := d.Org(req.ID)
			if !ok {
				return nil, replayedOther()
			}
			return projections.OrgViewOf(o), nil
		})
}

// listOrgs answers every organisation to the server administrator, the
// caller's own to a user.
func (s *Server) listOrgs(w http.ResponseWriter, _ *http.Request, c call) error {
	id, err := s.identity()
	if err != nil {
		return err
	}
	var out []projections.OrgView
	id.Read(func(d *domain.Directory) { out = projections.OrgsFor(d, c.p) })
	writeJSON(w, http.StatusOK, map[string]any{"orgs": out})
	return nil
}

func (s *Server) getOrg(w http.ResponseWriter, r *http.Request, c call) error {
	id, err := s.identity()
	if err != nil {
		return err
	}
	var (
		v  projections.OrgView
		ok bool
	)
	id.Read(func(d *domain.Directory) { v, ok = projections.OrgFor(d, c.p, r.PathValue("org")) })
	if !ok {
		return domain.Errorf(domain.CodeNotFound, "organisation %s not found", r.PathValue("org"))
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) setMember(member bool) apiFunc {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		cmd := domain.SetMember{Org: r.PathValue("org"), User: r.PathValue("user"), Member: member}
		return s.runIdentity(w, r, c, http.StatusNoContent, execCmd(c.p, cmd), nil)
	}
}

type createUserRequest struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, c call) error {
	var req createUserRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	cmd := domain.CreateUser{ID: req.ID, Name: req.Name, Email: req.Email, Password: req.Password}
	return s.runIdentity(w, r, c, http.StatusCreated, func(ctx context.Context, id usecase.Identity, m domain.Meta) error {
		_, err := id.CreateUser(ctx, c.p, cmd, m)
		return err
	}, func(d *domain.Directory) (any, error) {
		u, ok := d.User(req.ID)
		if !ok {
			return nil, replayedOther()
		}
		return projections.UserViewOf(d, u), nil
	})
}

// listUsers answers every user (server administrator only).
func (s *Server) listUsers(w http.ResponseWriter, _ *http.Request, c call) error {
	id, err := s.identity()
	if err != nil {
		return err
	}
	if !c.p.Admin {
		return domain.Errorf(domain.CodePermissionDenied, "only the server administrator lists users")
	}
	out := []projections.UserView{}
	id.Read(func(d *domain.Directory) {
		for _, u := range d.Users() {
			out = append(out, projections.UserViewOf(d, u))
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

// getUser answers a user to the server administrator and to itself.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, c call) error {
	id, err := s.identity()
	if err != nil {
		return err
	}
	user := r.PathValue("user")
	var (
		v  projections.UserView
		ok bool
	)
	id.Read(func(d *domain.Directory) { v, ok = projections.UserFor(d, c.p, user) })
	if !ok {
		return domain.Errorf(domain.CodeNotFound, "user %s not found", user)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

type patchUserRequest struct {
	Disabled *bool `json:"disabled"`
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, c call) error {
	var req patchUserRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Disabled == nil {
		return domain.Errorf(domain.CodeInvalidArgument, "field \"disabled\" is required")
	}
	user := r.PathValue("user")
	return s.runIdentity(w, r, c, http.StatusOK, execCmd(c.p, domain.SetUserDisabled{User: user, Disabled: *req.Disabled}),
		func(d *domain.Directory) (any, error) {
			u, ok := d.User(user)
			if !ok {
				return nil, replayedOther()
			}
			return projections.UserViewOf(d, u), nil
		})
}

type passwordRequest struct {
	Password string `json:"password"`
	// CurrentPassword is required when users change their own.
	CurrentPassword string `json:"current_password"`
}

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request, c call) error {
	var req passwordRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	cmd := domain.ChangePassword{User: r.PathValue("user"), Password: req.Password, Current: req.CurrentPassword}
	if !c.p.Admin && c.p.ID != cmd.User {
		return domain.Errorf(domain.CodeNotFound, "user %s not found", cmd.User)
	}
	var changed domain.PasswordChange
	return s.runIdentity(w, r, c, http.StatusOK, func(ctx context.Context, id usecase.Identity, m domain.Meta) error {
		var err error
		changed, err = id.ChangePassword(withClient(ctx, r), c.p, cmd, m)
		return err
	}, func(*domain.Directory) (any, error) { return projections.PasswordChangeViewOf(cmd.User, changed), nil })
}

type registerAppRequest struct {
	Org string `json:"org"`
}

// registerApp puts an app into an organisation; a member who does it
// becomes the app's admin.
func (s *Server) registerApp(w http.ResponseWriter, r *http.Request, c call) error {
	var req registerAppRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Org == "" {
		return domain.Errorf(domain.CodeInvalidArgument, "field \"org\" is required")
	}
	reg := domain.RegisterApp{App: c.app, Org: req.Org}
	return s.runIdentity(w, r, c, http.StatusOK, func(ctx context.Context, id usecase.Identity, m domain.Meta) error {
		_, err := id.RegisterApp(ctx, c.p, reg, m)
		return err
	},
		func(d *domain.Directory) (any, error) {
			a, ok := d.App(c.app)
			if !ok {
				return nil, replayedOther()
			}
			return projections.AppAccessViewOf(a), nil
		})
}

func (s *Server) getAppAccess(w http.ResponseWriter, _ *http.Request, c call) error {
	id, err := s.identity()
	if err != nil {
		return err
	}
	var (
		v  projections.AppAccessView
		ok bool
	)
	id.Read(func(d *domain.Directory) {
		var a *domain.AppAccess
		if a, ok = d.App(c.app); ok {
			v = projections.AppAccessViewOf(a)
		}
	})
	if !ok {
		v = projections.AppAccessView{App: c.app, Org: domain.DefaultOrg, Admins: []string{}}
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) setAdmin(admin bool) apiFunc {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		cmd := domain.SetAdmin{App: c.app, User: r.PathValue("user"), Admin: admin}
		return s.runIdentity(w, r, c, http.StatusNoContent, execCmd(c.p, cmd), nil)
	}
}

type createTokenRequest struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c call) error {
	var req createTokenRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if c.p.Admin {
		return domain.Errorf(domain.CodePermissionDenied, "the server administrator has its token (admin.token); tokens are for users")
	}
	var exp time.Time
	if req.ExpiresAt != nil {
		exp = *req.ExpiresAt
	}
	var made domain.NewToken
	return s.runIdentity(w, r, c, http.StatusCreated, func(ctx context.Context, id usecase.Identity, m domain.Meta) error {
		var err error
		made, err = id.CreateToken(ctx, c.p, req.Name, exp, m)
		return err
	}, func(*domain.Directory) (any, error) {
		return projections.NewTokenView{TokenView: projections.TokenViewOf(&made.Token), Token: made.Secret}, nil
	})
}

// listTokens answers the caller's API tokens.
func (s *Server) listTokens(w http.ResponseWriter, _ *http.Request, c call) error {
	id, err := s.identity()
	if err != nil {
		return err
	}
	out := []projections.TokenView{}
	id.Read(func(d *domain.Directory) {
		for _, t := range d.Tokens(c.p.ID, domain.TokenAPI) {
			out = append(out, projections.TokenViewOf(t))
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, c call) error {
	return s.runIdentity(w, r, c, http.StatusNoContent, execCmd(c.p, domain.RevokeToken{ID: r.PathValue("id")}), nil)
}

// logout revokes the session token of the request.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, c call) error {
	if c.p.TokenID == "" {
		return domain.Errorf(domain.CodeInvalidArgument, "this request was not made with a session or API token")
	}
	return s.runIdentity(w, r, c, http.StatusNoContent, execCmd(c.p, domain.RevokeToken{ID: c.p.TokenID}), nil)
}

func (s *Server) me(w http.ResponseWriter, _ *http.Request, c call) error {
	var apps []string
	if c.p.Admin {
		apps = s.deps.Queries.Apps()
	}
	v := projections.MeOf(nil, c.p, apps)
	if id := s.deps.Identity; id != nil {
		id.Read(func(d *domain.Directory) { v = projections.MeOf(d, c.p, apps) })
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// login checks a user's password and answers a session token; it is the
// one /v1 route without a bearer token.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		s.problem(w, r, err)
		return
	}
	id, err := s.identity()
	if err != nil {
		s.problem(w, r, err)
		return
	}
	if req.User == "" || req.Password == "" {
		s.problem(w, r, domain.Errorf(domain.CodeInvalidArgument, "fields \"user\" and \"password\" are required"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	made, err := id.Login(withClient(ctx, r), req.User, req.Password, domain.Meta{CommandID: s.deps.NewID()})
	if err != nil {
		s.problem(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, projections.NewTokenView{TokenView: projections.TokenViewOf(&made.Token), Token: made.Secret})
}
