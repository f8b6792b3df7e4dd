package httpapi

import (
	"net/http"
	"strconv"

	"github.com/backupledger/backupledger/domain"
)

// openAPI serves Deps.OpenAPI, the OpenAPI document of this API, as YAML
// and without a token: it is documentation. Without one it answers 404.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	if s.deps.OpenAPI == nil {
		s.problem(w, r, domain.Errorf(domain.CodeNotFound, "this server does not serve its OpenAPI document"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("Content-Length", strconv.Itoa(len(s.deps.OpenAPI)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(s.deps.OpenAPI)
}
