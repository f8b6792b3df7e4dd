package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/usecase"

	"github.com/backupledger/backupledger/domain"
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

// withClient returns ctx carrying the address r came from, which the
// throttle of wrong passwords counts (service.Throttle).
func withClient(ctx context.Context, r *http.Request) context.Context {
	return service.WithClient(ctx, service.ClientAddr(r.RemoteAddr))
}

// identityCommand runs an identity command of c under the request timeout
// with its metadata from r, and answers status with the view it returns
// (none for 204).
func (s *Server) identityCommand(w http.ResponseWriter, r *http.Request, c call, status int, run func(ctx context.Context, uc *usecase.Call) (any, error)) error {
	if err := s.app.CheckIdentity(); err != nil {
		return err
	}
	uc, err := s.command(w, r, c)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	v, err := run(withClient(ctx, r), uc)
	if err != nil {
		return err
	}
	replayed(w, uc)
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return nil
	}
	writeJSON(w, status, v)
	return nil
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
	return s.identityCommand(w, r, c, http.StatusCreated, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.CreateOrg(ctx, uc, usecase.CreateOrg{ID: req.ID, Name: req.Name})
	})
}

// listOrgs answers every organisation to the server administrator, the
// caller's own to a user.
func (s *Server) listOrgs(w http.ResponseWriter, r *http.Request, c call) error {
	l, err := s.app.ListOrgs(r.Context(), c.query())
	return respond(w, http.StatusOK, map[string]any{"orgs": l}, err)
}

func (s *Server) getOrg(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.app.GetOrg(r.Context(), c.query(), r.PathValue("org"))
	return respond(w, http.StatusOK, v, err)
}

func (s *Server) setMember(member bool) apiFunc {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		return s.identityCommand(w, r, c, http.StatusNoContent, func(ctx context.Context, uc *usecase.Call) (any, error) {
			return nil, s.app.SetMember(ctx, uc, usecase.SetMember{Org: r.PathValue("org"), User: r.PathValue("user"), Member: member})
		})
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
	return s.identityCommand(w, r, c, http.StatusCreated, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.CreateUser(ctx, uc, usecase.CreateUser{ID: req.ID, Name: req.Name, Email: req.Email, Password: req.Password})
	})
}

// listUsers answers every user (server administrator only).
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, c call) error {
	l, err := s.app.ListUsers(r.Context(), c.query())
	return respond(w, http.StatusOK, map[string]any{"users": l}, err)
}

// getUser answers a user to the server administrator and to itself.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.app.GetUser(r.Context(), c.query(), r.PathValue("user"))
	return respond(w, http.StatusOK, v, err)
}

type patchUserRequest struct {
	Disabled *bool `json:"disabled"`
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, c call) error {
	var req patchUserRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	return s.identityCommand(w, r, c, http.StatusOK, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.DisableUser(ctx, uc, usecase.DisableUser{User: r.PathValue("user"), Disabled: req.Disabled})
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
	user := r.PathValue("user")
	return s.identityCommand(w, r, c, http.StatusOK, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.ChangePassword(ctx, uc, usecase.ChangePassword{User: user, Password: req.Password, Current: req.CurrentPassword})
	})
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
	return s.identityCommand(w, r, c, http.StatusOK, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.RegisterApp(ctx, uc, usecase.RegisterApp{App: c.app, Org: req.Org})
	})
}

func (s *Server) getAppAccess(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.app.GetAppAccess(r.Context(), c.query(), c.app)
	return respond(w, http.StatusOK, v, err)
}

func (s *Server) setAdmin(admin bool) apiFunc {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		return s.identityCommand(w, r, c, http.StatusNoContent, func(ctx context.Context, uc *usecase.Call) (any, error) {
			return nil, s.app.SetAdmin(ctx, uc, usecase.SetAdmin{App: c.app, User: r.PathValue("user"), Admin: admin})
		})
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
	return s.identityCommand(w, r, c, http.StatusCreated, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.CreateToken(ctx, uc, usecase.CreateToken{Name: req.Name, ExpiresAt: req.ExpiresAt})
	})
}

// listTokens answers the caller's API tokens.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, c call) error {
	l, err := s.app.ListTokens(r.Context(), c.query())
	return respond(w, http.StatusOK, map[string]any{"tokens": l}, err)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, c call) error {
	return s.identityCommand(w, r, c, http.StatusNoContent, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return nil, s.app.RevokeToken(ctx, uc, r.PathValue("id"))
	})
}

// logout revokes the session token of the request.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, c call) error {
	return s.identityCommand(w, r, c, http.StatusNoContent, func(ctx context.Context, uc *usecase.Call) (any, error) {
		_, err := s.app.Logout(ctx, uc)
		return nil, err
	})
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, c call) error {
	writeJSON(w, http.StatusOK, s.app.Me(r.Context(), c.query()))
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
	ctx, cancel := s.timeout(r)
	defer cancel()
	v, err := s.app.Login(withClient(ctx, r), domain.Meta{CommandID: s.deps.NewID()}, usecase.Login{User: req.User, Password: req.Password})
	if err != nil {
		s.problem(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, v)
}
