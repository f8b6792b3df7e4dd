package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

	"github.com/backupledger/backupledger/domain"
)

// MetricsHandler returns the handler of the metrics listener: GET /metrics
// serves Deps.Metrics (404 when nil), behind Config.MetricsToken when one
// is set (401 unauthenticated without it or with another); every other
// route is 404. Handler does not serve /metrics: the API's port is often
// public, and the metrics name every organisation's apps.
func (s *Server) MetricsHandler() http.Handler { return s.metricsHandler }

// metricsRoutes builds the route table of MetricsHandler.
func (s *Server) metricsRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.requireScrapeToken(http.HandlerFunc(s.metrics)))
	return s.problemRouter(mux)
}

// requireScrapeToken lets through the requests that bear MetricsToken; with
// no token configured, every request.
func (s *Server) requireScrapeToken(next http.Handler) http.Handler {
	if s.cfg.MetricsToken == "" {
		return next
	}
	// Digests have one length: the comparison takes the same time for
	// every token.
	want := sha256.Sum256([]byte(s.cfg.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		got := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			challenge := `Bearer realm="backupledger-metrics"`
			if ok {
				challenge += `, error="invalid_token"`
			}
			closeUnread(w, r)
			w.Header().Set("WWW-Authenticate", challenge)
			s.problem(w, r, domain.Errorf(domain.CodeUnauthenticated, "the metrics need the scrape token (backupd --metrics-token) as a bearer token"))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
