package daemon

import (
	"context"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

// ledgerKeys joins the projection, which lists the ledger's signing keys,
// and service.Signing, which rotates them, for the HTTP and NATS APIs.
type ledgerKeys struct {
	proj    *projections.Store
	signing *service.Signing
}

// Keys returns the keys the projection has folded.
func (k ledgerKeys) Keys() projections.KeyList { return k.proj.Keys() }

// Rotate rotates the signing key and answers the keys once the projection
// has folded the key.rotated.
func (k ledgerKeys) Rotate(ctx context.Context, m domain.Meta) (projections.KeyList, error) {
	key, err := k.signing.Rotate(ctx, m)
	if err != nil {
		return projections.KeyList{}, err
	}
	if err := k.proj.WaitApplied(ctx, key.CreatedSeq); err != nil {
		return projections.KeyList{}, err
	}
	return k.proj.Keys(), nil
}
