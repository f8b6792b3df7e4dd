package httpapi

import (
	"net/http"

	"github.com/backupledger/backupledger/domain"
)

// healthz answers 200 while the process serves.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 once the projections have caught up at start and
// while the server can take writes (Deps.Readiness), else 503 unavailable
// with the reason.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.deps.Ready() {
		w.Header().Set("Retry-After", "1")
		s.problem(w, r, domain.Errorf(domain.CodeUnavailable, "the projections have not caught up with the ledger yet"))
		return
	}
	if s.deps.Readiness != nil {
		if err := s.deps.Readiness(); err != nil {
			w.Header().Set("Retry-After", "1")
			s.problem(w, r, domain.Errorf(domain.CodeUnavailable, "not ready: %v", err))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// metrics serves Deps.Metrics, or 404 when there is none.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.deps.Metrics == nil {
		s.problem(w, r, domain.Errorf(domain.CodeNotFound, "metrics are not enabled"))
		return
	}
	s.deps.Metrics.ServeHTTP(w, r)
}
