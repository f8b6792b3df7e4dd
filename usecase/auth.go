package usecase

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"

	"github.com/backupledger/backupledger/domain"
)

// ChainAuth tries each Authenticator in turn: the first that accepts the
// token decides; an error other than domain.ErrUnauthenticated stops the chain.
type ChainAuth []Authenticator

// Authenticate implements Authenticator.
func (c ChainAuth) Authenticate(ctx context.Context, token string) (domain.Principal, error) {
	for _, a := range c {
		p, err := a.Authenticate(ctx, token)
		if err == nil {
			return p, nil
		}
		if domain.Code(err) != domain.CodeUnauthenticated {
			return domain.Principal{}, err
		}
	}
	return domain.Principal{}, domain.ErrUnauthenticated
}

// Authenticator turns a bearer token into a domain.Principal. Every transport calls
// it for every request, so the check lives in one place.
type Authenticator interface {
	// Authenticate returns domain.ErrUnauthenticated for a missing or unknown token.
	Authenticate(ctx context.Context, token string) (domain.Principal, error)
}

// AdminToken authenticates the server administrator's single token.
type AdminToken struct {
	sum [sha256.Size]byte
}

// NewAdminToken returns an Authenticator that accepts exactly token as the
// principal "admin".
func NewAdminToken(token string) *AdminToken {
	return &AdminToken{sum: sha256.Sum256([]byte(token))}
}

// Authenticate implements Authenticator; the comparison takes constant time.
func (t *AdminToken) Authenticate(_ context.Context, token string) (domain.Principal, error) {
	if token == "" {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], t.sum[:]) != 1 {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	return domain.Principal{ID: "admin", Admin: true}, nil
}

var _ Authenticator = (*AdminToken)(nil)
