package natsapi

import (
	"context"

	"github.com/backupledger/backupledger/domain"
)

// listKeys answers the ledger's public keys; it needs no token.
func (s *Service) listKeys(ctx context.Context, c *call) (any, error) {
	var req struct{}
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	return s.app.ListKeys(ctx)
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
	uc, err := s.command(c, req)
	if err != nil {
		return nil, err
	}
	return s.app.RotateKey(ctx, uc)
}
