package daemon

import (
	"crypto/rand"
	"io"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/backupledger/backupledger/domain"
)

// ulids makes ULIDs, monotonic within a millisecond, safe for concurrent use.
type ulids struct {
	mu      sync.Mutex
	entropy io.Reader
}

func newULIDs() *ulids { return &ulids{entropy: ulid.Monotonic(rand.Reader, 0)} }

var _ domain.IDs = (*ulids)(nil)

// NewID implements domain.IDs.
func (u *ulids) NewID(t time.Time) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t), u.entropy).String()
}

// realClock is the wall clock.
type realClock struct{}

// Now implements domain.Clock.
func (realClock) Now() time.Time { return time.Now() }
