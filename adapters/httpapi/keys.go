package httpapi

import (
	"net/http"

	"github.com/backupledger/backupledger/domain"
)

// keyRoutes registers the signing keys' routes: the list is public, for
// auditors; rotating is the server administrator's.
func (s *Server) keyRoutes(api, root *http.ServeMux) {
	s.handle(root, "GET /v1/ledger/keys", s.requireReady(http.HandlerFunc(s.listKeys)))
	s.v1(api, "POST /v1/ledger/keys/rotate", s.rotateKey)
}

// listKeys answers the ledger's public keys, without a token.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.app.ListKeys(r.Context())
	if err != nil {
		s.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, keys)
}

// rotateKey makes a new signing key (server administrator only).
func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, c call) error {
	if !c.p.Admin {
		return domain.Errorf(domain.CodePermissionDenied, "only the server administrator rotates the ledger's signing key")
	}
	uc, err := s.command(w, r, c)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	list, err := s.app.RotateKey(ctx, uc)
	return respond(w, http.StatusCreated, list, err)
}
