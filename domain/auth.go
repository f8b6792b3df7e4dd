package domain

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
)

// Principal is an authenticated caller.
type Principal struct {
	// ID is recorded as the actor of the events the caller causes.
	ID string
	// Admin is true for the server administrator.
	Admin bool
	// TokenID is the id of the token the caller presented, when the
	// Identity service made it (a session is ended by revoking it).
	TokenID string
}

// ChainAuth tries each Authenticator in turn: the first that accepts the
// token decides; an error other than ErrUnauthenticated stops the chain.
type ChainAuth []Authenticator

// Authenticate implements Authenticator.
func (c ChainAuth) Authenticate(ctx context.Context, token string) (Principal, error) {
	for _, a := range c {
		p, err := a.Authenticate(ctx, token)
		if err == nil {
			return p, nil
		}
		if Code(err) != CodeUnauthenticated {
			return Principal{}, err
		}
	}
	return Principal{}, ErrUnauthenticated
}

// Authenticator turns a bearer token into a Principal. Every transport calls
// it for every request, so the check lives in one place.
type Authenticator interface {
	// Authenticate returns ErrUnauthenticated for a missing or unknown token.
	Authenticate(ctx context.Context, token string) (Principal, error)
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

var _ Authenticator = (*AdminToken)(nil)

// Authenticate implements Authenticator; the comparison takes constant time.
func (t *AdminToken) Authenticate(_ context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrUnauthenticated
	}
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], t.sum[:]) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{ID: "admin", Admin: true}, nil
}
