package httpapi

import (
	"context"
	"net/http"

	"github.com/backupledger/backupledger/usecase"

	"github.com/backupledger/backupledger/domain"
)

// keyRoutes registers the signing keys' routes: the list is public, for
// auditors; rotating is the server administrator's.
func (s *Server) keyRoutes(api, root *http.ServeMux) {
	s.handle(root, "GET /v1/ledger/keys", s.requireReady(http.HandlerFunc(s.listKeys)))
	s.v1(api, "POST /v1/ledger/keys/rotate", s.rotateKey)
}

func (s *Server) ledgerKeys() (usecase.LedgerKeys, error) {
	if s.deps.Keys == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "the ledger's signing keys are not configured on this server")
	}
	return s.deps.Keys, nil
}

// listKeys answers the ledger's public keys, without a token.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.ledgerKeys()
	if err != nil {
		s.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, keys.Keys())
}

// rotateKey makes a new signing key (server administrator only).
func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, c call) error {
	if !c.p.Admin {
		return domain.Errorf(domain.CodePermissionDenied, "only the server administrator rotates the ledger's signing key")
	}
	keys, err := s.ledgerKeys()
	if err != nil {
		return err
	}
	m, err := s.commandMeta(w, r, c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	list, err := keys.Rotate(ctx, m)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, list)
	return nil
}
