package natsapi

import (
	"context"

	"github.com/backupledger/backupledger/usecase"

	"github.com/backupledger/backupledger/domain"
)

func (s *Service) ledgerKeys() (usecase.LedgerKeys, error) {
	if s.deps.Keys == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "the ledger's signing keys are not configured on this server")
	}
	return s.deps.Keys, nil
}

// listKeys answers the ledger's public keys; it needs no token.
func (s *Service) listKeys(_ context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	keys, err := s.ledgerKeys()
	if err != nil {
		return nil, err
	}
	return keys.Keys(), nil
}

// rotateKey makes a new signing key (server administrator only).
func (s *Service) rotateKey(ctx context.Context, c *call) (any, error) {
	var req CommandFields
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if !c.p.Admin {
		return nil, domain.Errorf(domain.CodePermissionDenied, "only the server administrator rotates the ledger's signing key")
	}
	keys, err := s.ledgerKeys()
	if err != nil {
		return nil, err
	}
	m, err := s.meta(c, req)
	if err != nil {
		return nil, err
	}
	return keys.Rotate(ctx, m)
}
