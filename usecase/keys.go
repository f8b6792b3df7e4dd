package usecase

import (
	"context"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// ListKeys answers the ledger's public keys, to anyone (it needs no
// token): unavailable when the server has no signing keys.
func (a *Application) ListKeys(context.Context) (projections.KeyList, error) {
	keys, err := a.ledgerKeys()
	if err != nil {
		return projections.KeyList{}, err
	}
	return keys.Keys(), nil
}

// RotateKey makes a new signing key (server administrator only:
// permission_denied) and answers the keys once this process has folded
// it.
func (a *Application) RotateKey(ctx context.Context, c *Call) (projections.KeyList, error) {
	if !c.Principal.Admin {
		return projections.KeyList{}, domain.Errorf(domain.CodePermissionDenied, "only the server administrator rotates the ledger's signing key")
	}
	keys, err := a.ledgerKeys()
	if err != nil {
		return projections.KeyList{}, err
	}
	return keys.Rotate(ctx, c.Meta)
}

// ledgerKeys returns the LedgerKeys, or unavailable.
func (a *Application) ledgerKeys() (LedgerKeys, error) {
	if a.deps.Keys == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "the ledger's signing keys are not configured on this server")
	}
	return a.deps.Keys, nil
}
