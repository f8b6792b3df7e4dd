package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/backupledger/backupledger/domain"
)

// requestInfo collects what the request log line reports besides the
// basics; handlers fill it in as they learn it.
type requestInfo struct {
	principal domain.Principal
	authed    bool
	actor     string
	commandID string
	code      string
	// for the log line: what the request concerns
	app, backupID, restoreID, correlationID string
}

type requestInfoKey struct{}

func withRequestInfo(ctx context.Context, info *requestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// info returns the request's info; a request that did not pass logRequests
// gets a fresh one.
func info(r *http.Request) *requestInfo {
	if i, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{}
}

// requireAuth is the one place where a /v1 request is authenticated: the
// bearer token goes to Deps.Auth, and the principal it returns is the actor
// of every command of the request. A missing or bad token is 401 with
// WWW-Authenticate, answered without reading the request's body (the
// connection closes after the answer: closeUnread).
func (s *Server) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			closeUnread(w, r)
			w.Header().Set("WWW-Authenticate", `Bearer realm="backupledger"`)
			s.problem(w, r, domain.ErrUnauthenticated)
			return
		}
		p, err := s.deps.Auth.Authenticate(r.Context(), token)
		if err == nil && p.ID == "" {
			err = domain.ErrUnauthenticated
		}
		if err != nil {
			closeUnread(w, r)
			if domain.Code(err) == domain.CodeUnauthenticated {
				w.Header().Set("WWW-Authenticate", `Bearer realm="backupledger", error="invalid_token"`)
			}
			s.problem(w, r, err)
			return
		}
		i := info(r)
		i.principal, i.authed, i.actor = p, true, p.ID
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive.
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// visible reports whether p may see and act on app: the application's one
// access check.
func (s *Server) visible(p domain.Principal, app string) bool {
	return s.app.Visible(p, app)
}

// call is what an authenticated /v1 handler knows about its request.
type call struct {
	p   domain.Principal
	app string // the validated {app} path value, "" on routes without one
}

// apiFunc is a /v1 handler; a returned error becomes a problem response.
type apiFunc func(w http.ResponseWriter, r *http.Request, c call) error

// v1 registers an authenticated API route. Before h runs, the {app} path
// value (if the route has one) is validated (400) and checked for
// visibility (404, so that callers cannot probe for apps).
func (s *Server) v1(mux *http.ServeMux, pattern string, h apiFunc) {
	s.route(mux, pattern, true, h)
}

// v1Unchecked registers an authenticated API route whose {app} is
// validated but not checked for visibility: the command decides (creating
// an app).
func (s *Server) v1Unchecked(mux *http.ServeMux, pattern string, h apiFunc) {
	s.route(mux, pattern, false, h)
}

func (s *Server) route(mux *http.ServeMux, pattern string, check bool, h apiFunc) {
	withApp := strings.Contains(pattern, "{app}")
	// Which log field the {id} of the pattern fills, decided once.
	backupID := strings.Contains(pattern, "/backups/{id}")
	restoreID := strings.Contains(pattern, "/restores/{id}")
	s.record(pattern)
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		i := info(r)
		if !i.authed {
			s.problem(w, r, errNoPrincipal)
			return
		}
		c := call{p: i.principal}
		if withApp {
			c.app = r.PathValue("app")
			i.app = c.app
			switch {
			case backupID:
				i.backupID = r.PathValue("id")
			case restoreID:
				i.restoreID = r.PathValue("id")
			}
			if err := domain.ValidateAppID(c.app); err != nil {
				s.problem(w, r, err)
				return
			}
			if check && !s.visible(c.p, c.app) {
				s.problem(w, r, domain.Errorf(domain.CodeNotFound, "app %s not found", c.app))
				return
			}
		}
		if err := h(w, r, c); err != nil {
			s.problem(w, r, err)
		}
	})
}
