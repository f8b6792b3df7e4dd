package password

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

const (
	// bcryptMaxPassword is bcrypt's limit: it ignores bytes past it.
	bcryptMaxPassword = 72
	// maxLegacyBcryptCost is the highest bcrypt cost Argon2id checks: the
	// daemon made cost 10 (tests 4); a higher stored cost is taken as
	// planted (cost 31 would take hours per check).
	maxLegacyBcryptCost = 14
)

// Bcrypt is a service.PasswordHasher of bcrypt at a cost.
//
// Deprecated: bcrypt ignores bytes past 72; use Argon2id, which still
// checks the bcrypt hashes made before it.
type Bcrypt struct {
	cost int
}

var _ rehasher = Bcrypt{}

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

// HashPassword implements service.PasswordHasher. It returns
// bcrypt.ErrPasswordTooLong past 72 bytes.
func (b Bcrypt) HashPassword(password string) ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte(password), b.cost)
}

// PasswordMatches implements service.PasswordHasher: bcrypt compares in
// constant time. A password of more than 72 bytes never matches.
func (b Bcrypt) PasswordMatches(hash []byte, password string) bool {
	return isBcrypt(hash) && bcryptMatches(hash, password, max(b.cost, maxLegacyBcryptCost))
}

// NeedsRehash reports whether hash is not a bcrypt hash of b's cost.
func (b Bcrypt) NeedsRehash(hash []byte) bool {
	cost, err := bcrypt.Cost(hash)
	return !isBcrypt(hash) || err != nil || cost != b.cost
}

// isBcrypt reports whether hash has the prefix of a bcrypt hash: $2a$
// (what Go's bcrypt makes), $2b$ or $2y$ (the same hash from OpenBSD and
// PHP).
func isBcrypt(hash []byte) bool {
	s := string(hash)
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// bcryptMatches checks password against a bcrypt hash of at most maxCost.
// A password of more than 72 bytes never matches: bcrypt would check only
// its first 72 bytes, and no stored hash was made of a longer one (the
// domain allowed at most 72 bytes while it used bcrypt).
func bcryptMatches(hash []byte, password string, maxCost int) bool {
	if len(password) > bcryptMaxPassword {
		return false
	}
	if cost, err := bcrypt.Cost(hash); err != nil || cost > maxCost {
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}
