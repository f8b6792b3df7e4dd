// Package password hashes passwords with Argon2id and checks them against
// Argon2id hashes and legacy bcrypt hashes, which it asks to replace at the
// next successful login. docs/passwords.md has the parameters and why.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"

	"github.com/backupledger/backupledger/service"
)

// MaxPasswordBytes is the longest password hashed or checked: longer ones
// are refused before any hashing, so that no one makes the server hash
// megabytes.
const MaxPasswordBytes = 1024

// ErrPasswordTooLong is returned by HashPassword for a password of more
// than MaxPasswordBytes bytes.
var ErrPasswordTooLong = errors.New("password too long")

const (
	// saltBytes and keyBytes are the sizes of new hashes' salt and key.
	saltBytes = 16
	keyBytes  = 32

	// Bounds of the parameters this package makes or accepts: beyond them
	// a hash is refused, unread, as planted (one check of it would cost a
	// gigabyte or seconds; the daemon's defaults are 19 MiB and 2 passes).
	maxMemoryKiB  = 1 << 20 // 1 GiB
	maxIterations = 100
	maxWorkKiB    = 4 << 20 // memory × iterations: 4 GiB of passes, ~100× the default
)

// Params are Argon2id's cost parameters (RFC 9106, section 3.1).
type Params struct {
	// Memory is the memory used, in KiB (m).
	Memory uint32
	// Iterations is the number of passes over the memory (t).
	Iterations uint32
	// Parallelism is the number of lanes (p).
	Parallelism uint8
}

// DefaultParams are the production parameters: OWASP's recommendation for
// Argon2id, 19 MiB, 2 iterations, 1 lane (docs/passwords.md).
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1}
}

// TestParams are the cheapest parameters Validate accepts, for tests that
// log in often: a hash takes microseconds. Never use them in production.
func TestParams() Params {
	return Params{Memory: 8, Iterations: 1, Parallelism: 1}
}

// Validate reports every parameter outside the bounds accepted both for
// new hashes and for stored ones: 1 to 255 lanes, 8 KiB per lane to 1 GiB
// of memory, 1 to 100 iterations, and memory × iterations at most 4 GiB.
func (p Params) Validate() error {
	var errs []error
	if p.Parallelism < 1 {
		errs = append(errs, errors.New("argon2id parallelism is 0, want at least 1"))
	}
	if minMemory := 8 * max(uint32(p.Parallelism), 1); p.Memory < minMemory || p.Memory > maxMemoryKiB {
		errs = append(errs, fmt.Errorf("argon2id memory %d KiB is not in [%d, %d]", p.Memory, minMemory, maxMemoryKiB))
	}
	if p.Iterations < 1 || p.Iterations > maxIterations {
		errs = append(errs, fmt.Errorf("argon2id iterations %d is not in [1, %d]", p.Iterations, maxIterations))
	}
	if work := uint64(p.Memory) * uint64(p.Iterations); work > maxWorkKiB {
		errs = append(errs, fmt.Errorf("argon2id memory × iterations is %d KiB, over %d", work, maxWorkKiB))
	}
	return errors.Join(errs...)
}

// Argon2id is the service.PasswordHasher of the ledger: it hashes with
// Argon2id at its parameters, checks Argon2id and legacy bcrypt hashes,
// and tells which stored hashes to replace.
type Argon2id struct {
	params Params
}

// rehasher is a service.PasswordHasher that also tells which hashes to make
// again at the next successful login.
type rehasher interface {
	service.PasswordHasher
	NeedsRehash(hash []byte) bool
}

var _ rehasher = Argon2id{}

// NewArgon2id returns a hasher with the parameters p; the zero Params mean
// DefaultParams. It returns Validate's error for parameters out of bounds.
func NewArgon2id(p Params) (Argon2id, error) {
	if p == (Params{}) {
		p = DefaultParams()
	}
	if err := p.Validate(); err != nil {
		return Argon2id{}, err
	}
	return Argon2id{params: p}, nil
}

// HashPassword implements service.PasswordHasher: a PHC string
// "$argon2id$v=19$m=…,t=…,p=…$salt$key" of a random 16-byte salt and a
// 32-byte key. It returns ErrPasswordTooLong past MaxPasswordBytes.
func (h Argon2id) HashPassword(password string) ([]byte, error) {
	if len(password) > MaxPasswordBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrPasswordTooLong, len(password), MaxPasswordBytes)
	}
	salt := make([]byte, saltBytes)
	rand.Read(salt) // never fails: crypto/rand crashes the program instead
	key := argon2.IDKey([]byte(password), salt, h.params.Iterations, h.params.Memory, h.params.Parallelism, keyBytes)
	return phc{params: h.params, salt: salt, key: key}.encode(), nil
}

// PasswordMatches implements service.PasswordHasher for Argon2id hashes of
// any parameters within Params.Validate's bounds (compared in constant
// time) and for legacy bcrypt hashes ($2a$, $2b$, $2y$; see
// bcryptMatches). It is false for a password longer than
// MaxPasswordBytes, which it does not hash, and for a malformed hash.
func (h Argon2id) PasswordMatches(hash []byte, password string) bool {
	if len(password) > MaxPasswordBytes {
		return false
	}
	if isBcrypt(hash) {
		return bcryptMatches(hash, password, maxLegacyBcryptCost)
	}
	stored, err := parsePHC(hash)
	if err != nil {
		return false
	}
	p := stored.params
	key := argon2.IDKey([]byte(password), stored.salt, p.Iterations, p.Memory, p.Parallelism, uint32(len(stored.key)))
	return subtle.ConstantTimeCompare(key, stored.key) == 1
}

// NeedsRehash reports whether hash is not what HashPassword makes today:
// a bcrypt hash, an Argon2id hash of other parameters or sizes, or a
// malformed one. The caller makes a new hash after a successful login.
func (h Argon2id) NeedsRehash(hash []byte) bool {
	stored, err := parsePHC(hash)
	return err != nil || stored.params != h.params || len(stored.salt) != saltBytes || len(stored.key) != keyBytes
}
