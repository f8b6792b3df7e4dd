// Package password hashes passwords with bcrypt.
package password

import (
	"fmt"

	"golang.org/x/crypto/bcrypt"

	"github.com/backupledger/backupledger/domain"
)

// Bcrypt is the domain.PasswordHasher of bcrypt at a cost.
type Bcrypt struct {
	cost int
}

var _ domain.PasswordHasher = Bcrypt{}

// NewBcrypt returns a hasher of the given cost; 0 means bcrypt.DefaultCost.
// Tests use bcrypt.MinCost.
func NewBcrypt(cost int) (Bcrypt, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return Bcrypt{}, fmt.Errorf("bcrypt cost %d is not in [%d, %d]", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return Bcrypt{cost: cost}, nil
}

// HashPassword implements domain.PasswordHasher.
func (b Bcrypt) HashPassword(password string) ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte(password), b.cost)
}

// PasswordMatches implements domain.PasswordHasher: bcrypt compares in
// constant time.
func (b Bcrypt) PasswordMatches(hash []byte, password string) bool {
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}
