package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/backupledger/backupledger/usecase"
)

// problem writes err as a problem response. Internal errors show only
// "internal error" and are logged here with their context.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	p := usecase.ProblemOf(err, r.URL.Path, s.cfg.ProblemBaseURL)
	info(r).code = p.Code
	if p.Internal() {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "app", r.PathValue("app"), "err", err)
	}
	if p.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(p.RetryAfterSeconds, 10))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
